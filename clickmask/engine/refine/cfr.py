"""Cascade-Forward Refinement (CFR-ICL): more decoder passes per click, each fed its own output.

``cfr=N`` runs the decoder N more times after a click (not after the first: a
lone click has no mask worth refining) with the same clicks and the previous
pass's low-res logits as mask input; ``acfr=T`` (A-CFR) stops as soon as fewer
than T pixels of the mask change.
"""

from __future__ import annotations

import numpy as np

from clickmask.engine.refine.frame import Frame


def cascade(frame: Frame, coords: np.ndarray, labels: np.ndarray, clicks_inside: int, low_res: np.ndarray,
            score: float, logits: np.ndarray, passes: int, min_change: int = 0
            ) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Refine a prediction (256x256 ``low_res``, its ``score`` and HxW ``logits`` in ``frame``) by up to
    ``passes`` decoder runs; returns (low_res, score, logits, passes run)."""
    run = 0
    for _ in range(passes):
        nxt, nscores = frame.decode(coords, labels, low_res)
        k = frame.base.select_candidate(clicks_inside, nscores)
        new_logits = frame.upsample(nxt[k])
        run += 1
        changed = int(np.count_nonzero((new_logits > 0) != (logits > 0)))
        low_res, score, logits = nxt[k], float(nscores[k]), new_logits
        if min_change and changed < min_change:
            break
    return low_res, score, logits, run
