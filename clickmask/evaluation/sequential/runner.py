"""The robot user over sequences of objects, with what the app learns per category.

Each object is annotated with the standard robot user (click at the centre of
the largest error, mask feedback, at most ``max_clicks`` counted clicks) until
its IoU reaches ``stop_iou`` (the user is satisfied; the mask then is the
object's annotation).

What is switched on is the app's configuration (:mod:`clickmask.learning`):

- ``icp``: the initial click proposal, computed with the ignore mask = union
  of the annotations already made on the same image in this sequence: from
  the category's object map once it has learned a finished object, else from
  its click bank's best peaks checked at the object level. It is a free
  click when it falls inside the object's ground truth, and the object then
  starts from the proposal's mask (what the app shows on Enter); otherwise
  the robot's own first click is used (and counted). A missed proposal inside
  another object of the sequence on the same image, not annotated yet, is
  counted as a ``sibling``.
- OPO (an ``Adapter``): objects that reached ``stop_iou`` are learned (the
  others a user would have fixed by hand first); object n of a category uses
  what was trained on objects up to n - delta.
- ``granularity``: each finished object's final mask tells which mask token
  its first click should have shown; the category's memory then sets the
  token of later first clicks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.refine import RefinedPredictor
from clickmask.engine.predictor import Prediction, Predictor
from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickmaskError
from clickmask.evaluation.runner import load_sample
from clickmask.evaluation.sequential.sequences import ObjectSequence
from clickmask.geometry.masks import iou, next_click
from clickmask.io.datasets import Sample
from clickmask.learning.adapted import raw_embedding
from clickmask.learning.click_bank import ClickBank
from clickmask.learning.granularity import GranularityMemory, first_click_masks
from clickmask.learning.object_map import ObjectMap
from clickmask.learning.proposal import (
    DEFAULT_CANDIDATES,
    accepted_prediction,
    checked_proposal,
    map_checked_proposal,
)


@dataclass(frozen=True)
class SequentialOptions:
    """How the robot user is run and which of the app's learning parts are on (OPO: pass an ``Adapter``)."""

    max_clicks: int = 20
    mask_feedback: bool = True
    stop_iou: float = 0.90
    icp: bool = True
    granularity: bool = True


@dataclass
class InstanceResult:
    """One object of a sequence.

    ious: IoU after each prediction, in order; with a free (accepted) proposal
    the first entry is the IoU after the proposal alone. clicks: every click
    used (the proposal first when it was accepted). ``free_first`` says whether
    clicks[0] was a free proposal. ``proposal`` is the ICP proposal (x, y) or
    None; ``hit`` whether it fell inside the ground truth. ``sibling``: the
    proposal fell inside another object of the sequence on the same image that
    was not annotated yet (None without a proposal).
    """

    name: str
    category: str
    ious: list[float]
    clicks: list[Click]
    free_first: bool
    proposal: tuple[float, float] | None
    hit: bool | None
    click_ms: list[float] = field(default_factory=list)
    propose_ms: float = 0.0
    sibling: bool | None = None

    def noc(self, threshold: float, max_clicks: int) -> int:
        """Counted clicks until IoU >= threshold (0 if the free proposal alone reaches it)."""
        for index, value in enumerate(self.ious, start=1):
            counted = index - int(self.free_first)
            if counted > max_clicks:
                break
            if value >= threshold:
                return counted
        return max_clicks


class Adapter(Protocol):
    """What the runner needs from OPO (:class:`~clickmask.evaluation.sequential.online.OnlineAdapter`)."""

    def predictor_for(self, category: str, index: int) -> Predictor:
        """The predictor to use for object ``index`` (0-based) of ``category``'s sequence."""

    def finished(self, category: str, index: int, embedding: np.ndarray, mask: np.ndarray) -> None:
        """Object ``index`` is done: its raw embedding (1xCxGxG) and the mask to learn (HxW bool, may be empty)."""


def annotate_object(
    predictor: Predictor,
    gt: np.ndarray,
    ignore: np.ndarray | None,
    options: SequentialOptions,
    first: Click | None = None,
    first_mask: Prediction | None = None,
) -> tuple[list[float], list[Click], list[float], np.ndarray, Prediction | None]:
    """Robot annotation of one object on the predictor's current image.

    gt, ignore: HxW bool. ``first``: a free first click (the accepted proposal)
    or None; ``first_mask``: its prediction when already known (the proposal's
    mask), else ``first`` is predicted like any click.
    Stops when the IoU reaches ``options.stop_iou``, after ``max_clicks``
    counted clicks, or when the robot finds no error left. Returns (IoU after
    each prediction, clicks, per-click ms, final HxW bool mask, the first
    click's Prediction or None).
    """
    session = InteractiveSession(predictor, mask_feedback=options.mask_feedback)
    pred = np.zeros(gt.shape, dtype=bool)
    ious: list[float] = []
    clicks: list[Click] = []
    times: list[float] = []
    budget = options.max_clicks + (1 if first is not None else 0)
    while len(clicks) < budget and not (ious and ious[-1] >= options.stop_iou):
        click = first if (first is not None and not clicks) else next_click(gt, pred, ignore, clicks)
        if click is None:
            break
        t0 = time.perf_counter()
        if first_mask is not None and not clicks:
            session.start_from(click, first_mask)
        else:
            session.add_click(click)
        pred = session.current_mask()
        times.append((time.perf_counter() - t0) * 1000)
        clicks.append(click)
        ious.append(iou(gt, pred, ignore))
    return ious, clicks, times, pred, session.first_prediction


