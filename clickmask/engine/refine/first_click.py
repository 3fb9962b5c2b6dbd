"""The first click's mask: which of SAM's multimask tokens (option ``first``).

SAM answers a lone click with several readings (roughly a sub-part, a part and
the whole object, tokens 1-3). ``sam`` takes the best predicted IoU;
``central`` weighs it by how central the click lies in each candidate, since a
user (and the standard robot) clicks well inside the object meant; ``finest``
takes token 1, the finest reading: on a CT or MR slice the coarser readings of
a click inside an organ are mostly the whole body section, never the target.
"""

from __future__ import annotations

import cv2
import numpy as np


#: The mask token of SAM's finest reading of a lone click (``first=finest``).
FINEST = 1


def click_centrality(mask: np.ndarray, x: float, y: float) -> float:
    """How central (x, y) lies in ``mask`` (HxW bool): distance to the mask's
    boundary at the point over the largest such distance; 0 outside, 1 at the
    innermost pixel."""
    h, w = mask.shape
    col, row = min(w - 1, max(0, int(x))), min(h - 1, max(0, int(y)))
    if not mask[row, col]:
        return 0.0
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    return float(dist[row, col] / dist.max())


def pick_central(low_res: np.ndarray, scores: np.ndarray, xy: np.ndarray) -> int:
    """First-click choice among mask tokens 1..K-1: predicted IoU x click centrality.

    low_res: Kx256x256 logits; scores: K; xy: the click in low-res pixels.
    """
    ks = range(1, len(scores))
    return max(ks, key=lambda k: float(scores[k]) * click_centrality(low_res[k] > 0, xy[0], xy[1]))
