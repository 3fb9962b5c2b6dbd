"""Video segmentation metrics of the DAVIS benchmark.

J is the region similarity (IoU), F the contour accuracy: the F-measure of
boundary precision and recall, a boundary pixel counting as matched when the
other mask's boundary lies within ``tolerance x`` the image diagonal
(0.008, DAVIS's value: 8 px at 854x480). Boundaries are one pixel thick
(object pixels with a 4-neighbour outside the object; the image border is not
an object boundary). J&F is their mean. R-AUC-J&F (CiVOS) is the area under
J&F against interaction rounds: 0 at round 0, the J&F after rounds 1..R at
x = 1..R, the last value repeated at x = R + 1, trapezoidal area divided by R + 1.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

#: DAVIS's boundary tolerance as a fraction of the image diagonal.
BOUNDARY_TOLERANCE = 0.008

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


def j_measure(gt: np.ndarray, pred: np.ndarray) -> float:
    """IoU of two HxW bool masks; 1.0 when both are empty."""
    gt = np.asarray(gt, bool)
    pred = np.asarray(pred, bool)
    union = np.count_nonzero(gt | pred)
    return float(np.count_nonzero(gt & pred) / union) if union else 1.0


def boundary(mask: np.ndarray) -> np.ndarray:
    """HxW bool: the object pixels with a 4-neighbour outside the object (image border excluded)."""
    m = np.asarray(mask, np.uint8)
    eroded = cv2.erode(m, _CROSS, borderType=cv2.BORDER_REPLICATE)
    return (m > 0) & (eroded == 0)


def tolerance_px(shape: tuple[int, int], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """The matching distance in pixels: ceil(tolerance x diagonal) (DAVIS)."""
    return int(math.ceil(tolerance * math.hypot(shape[0], shape[1])))


def f_measure(gt: np.ndarray, pred: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """DAVIS's contour accuracy of two HxW bool masks.

    Precision: the share of ``pred``'s boundary pixels within the tolerance
    (a disc) of ``gt``'s boundary; recall the other way round; F = 2PR/(P+R).
    Both boundaries empty: 1.0; one of them empty: 0.0.
    """
    gb, pb = boundary(gt), boundary(pred)
    ng, npred = np.count_nonzero(gb), np.count_nonzero(pb)
    if ng == 0 and npred == 0:
        return 1.0
    if ng == 0 or npred == 0:
        return 0.0
    r = tolerance_px(gb.shape, tolerance)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    g_near = cv2.dilate(gb.astype(np.uint8), disc) > 0
    p_near = cv2.dilate(pb.astype(np.uint8), disc) > 0
    precision = np.count_nonzero(pb & g_near) / npred
    recall = np.count_nonzero(gb & p_near) / ng
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def jf_measure(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float, float]:
    """(J, F, J&F) of one frame."""
    j, f = j_measure(gt, pred), f_measure(gt, pred)
    return j, f, (j + f) / 2


def r_auc(jf_per_round: Sequence[float]) -> float:
    """R-AUC-J&F of the J&F after rounds 1..R (see the module doc); 0.0 for no rounds."""
    values = [float(v) for v in jf_per_round]
    if not values:
        return 0.0
    y = np.array([0.0, *values, values[-1]])
    x = np.arange(len(y), dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / x[-1])


def spearman(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Spearman rank correlation (average ranks for ties); None with fewer than 3 pairs or a constant side."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3:
        return None
    ra, rb = _ranks(a), _ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return None
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    for v in np.unique(x):  # ties share their mean rank
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks
