"""Benchmark metrics: IoU, NoC (number of clicks) and their per-dataset summary.

Masks are HxW bool arrays. An IoU sequence holds the IoU after click 1, 2, ...
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from clickmask.errors import ClickmaskError

DEFAULT_THRESHOLDS: tuple[float, ...] = (0.85, 0.9, 0.95)


def noc(ious: Sequence[float], threshold: float, max_clicks: int = 20) -> int:
    """Number of clicks: 1-based index of the first IoU >= ``threshold``.

    Only the first ``max_clicks`` IoUs count; returns ``max_clicks`` when none reaches it.
    """
    for index, value in enumerate(list(ious)[:max_clicks], start=1):
        if value >= threshold:
            return index
    return max_clicks


def reached(ious: Sequence[float], threshold: float, max_clicks: int | None = None) -> bool:
    """True if some IoU (among the first ``max_clicks``, if given) is >= ``threshold``."""
    values = list(ious) if max_clicks is None else list(ious)[:max_clicks]
    return any(value >= threshold for value in values)


def threshold_key(threshold: float) -> str:
    """Key used in summaries for a threshold: 0.85 -> "85"."""
    return str(int(round(threshold * 100)))


#: IoU losses after which a click counts as having made the mask worse (``unstable`` in a summary).
DROPS: tuple[float, ...] = (0.1, 0.4)


def unstable(all_ious: Sequence[Sequence[float]], drop: float) -> int:
    """How many objects have a click that lowers their IoU by more than ``drop``.

    The averaged mIoU curve hides such clicks (other objects gain meanwhile);
    an annotator sees a good mask thrown away.
    """
    return sum(1 for ious in all_ious if any(b < a - drop for a, b in zip(ious, list(ious)[1:])))


def summarize(
    all_ious: list[list[float]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    max_clicks: int = 20,
) -> dict:
    """Summarize the IoU sequences of ``n`` objects.

    Returns ``{"noc": {"85": mean NoC, ...}, "failures": {"85": count, ...},
    "miou": [mean IoU after click 1, ..., after click max_clicks], "unstable": {"10": count, "40": count},
    "n": n}`` (``unstable``: objects with a click that lowers IoU by more than 0.1 / 0.4, see :func:`unstable`).
    A failure is an object whose IoU never reaches the threshold within
    ``max_clicks`` clicks (reaching it exactly at click ``max_clicks`` is not a
    failure). A sequence shorter than ``max_clicks`` (stopped early after a
    perfect prediction) is padded with its last IoU for ``miou``.
    """
    if max_clicks < 1:
        raise ClickmaskError(f"max_clicks must be at least 1, got {max_clicks}")
    if len(all_ious) == 0:
        raise ClickmaskError("cannot summarize: no IoU sequences")
    table = np.empty((len(all_ious), max_clicks), dtype=np.float64)
    for row, ious in enumerate(all_ious):
        values = [float(v) for v in ious][:max_clicks]
        if not values:
            raise ClickmaskError(f"IoU sequence {row} is empty (every object needs at least one click)")
        values += [values[-1]] * (max_clicks - len(values))
        table[row] = values

    noc_mean: dict[str, float] = {}
    failures: dict[str, int] = {}
    for t in thresholds:
        key = threshold_key(t)
        nocs = [noc(ious, t, max_clicks) for ious in all_ious]
        noc_mean[key] = float(np.mean(np.asarray(nocs, dtype=np.float64)))
        failures[key] = sum(1 for ious in all_ious if not reached(ious, t, max_clicks))
    miou = [float(v) for v in table.mean(axis=0)]
    drops = {threshold_key(d): unstable([list(i)[:max_clicks] for i in all_ious], d) for d in DROPS}
    return {"noc": noc_mean, "failures": failures, "miou": miou, "unstable": drops, "n": len(all_ious)}
