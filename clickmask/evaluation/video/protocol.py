"""The DAVIS interactive protocol with clicks (CiVOS), one object per sequence.

Round 1: one positive click at the object's centre (the image robot's first
click, :func:`clickmask.geometry.masks.next_click` on an empty mask) on the
frame where the ground-truth object is largest (the earliest on ties). Each
later round: the frame with the lowest J&F among the frames not annotated
before (once every frame was: all frames where the robot still finds an
error region to click, else all frames) - or, with ``pointer``, the frame
the propagation is least confident about - and up to 3 clicks there, each at
the centre (the point farthest from its edge) of the largest error region of
the frame's current mask (CiVOS's f3), positive on a missed region, negative
on a wrong one; regions under 100 px are ignored. Then the frame's mask is
propagated and fused (:class:`clickmask.propagation.propagator.Track`).

The clicks on a frame go through the image engine (the predictor ``eval``
uses, the recommended inference), one session per annotated frame. With
``start_from_mask`` a frame that already has a (propagated) mask is corrected
rather than segmented anew: the mask is the previous prediction (mask
feedback; the ``local`` step keeps it away from the click) and it stands for
a first positive click at its centre (the engine's prompts, not a click the
robot makes or counts), so the robot's clicks act as corrections instead of a
lone first click that picks a part of the object.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction
from clickmask.evaluation.video.metrics import jf_measure, spearman
from clickmask.geometry.masks import next_click
from clickmask.propagation.propagator import PropagationOptions, Track

ROUNDS = 8
CLICKS_PER_ROUND = 3
MIN_ERROR_AREA = 100


@dataclass(frozen=True)
class ProtocolOptions:
    """The protocol's parameters (the defaults are the benchmark's)."""

    rounds: int = ROUNDS
    clicks_per_round: int = CLICKS_PER_ROUND
    min_error_area: int = MIN_ERROR_AREA
    pointer: bool = False
    start_from_mask: bool = True
    max_frames: int | None = None

    def describe(self) -> dict:
        return {"rounds": self.rounds, "clicks_per_round": self.clicks_per_round,
                "min_error_area": self.min_error_area, "pointer": self.pointer,
                "start_from_mask": self.start_from_mask, "max_frames": self.max_frames}


@dataclass
class SequenceResult:
    """One sequence's run: per round the frame annotated, clicks, J, F, J&F (means over frames) and seconds."""

    name: str
    frames: int
    annotated: list[int] = field(default_factory=list)
    clicks: list[int] = field(default_factory=list)
    j: list[float] = field(default_factory=list)
    f: list[float] = field(default_factory=list)
    jf: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    propagate_ms: list[float] = field(default_factory=list, repr=False)
    confidence_rank: list[float | None] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "frames": self.frames, "annotated": self.annotated, "clicks": self.clicks,
                "j": self.j, "f": self.f, "jf": self.jf, "seconds": self.seconds,
                "propagate_ms_median": float(np.median(self.propagate_ms)) if self.propagate_ms else None,
                "confidence_rank": self.confidence_rank}


def largest_frame(gts: list[np.ndarray]) -> int:
    """The frame where the object's area is largest (the earliest on ties)."""
    return int(np.argmax([np.count_nonzero(g) for g in gts]))


