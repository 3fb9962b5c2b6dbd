"""The NoC evaluation loop: robot clicks -> predictor -> IoU, per object.

Composable like RITM's ``isegm/inference``: the clicker (robot user), the
session (predictor + mask feedback) and this loop are separate pieces.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Predictor
from clickmask.engine.session import InteractiveSession
from clickmask.errors import DatasetError
from clickmask.evaluation.clicker import Clicker
from clickmask.io.datasets import Sample
from clickmask.geometry.masks import iou
from clickmask.io.images import load_image


@dataclass(frozen=True)
class EvalOptions:
    """How the robot user and the engine are run."""

    max_clicks: int = 20
    mask_feedback: bool = True
    #: stop clicking once the IoU reaches this (the rest is padded with it; NoC is unchanged), None = never
    stop_at: float | None = None


@dataclass
class SampleResult:
    """Per-object outcome: IoU after each click and the timings (ms)."""

    name: str
    ious: list[float]
    clicks: list[Click]
    click_ms: list[float]
    embed_ms: float
    embed_cached: bool
    masks: list[np.ndarray] = field(default_factory=list, repr=False)


def evaluate_object(
    predictor: Predictor,
    gt: np.ndarray,
    ignore: np.ndarray | None,
    options: EvalOptions = EvalOptions(),
    name: str = "",
    keep_masks: bool = False,
) -> SampleResult:
    """Run the robot user on the predictor's current image for one object.

    gt, ignore: HxW bool. The prediction starts empty; after each click the IoU
    (ignore pixels excluded) is recorded. If the prediction becomes perfect
    before ``max_clicks`` the robot has nothing left to click and the last IoU
    is carried forward.
    """
    clicker = Clicker(gt, ignore)
    session = InteractiveSession(predictor, mask_feedback=options.mask_feedback)
    pred = np.zeros(gt.shape, dtype=bool)
    ious: list[float] = []
    times: list[float] = []
    masks: list[np.ndarray] = []
    for _ in range(options.max_clicks):
        click = clicker.make_next_click(pred)
        if click is None:
            break
        t0 = time.perf_counter()
        session.add_click(click)
        pred = session.current_mask()
        times.append((time.perf_counter() - t0) * 1000)
        ious.append(iou(gt, pred, ignore))
        if keep_masks:
            masks.append(pred)
        if options.stop_at is not None and ious[-1] >= options.stop_at:
            break
    if ious and len(ious) < options.max_clicks:
        ious += [ious[-1]] * (options.max_clicks - len(ious))
    return SampleResult(
        name=name,
        ious=ious,
        clicks=clicker.clicks,
        click_ms=times,
        embed_ms=float(predictor.last_embed_ms),
        embed_cached=bool(predictor.last_embed_cached),
        masks=masks,
    )


def load_sample(sample: Sample) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Load (image HxWx3 uint8, gt HxW bool, ignore HxW bool or None), sizes checked."""
    image = load_image(sample.image_path)
    gt = sample.load_gt()
    ignore = sample.load_ignore()
    if gt.shape != image.shape[:2]:
        raise DatasetError(
            f"mask '{sample.mask_path}' is {gt.shape[1]}x{gt.shape[0]} but image "
            f"'{sample.image_path}' is {image.shape[1]}x{image.shape[0]}"
        )
    if not gt.any():
        raise DatasetError(f"mask '{sample.mask_path}' is empty: nothing to segment")
    return image, gt, ignore


def evaluate_samples(
    predictor: Predictor,
    samples: Iterable[Sample],
    options: EvalOptions = EvalOptions(),
    on_result: Callable[[SampleResult], None] | None = None,
) -> list[SampleResult]:
    """Evaluate every sample; ``on_result`` is called after each (progress bars)."""
    results = []
    for sample in samples:
        image, gt, ignore = load_sample(sample)
        predictor.set_image(image)
        result = evaluate_object(predictor, gt, ignore, options, name=sample.name)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return results


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux: ru_maxrss is KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
