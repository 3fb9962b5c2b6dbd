"""A small correction stays small (option ``merge``).

A corrective click marks one error region, and its reach (``merge_k`` times
the click's distance to the previous mask's edge, at least 16 px) says how big
that error is. When the error is small next to the object (reach under
``merge_reach`` times the square root of the mask's area), the decoder's
answer may still change the mask far away from the click; such changes are
where a click makes a good mask worse (GrabCut and Berkeley replays:
docs/decisions/0014-small-corrections-stay-local.md). If more than
``merge_share`` of the mask's area changes beyond the reach, the new mask is
taken only within the reach and the previous one stands elsewhere. Big errors
(an early, rough mask) are left to the decoder: there a far change is usually
the object being found.
"""

from __future__ import annotations

import math

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction
from clickmask.engine.refine.frame import Box
from clickmask.engine.refine.local import click_window, inside_window, with_mask
from clickmask.engine.refine.options import InferenceOptions


def applies(options: InferenceOptions, prompts: int, has_previous: bool) -> bool:
    """Whether ``merge`` runs for the ``prompts``-th prompt of an object (from ``merge_from``, at least the 2nd)."""
    return options.merge and has_previous and prompts >= max(2, options.merge_from)


def keep_far_away(previous: np.ndarray, new: np.ndarray, click: Click, k: float = 2.5,
                  small: float = 0.25, share: float = 0.05) -> tuple[np.ndarray, Box] | None:
    """Logits that are ``new`` within a small correction's reach and ``previous`` beyond it, or None.

    previous, new: HxW float32 logits before and after ``click`` (x, y pixels).
    Returns None (take ``new`` as it is) when the click's reach is at least
    ``small`` x sqrt(mask area) or at most ``share`` of the mask's area
    changes outside the window; else (the fused logits, the window).
    """
    prev, now = previous > 0, new > 0
    area = np.count_nonzero(prev)
    if area == 0:
        return None
    (x0, y0, x1, y1), reach = click_window(prev, click, k)
    if reach >= small * math.sqrt(area):
        return None
    far = prev ^ now
    far[y0:y1, x0:x1] = False
    if np.count_nonzero(far) <= share * area:
        return None
    return inside_window(previous, new, (x0, y0, x1, y1)), (x0, y0, x1, y1)


def keep_small_correction_local(pred: Prediction, previous: Prediction, click: Click,
                                options: InferenceOptions) -> Prediction:
    """``pred`` with the previous mask kept beyond a small correction's reach (the decoder keeps its own low-res logits)."""
    fused = keep_far_away(previous.logits, pred.logits, click, options.merge_k, options.merge_reach,
                          options.merge_share)
    if fused is None:
        return pred
    return with_mask(pred, fused[0], "merge", fused[1])
