"""Several objects per video: stable track ids and overlaps resolved by the higher probability."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_video_propagation import ROWS, FakeFrames, FakeModel, moving_square_embeddings  # noqa: E402

from clickmask.errors import ClickmaskError  # noqa: E402
from clickmask.propagation.decode import DecodeOptions  # noqa: E402
from clickmask.propagation.propagator import PropagationOptions  # noqa: E402
from clickmask.propagation.tracks import LABEL_DTYPE, Tracks, resolve_overlaps  # noqa: E402


def test_resolve_overlaps_gives_the_pixel_to_the_higher_probability():
    a = np.zeros((4, 6), bool)
    a[:, :4] = True
    b = np.zeros((4, 6), bool)
    b[:, 2:] = True
    pa = np.full((4, 6), 0.9, np.float32)
    pb = np.full((4, 6), 0.6, np.float32)
    pb[:2] = 0.95  # b wins the overlap's top rows
    labels = resolve_overlaps([3, 7], [a, b], [pa, pb])
    assert labels.dtype == LABEL_DTYPE
    assert (labels[:, :2] == 3).all() and (labels[:, 4:] == 7).all()
    assert (labels[:2, 2:4] == 7).all() and (labels[2:, 2:4] == 3).all()
    # ties go to the first id; background stays 0
    tie = resolve_overlaps([5, 2], [a, b], [pa, pa])
    assert (tie[:, 2:4] == 5).all()
    assert (resolve_overlaps([1], [np.zeros((2, 2), bool)], [np.ones((2, 2))]) == 0).all()
    with pytest.raises(ValueError):
        resolve_overlaps([0], [a], [pa])
    with pytest.raises(ValueError):
        resolve_overlaps([1, 2], [a], [pa])


def test_track_ids_are_stable_and_never_reused():
    embs, _ = moving_square_embeddings(frames=3)
    tracks = Tracks(FakeModel(embs), FakeFrames(3))
    assert tracks.add() == 1 and tracks.add() == 2
    tracks.remove(1)
    assert tracks.add() == 3 and tracks.ids == [2, 3]
    assert tracks.add(10) == 10 and tracks.add() == 11
    with pytest.raises(ClickmaskError, match="taken or was used"):
        tracks.add(2)
    with pytest.raises(ClickmaskError, match="no track 1"):
        tracks[1]
    empty = Tracks(FakeModel(embs), FakeFrames(3))
    assert empty.label_map(0).shape == (ROWS, 64) and not empty.label_map(0).any()


def test_two_tracks_propagate_and_their_masks_stay_disjoint():
    embs, masks = moving_square_embeddings(frames=7)
    gts = [m[:ROWS] > 0.5 for m in masks]
    options = PropagationOptions(decode=DecodeOptions(point=False, box=False))
    tracks = Tracks(FakeModel(embs), FakeFrames(7), options)
    square, around = tracks.add(), tracks.add()
    ring = cv2.dilate(gts[3].astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the square and a margin
    tracks.annotate(square, 3, gts[3])
    tracks.annotate(around, 3, ring)
    assert sorted(tracks.propagate(square, 3)) == [0, 1, 2, 4, 5, 6]
    tracks.propagate(around, 3)
    # the annotated frame: both claim the square with probability 1, the first track keeps it
    labels = tracks.label_map(3)
    assert (labels[gts[3]] == square).all()
    assert (labels[ring & ~gts[3]] == around).all() and (labels[~ring] == 0).all()
    for t in range(7):
        per = tracks.masks(t)
        assert not (per[square] & per[around]).any()
        assert set(np.unique(tracks.label_map(t))) <= {0, square, around}
        # the union is what the tracks claimed together
        union = tracks[square].masks()[t] | tracks[around].masks()[t]
        assert ((per[square] | per[around]) == union).all()
    # on a propagated frame, a pixel both claim goes to the higher probability
    both = tracks[square].masks()[5] & tracks[around].masks()[5]
    p_sq, p_ar = tracks.probability(square, 5), tracks.probability(around, 5)
    assert p_sq.dtype == np.float32 and 0.0 <= p_sq.min() and p_sq.max() <= 1.0
    owner = tracks.label_map(5)
    assert (owner[both & (p_sq >= p_ar)] == square).all() and (owner[both & (p_ar > p_sq)] == around).all()
    assert tracks[square].masks()[5][gts[5]].mean() > 0.8  # the square's own track follows it
    assert len(tracks.label_maps()) == 7
