"""The robot user over sequences of objects (baseline, +ICP, +OPO).

Each object is annotated with the standard robot user of
:mod:`clickmask.evaluation.clicker` (click at the centre of the largest error,
mask feedback, at most ``max_clicks`` counted clicks) until its IoU reaches
``stop_iou`` (the user is satisfied; the mask then is the object's annotation).

With ICP, the click bank of the sequence's category proposes a first click,
computed with the ignore mask = union of the annotations already made on the
same image in this sequence. It is a free click when it falls inside the
object's ground truth; otherwise the robot's own first click is used (and
counted). The first click of every finished object goes into the bank, and
so does its final mask's object feature. With ``icp_check`` the proposal is
checked at the object level (:mod:`clickmask.sequential.proposal`); with
``icp_mask`` as well, an accepted checked proposal starts the object with the
check's mask (what the app shows on Enter) instead of a fresh first-click
prediction. With ``icp_map`` the category's object map
(:mod:`clickmask.sequential.object_map`), once it has learned a finished
object, makes the proposal and its first mask instead (both accepted as with
``icp_mask``).

A missed proposal that falls inside another object of the sequence on the same
image, not annotated yet, is recorded (``sibling``): the proposal found the
category, only not the instance the fixed order asks for next. With
``icp_follow`` the robot then does what a user following the proposals does:
it annotates that object now (a free first click) and returns to the one the
order asked for right after it. Every object is still annotated once; only the
order within an image changes. This is not the issue's fixed-order protocol:
its rows are reported apart.

With the granularity memory (:mod:`clickmask.sequential.granularity`), each
finished object's final mask tells which mask token its first click should have
shown; the category's memory then sets the token of later first clicks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction, Predictor
from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickmaskError
from clickmask.evaluation.clicker import next_click
from clickmask.evaluation.datasets import Sample
from clickmask.evaluation.metrics import iou
from clickmask.evaluation.runner import load_sample
from clickmask.sequential.click_bank import ClickBank
from clickmask.sequential.granularity import GranularityMemory, first_click_masks
from clickmask.sequential.object_map import ObjectMap
from clickmask.sequential.proposal import accepted_prediction, checked_proposal, map_checked_proposal
from clickmask.sequential.sequences import ObjectSequence


@dataclass(frozen=True)
class SequentialOptions:
    """How the robot user, ICP and OPO are run."""

    max_clicks: int = 20
    mask_feedback: bool = True
    stop_iou: float = 0.90
    icp: bool = False
    icp_smooth: int = 3
    icp_aggregate: str = "mean"
    icp_check: int = 0  # > 0: segment this many similarity peaks and propose the most familiar object's centre
    icp_mask: bool = False  # with icp_check: an accepted proposal's first mask is the check's (the app's behaviour)
    granularity: bool = False
    icp_adapted: bool = False  # ICP compares OPO-adapted features (SIIS: the purified R4), when OPO is on
    opo_accepted_only: bool = False  # OPO learns only objects that reached stop_iou (others: an empty mask)
    icp_map: bool = False  # proposals and their masks from the category's object map (once it has an object)
    icp_follow: bool = False  # a proposal inside another pending object of the image: annotate that one now


@dataclass
class InstanceResult:
    """One object of a sequence.

    ious: IoU after each prediction, in order; with a free (accepted) proposal
    the first entry is the IoU after the proposal alone. clicks: every click
    used (the proposal first when it was accepted). ``free_first`` says whether
    clicks[0] was a free proposal. ``proposal`` is the ICP proposal (x, y) or
    None; ``hit`` whether it fell inside the ground truth. ``sibling``: the
    proposal fell inside another object of the sequence on the same image that
    was not annotated yet (None without a proposal); ``followed``: this object
    was taken out of order because the proposal fell inside it (``icp_follow``).
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
    followed: bool = False

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
    """What the runner needs from OPO: a predictor for the current category and a hook."""

    wants_crops: bool  # whether ``finished`` wants the object's zoom-in crop view

    def predictor_for(self, category: str, index: int) -> Predictor:
        """The predictor to use for object ``index`` (0-based) of ``category``'s sequence."""

    def finished(self, category: str, index: int, image: np.ndarray, embedding: np.ndarray, mask: np.ndarray,
                 crop: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Object ``index`` is done: its image (HxWx3), raw embedding (1xCxGxG) and final mask (HxW bool).

        ``crop``: (raw embedding, mask cut to the crop) of the zoom-in crop of
        the object's last prediction, or None when it was not zoomed.
        """

    def affine_for(self, category: str, index: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The (A, b) per-pixel map used for object ``index`` (None = identity), for ICP on adapted features."""


def predictor_embedding(predictor: Predictor) -> np.ndarray:
    """The current image's 1x256x64x64 embedding of a SAM predictor (plain or refined)."""
    base = getattr(predictor, "base", predictor)
    emb = getattr(base, "embedding", None)
    if emb is None:
        raise ClickmaskError(f"model {predictor.model_id} has no image embedding: ICP/OPO need a SAM-style model")
    return emb


def crop_view(predictor: Predictor, crop: tuple[int, int, int, int] | None,
              mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(raw 1x256x64x64 embedding, mask[y0:y1, x0:x1]) of a zoom-in crop (x0, y0, x1, y1) of the current image.

    None when there is no crop or the predictor has no zoom-in (``crop_embedding``).
    """
    if crop is None or not hasattr(predictor, "crop_embedding"):
        return None
    x0, y0, x1, y1 = crop
    return predictor.crop_embedding(crop), mask[y0:y1, x0:x1]


def annotate_object(
    predictor: Predictor,
    gt: np.ndarray,
    ignore: np.ndarray | None,
    options: SequentialOptions,
    first: Click | None = None,
    first_mask: Prediction | None = None,
) -> tuple[list[float], list[Click], list[float], np.ndarray, Prediction | None, tuple[int, int, int, int] | None]:
    """Robot annotation of one object on the predictor's current image.

    gt, ignore: HxW bool. ``first``: a free first click (the accepted proposal)
    or None; ``first_mask``: its prediction when already known (the checked
    proposal's mask), else ``first`` is predicted like any click.
    Stops when the IoU reaches ``options.stop_iou``, after ``max_clicks``
    counted clicks, or when the robot finds no error left. Returns (IoU after
    each prediction, clicks, per-click ms, final HxW bool mask, the first
    click's Prediction or None, the last prediction's zoom-in crop or None).
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
    last = session.prediction
    crop = last.info.get("crop") if last is not None else None
    return ious, clicks, times, pred, session.first_prediction, crop


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
    bank = ClickBank(smooth=options.icp_smooth, aggregate=options.icp_aggregate)
    memory = GranularityMemory() if options.granularity else None
    object_map = ObjectMap() if options.icp_map else None
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
        first, first_mask, proposal, hit, propose_ms, accept_ms = None, None, None, None, 0.0, 0.0
        sibling, followed = None, False
        if options.icp and len(bank):
            t0 = time.perf_counter()
            embedding = predictor_embedding(predictor)
            affine = adapter.affine_for(sequence.category, index) if options.icp_adapted and adapter else None
            checked = None
            if object_map is not None and object_map.ready:
                checked = map_checked_proposal(object_map, predictor, embedding, gt.shape, annotated.get(key))
                click = None if checked is None else checked.click
            elif options.icp_check > 0 and affine is None:
                checked = checked_proposal(bank, predictor, embedding, gt.shape, annotated.get(key), options.icp_check)
                click = None if checked is None else checked.click
            else:
                click = bank.propose(embedding, gt.shape, annotated.get(key), affine=affine)
            propose_ms = (time.perf_counter() - t0) * 1000
            if click is not None:
                col, row = click.as_int()
                proposal, hit = (click.x, click.y), bool(gt[row, col])
                other = None if hit else sibling_at(pending, sample, col, row)
                sibling = other is not None
                if other is not None and options.icp_follow:
                    pending.remove(other)
                    pending.insert(0, sample)  # the object the order asked for comes right after
                    sample, followed, hit = other, True, True
                    _, gt, ignore = load_sample(sample)
                first = click if hit else None
                if hit and (options.icp_mask or object_map is not None) and checked is not None:
                    t0 = time.perf_counter()
                    first_mask = accepted_prediction(checked, active, annotated.get(key))
                    accept_ms = (time.perf_counter() - t0) * 1000  # the accepting click's own work (polish)
        if memory is not None:
            if not hasattr(active, "set_first_token"):
                raise ClickmaskError("the granularity memory needs the refined inference (not --infer raw)")
            active.set_first_token(memory.preferred())
        ious, clicks, times, mask, first_prediction, crop = annotate_object(active, gt, ignore, options, first, first_mask)
        if not clicks:
            raise ClickmaskError(f"{sample.mask_path}: the robot found nothing to click (empty object?)")
        if first_mask is not None:
            times[0] += accept_ms
        if options.icp or adapter is not None:
            embedding = predictor_embedding(predictor)  # raw: ICP features and OPO inputs
            if options.icp:
                bank.add_click(embedding, clicks[0], gt.shape)
                bank.add_object(embedding, mask, gt.shape)
                if object_map is not None:
                    object_map.add(embedding, mask, gt.shape)
            if adapter is not None:
                # an object left below stop_iou after max_clicks is one a user would have fixed by hand first
                accepted = not options.opo_accepted_only or ious[-1] >= options.stop_iou
                learned = mask if accepted else np.zeros_like(mask)
                view = crop_view(predictor, crop, learned) if adapter.wants_crops and learned.any() else None
                adapter.finished(sequence.category, index, image, embedding, learned, crop=view)
        if memory is not None and (readings := first_click_masks(active, first_prediction, gt.shape)) is not None:
            memory.record(readings[0], readings[1], mask)
        annotated[key] = mask if key not in annotated else (annotated[key] | mask)
        result = InstanceResult(
            name=sample.name, category=sequence.category, ious=ious, clicks=clicks,
            free_first=first is not None, proposal=proposal, hit=hit, click_ms=times,
            propose_ms=propose_ms, sibling=sibling, followed=followed,
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
    """Run every sequence (each with its own click bank) and concatenate the results."""
    out: list[InstanceResult] = []
    for sequence in sequences:
        out += run_sequence(predictor, sequence, options, adapter, on_result)
    return out
