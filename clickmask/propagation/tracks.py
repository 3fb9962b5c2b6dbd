"""Several objects in one video or volume: tracks with stable ids, overlaps resolved per pixel.

Each object is a :class:`~.propagator.Track` (its own annotations, rounds and
fusion); :class:`Tracks` keeps them under ids that are never reused (a removed
track's id stays retired), in the order they were added. Tracks are
propagated independently, so two of them may claim the same pixel; a frame's
label map (:meth:`Tracks.label_map`, :func:`resolve_overlaps`) gives such a
pixel to the track with the higher object probability there: 1 on a frame the
user annotated for that track, else the sigmoid of its propagated logits.
Equal probabilities go to the track added first (the lower id).
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.propagation.grid import sigmoid
from clickmask.propagation.propagator import Frames, PropagationOptions, Track

#: The dtype of label maps (track ids).
LABEL_DTYPE = np.int32


def resolve_overlaps(ids: Sequence[int], masks: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]
                     ) -> np.ndarray:
    """HxW ``int32`` label map: 0 = background, else the id of the track owning the pixel.

    ids: track ids (positive, in priority order for ties); masks: HxW bool
    per track; probabilities: HxW float per track. A pixel inside several
    masks goes to the track with the highest probability there, the first in
    ``ids`` on ties.
    """
    if not (len(ids) == len(masks) == len(probabilities)):
        raise ValueError(f"{len(ids)} ids, {len(masks)} masks and {len(probabilities)} probability maps")
    if any(int(i) <= 0 for i in ids):
        raise ValueError(f"track ids must be positive (0 is the background), got {list(ids)}")
    if not ids:
        raise ValueError("no tracks to resolve")
    stack = np.stack([np.asarray(m, bool) for m in masks])
    score = np.where(stack, np.stack([np.asarray(p, np.float64) for p in probabilities]), -np.inf)
    best = np.argmax(score, axis=0)  # the first maximum: ties go to the earlier track
    labels = np.asarray(ids, LABEL_DTYPE)[best]
    return np.where(stack.any(axis=0), labels, LABEL_DTYPE(0)).astype(LABEL_DTYPE)


class Tracks:
    """The objects of one video or volume (see the module doc).

    model, frames, options: as for :class:`~.propagator.Track`; every track
    shares them.
    """

    def __init__(self, model, frames: Frames, options: PropagationOptions = PropagationOptions()) -> None:
        self.model = model
        self.frames = frames
        self.options = options
        self._tracks: dict[int, Track] = {}
        self._next_id = 1

    def __len__(self) -> int:
        return len(self._tracks)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._tracks))

    def __contains__(self, track_id: object) -> bool:
        return track_id in self._tracks

    @property
    def ids(self) -> list[int]:
        return list(self._tracks)

    def __getitem__(self, track_id: int) -> Track:
        try:
            return self._tracks[track_id]
        except KeyError:
            raise ClickmaskError(f"no track {track_id} (tracks: {self.ids or 'none'})") from None

    def add(self, track_id: int | None = None) -> int:
        """A new empty track; returns its id (the next free one, or ``track_id`` if it was never used)."""
        if track_id is None:
            track_id = self._next_id
        elif track_id < self._next_id or track_id in self._tracks:
            raise ClickmaskError(f"track id {track_id} is taken or was used before (next free: {self._next_id})")
        if track_id <= 0:
            raise ClickmaskError(f"track ids are positive, got {track_id}")
        self._tracks[track_id] = Track(self.model, self.frames, self.options)
        self._next_id = track_id + 1
        return track_id

    def remove(self, track_id: int) -> None:
        """Drop a track; its id is not given out again."""
        self[track_id]
        del self._tracks[track_id]

    def annotate(self, track_id: int, index: int, mask: np.ndarray, low_res: np.ndarray | None = None) -> None:
        """The user's mask of track ``track_id`` on frame ``index``."""
        self[track_id].annotate(index, mask, low_res)

    def propagate(self, track_id: int, index: int, before: np.ndarray | None = None,
                  on_frame: Callable[[int], None] | None = None) -> list[int]:
        """Propagate track ``track_id`` from frame ``index`` (:meth:`Track.propagate`); the frames changed."""
        return self[track_id].propagate(index, before, on_frame)

    def probability(self, track_id: int, index: int) -> np.ndarray:
        """HxW float32 object probability of a track on a frame (1/0 where annotated, 0 where unknown)."""
        track = self[track_id]
        state = track.states[index]
        shape = (track.height, track.width)
        if state.mask is None:
            return np.zeros(shape, np.float32)
        if state.annotated or state.low_res is None:
            return state.mask.astype(np.float32)
        return sigmoid(self.model.upsample(state.low_res, shape))

    def _mask(self, track_id: int, index: int) -> np.ndarray:
        track = self._tracks[track_id]
        mask = track.states[index].mask
        return np.zeros((track.height, track.width), bool) if mask is None else mask

    def label_map(self, index: int) -> np.ndarray:
        """HxW ``int32`` track ids of frame ``index`` (0 = background), overlaps resolved."""
        if not self._tracks:
            first = self.frames.frame(index)
            return np.zeros(first.shape[:2], LABEL_DTYPE)
        ids = self.ids
        masks = [self._mask(i, index) for i in ids]
        probabilities = [self.probability(i, index) if masks[k].any() else np.zeros(masks[k].shape, np.float32)
                         for k, i in enumerate(ids)]
        return resolve_overlaps(ids, masks, probabilities)

    def label_maps(self) -> list[np.ndarray]:
        """The label map of every frame."""
        return [self.label_map(i) for i in range(len(self.frames))]

    def masks(self, index: int) -> dict[int, np.ndarray]:
        """Frame ``index``'s HxW bool mask per track id, after overlaps are resolved (disjoint)."""
        labels = self.label_map(index)
        return {i: labels == i for i in self.ids}