def sibling_at(pending: list[Sample], sample: Sample, col: int, row: int) -> Sample | None:
    """The first object in ``pending`` on ``sample``'s image whose mask holds pixel (col, row), or None."""
    for other in pending:
        if other.image_path == sample.image_path and other.mask_path != sample.mask_path:
            gt = other.load_gt()
            if 0 <= row < gt.shape[0] and 0 <= col < gt.shape[1] and gt[row, col]:
                return other
    return None


def run_sequence(
    predictor: Predictor,
    sequence: ObjectSequence,
    options: SequentialOptions = SequentialOptions(),
    adapter: Adapter | None = None,
    on_result: Callable[[InstanceResult], None] | None = None,
) -> list[InstanceResult]:
    """Annotate a sequence's objects in order; returns one result per object."""
    bank = ClickBank()
    object_map = ObjectMap()
    memory = GranularityMemory() if options.granularity else None
    if memory is not None and not isinstance(predictor, RefinedPredictor):
        raise ClickmaskError("the granularity memory needs the refined inference (not --infer raw)")
    annotated: dict[str, np.ndarray] = {}  # image path -> union of the final masks made on it
    results: list[InstanceResult] = []
    pending = list(sequence.samples)
    for index in range(len(pending)):
        sample = pending.pop(0)
        active = adapter.predictor_for(sequence.category, index) if adapter is not None else predictor
        image, gt, ignore = load_sample(sample)
        active.set_image(image)
        if active is not predictor and (options.icp or adapter is not None):
            predictor.set_image(image)  # the raw embedding (a cache hit: the caches are shared)
        key = str(sample.image_path)
        first, first_mask, proposal, hit, sibling, propose_ms, accept_ms = None, None, None, None, None, 0.0, 0.0
        if options.icp and len(bank):
            t0 = time.perf_counter()
            embedding = raw_embedding(predictor)
            if object_map.ready:
                checked = map_checked_proposal(object_map, predictor, embedding, gt.shape, annotated.get(key))
            else:
                checked = checked_proposal(bank, predictor, embedding, gt.shape, annotated.get(key), DEFAULT_CANDIDATES)
            propose_ms = (time.perf_counter() - t0) * 1000
            if checked is not None:
                col, row = checked.click.as_int()
                proposal, hit = (checked.click.x, checked.click.y), bool(gt[row, col])
                sibling = not hit and sibling_at(pending, sample, col, row) is not None
                if hit:
                    first = checked.click
                    t0 = time.perf_counter()
                    first_mask = accepted_prediction(checked, active, annotated.get(key))
                    accept_ms = (time.perf_counter() - t0) * 1000  # the accepting click's own work (polish)
        if memory is not None:
            active.set_first_token(memory.preferred())
        ious, clicks, times, mask, first_prediction = annotate_object(active, gt, ignore, options, first, first_mask)
        if not clicks:
            raise ClickmaskError(f"{sample.mask_path}: the robot found nothing to click (empty object?)")
        if first_mask is not None:
            times[0] += accept_ms
        if options.icp or adapter is not None:
            embedding = raw_embedding(predictor)  # ICP features and OPO inputs
            if options.icp:
                bank.add_click(embedding, clicks[0], gt.shape)
                bank.add_object(embedding, mask, gt.shape)
                object_map.add(embedding, mask, gt.shape)
            if adapter is not None:
                # an object left below stop_iou after max_clicks is one a user would have fixed by hand first
                accepted = ious[-1] >= options.stop_iou
                adapter.finished(sequence.category, index, embedding, mask if accepted else np.zeros_like(mask))
        if memory is not None and (readings := first_click_masks(active, first_prediction, gt.shape)) is not None:
            memory.record(readings[0], readings[1], mask)
        annotated[key] = mask if key not in annotated else (annotated[key] | mask)
        result = InstanceResult(
            name=sample.name, category=sequence.category, ious=ious, clicks=clicks,
            free_first=first is not None, proposal=proposal, hit=hit, click_ms=times,
            propose_ms=propose_ms, sibling=sibling,
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def run_sequences(
    predictor: Predictor,
    sequences: list[ObjectSequence],
    options: SequentialOptions = SequentialOptions(),
    adapter: Adapter | None = None,
    on_result: Callable[[InstanceResult], None] | None = None,
) -> list[InstanceResult]:
    """Run every sequence (each with its own click bank, object map and first-click memory)."""
    out: list[InstanceResult] = []
    for sequence in sequences:
        out += run_sequence(predictor, sequence, options, adapter, on_result)
    return out