def error_click(gt: np.ndarray, pred: np.ndarray, clicked: list[Click], min_area: int = MIN_ERROR_AREA
                ) -> Click | None:
    """A click at the centre of the largest error region of ``pred`` (>= ``min_area`` px), or None.

    Error regions are the 8-connected components of the missed (``gt & ~pred``,
    positive click) and wrong (``pred & ~gt``, negative click) pixels; the
    centre is the region's pixel farthest from its edge (the image border
    counts as an edge), pixels already clicked excluded.
    """
    best: tuple[int, np.ndarray, bool] | None = None
    for positive, err in ((True, gt & ~pred), (False, pred & ~gt)):
        n, labels, stats, _ = cv2.connectedComponentsWithStats(err.astype(np.uint8), connectivity=8)
        if n < 2:
            continue
        k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        area = int(stats[k, cv2.CC_STAT_AREA])
        if area >= min_area and (best is None or area > best[0]):
            best = (area, labels == k, positive)
    if best is None:
        return None
    _, region, positive = best
    dist = cv2.distanceTransform(np.pad(region.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    for c in clicked:
        x, y = c.as_int()
        if 0 <= y < dist.shape[0] and 0 <= x < dist.shape[1]:
            dist[y, x] = 0
    if dist.max() <= 0:
        return None
    r, col = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return Click(float(col), float(r), positive)


def mask_centre(mask: np.ndarray) -> Click:
    """A positive click at the pixel of ``mask``'s largest region farthest from its edge."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    region = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 2 else mask
    dist = cv2.distanceTransform(np.pad(region.astype(np.uint8), 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return Click(float(c), float(r), True)


def interact(predictor, image: np.ndarray, gt: np.ndarray, current: np.ndarray | None,
             current_low_res: np.ndarray | None, first: bool, options: ProtocolOptions) -> tuple[np.ndarray, int]:
    """The robot's clicks on one frame through the image engine: (the frame's new mask, clicks used)."""
    predictor.set_image(image)
    clicks: list[Click] = []
    previous = None
    prompts: list[Click] = []
    if current is not None and options.start_from_mask and current.any() and not first:
        previous = Prediction(np.where(current, 1.0, -1.0).astype(np.float32), current_low_res, 1.0)
        prompts.append(mask_centre(current))
    mask = current if current is not None else np.zeros(gt.shape, bool)
    budget = 1 if first else options.clicks_per_round
    for _ in range(budget):
        if first:
            click = next_click(gt, np.zeros_like(gt), None, [])
        else:
            click = error_click(gt, mask, clicks, options.min_error_area)
        if click is None:
            break
        clicks.append(click)
        previous = predictor.predict(prompts + clicks, previous=previous)
        mask = previous.mask
    return mask, len(clicks)


def next_frame(annotated: set[int], score: list[float], gts: list[np.ndarray], masks: list[np.ndarray],
               min_area: int = MIN_ERROR_AREA) -> int:
    """The frame of a later round: the lowest ``score`` (earliest on ties) among the frames not annotated.

    Once every frame was annotated: among the frames where the robot still
    finds an error region of at least ``min_area`` px, else among all frames.
    """
    pool = [i for i in range(len(gts)) if i not in annotated]
    if not pool:
        pool = [i for i in range(len(gts)) if error_click(gts[i], masks[i], [], min_area) is not None] \
            or list(range(len(gts)))
    return min(pool, key=lambda i: (score[i], i))


def evaluate_frames(track: Track, gts: list[np.ndarray]) -> tuple[list[float], list[float], list[float]]:
    """Per-frame (J, F, J&F) lists of the track's current masks."""
    js, fs, jfs = [], [], []
    for gt, mask in zip(gts, track.masks()):
        j, f, jf = jf_measure(gt, mask)
        js.append(j)
        fs.append(f)
        jfs.append(jf)
    return js, fs, jfs


def run_sequence(predictor, model, name: str, frames, gts: list[np.ndarray],
                 options: ProtocolOptions = ProtocolOptions(),
                 propagation: PropagationOptions = PropagationOptions(),
                 on_round=None) -> SequenceResult:
    """Run the protocol on one sequence.

    predictor: the image engine the robot clicks with; model: the
    :class:`~clickmask.engine.sam_onnx.SamOnnxPredictor` propagation decodes
    with (the predictor's own model); frames: ``len`` and ``frame(i)``; gts:
    HxW bool per frame. ``on_round(result, track)`` is called after each round;
    when it returns True the run stops there.
    """
    track = Track(model, frames, propagation)
    result = SequenceResult(name, len(frames))
    jfs: list[float] = []
    for r in range(options.rounds):
        t0 = time.perf_counter()
        first = r == 0
        if first:
            index = largest_frame(gts)
        else:
            score = track.confidences() if options.pointer else jfs
            index = next_frame(set(track.annotated), score, gts, track.masks(), options.min_error_area)
        state = track.states[index]
        before = None if state.mask is None else state.mask.copy()
        mask, n_clicks = interact(predictor, frames.frame(index), gts[index], state.mask, state.low_res, first,
                                  options)
        track.annotate(index, mask)
        n_before = len(track.propagate_ms)
        track.propagate(index, before=before)
        seconds = time.perf_counter() - t0
        js, fs, jfs = evaluate_frames(track, gts)
        others = [i for i in range(len(frames)) if not track.states[i].annotated]
        result.confidence_rank.append(spearman([track.states[i].confidence for i in others], [js[i] for i in others]))
        result.annotated.append(index)
        result.clicks.append(n_clicks)
        result.j.append(float(np.mean(js)))
        result.f.append(float(np.mean(fs)))
        result.jf.append(float(np.mean(jfs)))
        result.seconds.append(seconds)
        result.propagate_ms += track.propagate_ms[n_before:]
        if on_round is not None and on_round(result, track):
            break
    return result
