"""Measurements on HxW bool masks: IoU, distance to the boundary, and where a click fixes the largest error.

The click rule is the robot user of the standard interactive segmentation
benchmark (f-BRS / RITM): the next click goes to the error region farthest
from any boundary. False negatives (object missed) give a positive click,
false positives a negative one; pixels in the ignore mask are never errors.
The image border counts as boundary; distances are exact Euclidean. Training
uses the same rule for its simulated corrective clicks.

Conventions: masks are HxW bool arrays, clicks use ``x`` = column, ``y`` = row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from scipy import ndimage

from clickmask.errors import ClickmaskError
from clickmask.engine.clicks import Click

DistanceMethod = Literal["scipy", "cv2"]


def as_mask(array: np.ndarray, what: str) -> np.ndarray:
    """Return ``array`` as a 2-D bool array; raise ClickmaskError if it is not 2-D."""
    mask = np.asarray(array)
    if mask.ndim != 2:
        raise ClickmaskError(f"{what} must be a 2-D HxW mask, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def check_same_shape(**masks: np.ndarray | None) -> None:
    """Raise ClickmaskError naming every shape if the given masks differ in shape."""
    shapes = {name: tuple(m.shape) for name, m in masks.items() if m is not None}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ClickmaskError(f"mask shapes differ: {listed}")


def distance_to_boundary(mask: np.ndarray, method: DistanceMethod = "cv2") -> np.ndarray:
    """Exact Euclidean distance of each ``True`` pixel to the nearest non-mask pixel.

    ``mask`` is HxW bool. The mask is padded by one pixel of ``False`` on every
    side, so the image border counts as boundary: a mask pixel on the border has
    distance 1. Returns HxW float64 (0 outside the mask). ``method`` picks the
    implementation: ``"cv2"`` (default, ``distanceTransform`` with ``DIST_L2`` /
    ``DIST_MASK_PRECISE``, as RITM; about 6x faster) or ``"scipy"``
    (``distance_transform_edt``). Both are exact; cv2 computes in float32, which
    is exact for squared distances below 2**24 (regions under ~4000 px deep).
    """
    mask = as_mask(mask, "mask")
    padded = np.pad(mask, 1, mode="constant", constant_values=False)
    if method == "scipy":
        dist = ndimage.distance_transform_edt(padded).astype(np.float64, copy=False)
    elif method == "cv2":
        dist = cv2.distanceTransform(
            padded.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
        ).astype(np.float64)
    else:
        raise ClickmaskError(f"unknown distance method {method!r} (use 'scipy' or 'cv2')")
    return dist[1:-1, 1:-1]


def next_click(
    gt: np.ndarray,
    pred: np.ndarray,
    ignore: np.ndarray | None,
    clicked: Sequence[Click],
    method: DistanceMethod = "cv2",
) -> Click | None:
    """Return the robot user's next click, or None if there is nothing left to fix.

    ``gt``, ``pred``, ``ignore``: HxW bool (``ignore`` may be None). ``clicked``:
    the previous clicks; their pixels (any sign) get distance 0 so the robot never
    clicks the same pixel twice; clicks outside the image are disregarded.

    False negatives ``gt & ~pred & ~ignore`` and false positives
    ``~gt & pred & ~ignore`` each get the exact Euclidean distance to their region
    boundary (image border included). The click is positive iff the largest FN
    distance is strictly greater than the largest FP distance (a tie gives a
    negative click), at the first pixel in row-major order attaining that maximum.
    Returns None when both maxima are 0. ``method``: see :func:`distance_to_boundary`.
    """
    gt = as_mask(gt, "gt")
    pred = as_mask(pred, "pred")
    ignore = None if ignore is None else as_mask(ignore, "ignore")
    check_same_shape(gt=gt, pred=pred, ignore=ignore)

    valid = np.ones(gt.shape, dtype=bool) if ignore is None else ~ignore
    fn = gt & ~pred & valid
    fp = ~gt & pred & valid
    fn_dist = distance_to_boundary(fn, method)
    fp_dist = distance_to_boundary(fp, method)

    height, width = gt.shape
    for click in clicked:
        col, row = click.as_int()
        if 0 <= row < height and 0 <= col < width:
            fn_dist[row, col] = 0.0
            fp_dist[row, col] = 0.0

    fn_max = float(fn_dist.max(initial=0.0))
    fp_max = float(fp_dist.max(initial=0.0))
    if fn_max <= 0.0 and fp_max <= 0.0:
        return None
    positive = fn_max > fp_max
    dist, best = (fn_dist, fn_max) if positive else (fp_dist, fp_max)
    # argmax on the flattened (C-order) array is the first maximum in row-major order.
    row, col = np.unravel_index(int(np.argmax(dist == best)), dist.shape)
    return Click(x=float(col), y=float(row), positive=bool(positive))


def iou(gt: np.ndarray, pred: np.ndarray, ignore: np.ndarray | None = None) -> float:
    """Intersection over union of HxW bool masks, leaving out ``ignore`` pixels.

    Returns 1.0 when both masks are empty outside ``ignore``.
    """
    gt_b = np.asarray(gt, dtype=bool)
    pred_b = np.asarray(pred, dtype=bool)
    shapes = [gt_b.shape, pred_b.shape]
    names = ["gt", "pred"]
    if ignore is not None:
        valid = ~np.asarray(ignore, dtype=bool)
        shapes.append(valid.shape)
        names.append("ignore")
    else:
        valid = None
    if len(set(shapes)) > 1:
        listed = ", ".join(f"{n} {tuple(s)}" for n, s in zip(names, shapes))
        raise ClickmaskError(f"mask shapes differ: {listed}")
    inter = gt_b & pred_b
    union = gt_b | pred_b
    if valid is not None:
        inter &= valid
        union &= valid
    n_union = int(np.count_nonzero(union))
    if n_union == 0:
        return 1.0
    return int(np.count_nonzero(inter)) / n_union
