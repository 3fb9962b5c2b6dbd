"""A click corrects the mask near itself (option ``local``).

SAM's single-mask token often collapses at the second click and drops much of
a good first mask far from where the user clicked. When that happens the new
mask is used only in the click's neighbourhood. Only the mask shown changes;
the decoder keeps being fed its own low-res output (it recovers from a
collapse at the next click better from there than from the patched mask).
"""

from __future__ import annotations

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction
from clickmask.engine.refine.frame import Box
from clickmask.engine.refine.options import InferenceOptions


def applies(options: InferenceOptions, clicks: int, has_previous: bool) -> bool:
    """Whether ``local`` runs for the ``clicks``-th click (from the second to ``local_until``, 0 = all)."""
    until = options.local_until
    return options.local and has_previous and 2 <= clicks <= (until or clicks)


def keep_local(
    previous: np.ndarray, new: np.ndarray, click: Click, k: float = 2.5, keep: float = 0.7
) -> tuple[np.ndarray, Box] | None:
    """Confine the change a click makes to the neighbourhood it points at.

    previous, new: HxW float32 logits before and after ``click`` (x, y pixels).
    The click's reach is ``k`` times its distance to the previous mask's
    boundary (the size of the error it marks), at least 16 px, as a square
    window. If ``new`` keeps at least ``keep`` of the previous mask outside the
    window, it is accepted (returns None). Otherwise the mask collapsed where
    the user did not click: returns (logits that are ``new`` inside the window
    and ``previous`` elsewhere, the window x0, y0, x1, y1).
    """
    prev = previous > 0
    h, w = prev.shape
    col, row = min(w - 1, max(0, int(round(click.x)))), min(h - 1, max(0, int(round(click.y))))
    region = prev if prev[row, col] else ~prev
    dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    reach = max(16.0, k * float(dist[row, col]))
    x0, x1 = max(0, int(col - reach)), min(w, int(col + reach) + 1)
    y0, y1 = max(0, int(row - reach)), min(h, int(row + reach) + 1)
    outside = prev.copy()
    outside[y0:y1, x0:x1] = False
    before = np.count_nonzero(outside)
    if before == 0 or np.count_nonzero(outside & (new > 0)) >= keep * before:
        return None
    fused = previous.astype(np.float32, copy=True)
    fused[y0:y1, x0:x1] = new[y0:y1, x0:x1]
    return fused, (x0, y0, x1, y1)


def keep_previous_far_away(pred: Prediction, previous: Prediction, click: Click,
                           options: InferenceOptions) -> Prediction:
    """``pred`` with the previous mask kept far from ``click`` when the new one collapsed there."""
    fused = keep_local(previous.logits, pred.logits, click, options.local_k, options.local_keep)
    if fused is None:
        return pred
    logits, window = fused
    return Prediction(logits=logits, low_res_logits=pred.low_res_logits, score=pred.score,
                      candidates=pred.candidates, info={**pred.info, "local": window})
