"""Click simulation for training (RITM / CFR-ICL style) and the frame conversions it needs.

A training click sequence starts with random clicks drawn from the ground
truth (:func:`initial_clicks`: positives inside the object, away from its
border; negatives in the background, half of them in a band around the
object), then grows one click at a time at the centre of the largest error of
the model's own prediction. That second part is exactly the benchmark's robot
user, :func:`clickmask.geometry.masks.next_click`.

Conventions: masks are HxW bool; clicks are :class:`Click` (x = column,
y = row, original image pixels); the decoder works in the 1024 frame
(longest side resized to 1024, padded bottom/right) with 256x256 low-res logits.
"""

from __future__ import annotations

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.preprocess import map_coords, resized_shape
from clickmask.errors import ClickmaskError
from clickmask.geometry.masks import distance_to_boundary, next_click

SIDE = 1024
LOW_RES = 256

__all__ = [
    "click_regions", "initial_clicks", "random_click_counts", "next_click", "prompts", "low_res_target", "upsample_logits",
]


def random_click_counts(
    rng: np.random.Generator, max_pos: int, max_neg: int, min_pos: int = 1
) -> tuple[int, int]:
    """Uniform (n_pos in [min_pos, max_pos], n_neg in [0, max_neg])."""
    if not 1 <= min_pos <= max_pos or max_neg < 0:
        raise ClickmaskError(f"invalid click counts: positive {min_pos}..{max_pos}, negative 0..{max_neg}")
    return int(rng.integers(min_pos, max_pos + 1)), int(rng.integers(0, max_neg + 1))


def _pick(rng: np.random.Generator, candidates: np.ndarray, n: int) -> np.ndarray:
    """n distinct (row, col) pixels of a bool map (fewer if it has fewer)."""
    rows, cols = np.nonzero(candidates)
    if len(rows) == 0 or n <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    idx = rng.choice(len(rows), size=min(n, len(rows)), replace=False)
    return np.stack([rows[idx], cols[idx]], axis=1)


def click_regions(gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where :func:`initial_clicks` draws from, for object ``gt`` (HxW bool, not empty).

    Returns (inner, band), both HxW bool: ``inner`` = object pixels at least
    ~1/4 of the object's maximal inner distance from its border; ``band`` =
    background within about a quarter of the object's size of it. They depend
    on the mask only, so a training sample computes them once.
    """
    gt = np.asarray(gt, dtype=bool)
    if gt.ndim != 2 or not gt.any():
        raise ClickmaskError(f"initial clicks need a non-empty 2-D mask, got shape {gt.shape} with {int(gt.sum())} px")
    dist = distance_to_boundary(gt)
    inner = dist >= max(1.0, 0.25 * float(dist.max()))
    size = max(3, int(0.25 * np.sqrt(gt.sum())))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1))
    band = cv2.dilate(gt.astype(np.uint8), kernel).astype(bool) & ~gt
    return inner, band


def initial_clicks(
    gt: np.ndarray,
    rng: np.random.Generator,
    n_pos: int,
    n_neg: int,
    regions: tuple[np.ndarray, np.ndarray] | None = None,
) -> list[Click]:
    """Random first clicks for object ``gt`` (HxW bool, not empty): positives first.

    Positives are drawn uniformly from the object pixels at least ~1/4 of the
    object's maximal inner distance from its border (so never on the edge);
    negatives from the background, every other one from a band around the
    object (width about a quarter of the object's size), the rest anywhere.
    ``regions``: :func:`click_regions` of ``gt`` when already computed.
    """
    gt = np.asarray(gt, dtype=bool)
    inner, band = regions if regions is not None else click_regions(gt)
    clicks = [Click(float(c), float(r), True) for r, c in _pick(rng, inner, n_pos)]
    background = ~gt
    if n_neg > 0 and background.any():
        n_band = (n_neg + 1) // 2 if band.any() else 0
        near = _pick(rng, band, n_band)
        taken = np.zeros_like(gt)
        taken[near[:, 0], near[:, 1]] = True
        far = _pick(rng, background & ~taken, n_neg - len(near))
        clicks += [Click(float(c), float(r), False) for r, c in np.concatenate([near, far])]
    return clicks


def prompts(clicks: list[Click], hw: tuple[int, int], side: int = SIDE) -> tuple[np.ndarray, np.ndarray]:
    """Clicks -> (Nx2 float32 coords in the ``side`` frame, N float32 labels 1/0), as the predictor does."""
    xy = np.array([[c.x, c.y] for c in clicks], dtype=np.float32).reshape(-1, 2)
    labels = np.array([1.0 if c.positive else 0.0 for c in clicks], dtype=np.float32)
    return map_coords(xy, hw[0], hw[1], side), labels


def low_res_target(gt: np.ndarray, side: int = SIDE, low: int = LOW_RES) -> tuple[np.ndarray, np.ndarray]:
    """The HxW bool mask in the decoder's low-res frame.

    Returns (target, valid): both ``low x low`` float32; target is the mask
    resized like the image (longest side -> ``side``) and then by
    ``low / side`` (area averaging, thresholded at 0.5), valid is 1 on the
    image and 0 on the padding.
    """
    h, w = gt.shape
    nh, nw = resized_shape(h, w, side)
    lh, lw = max(1, round(nh * low / side)), max(1, round(nw * low / side))
    small = cv2.resize(np.asarray(gt, np.float32), (lw, lh), interpolation=cv2.INTER_AREA)
    target = np.zeros((low, low), np.float32)
    valid = np.zeros((low, low), np.float32)
    target[:lh, :lw] = small > 0.5
    valid[:lh, :lw] = 1.0
    return target, valid


def upsample_logits(low_res: np.ndarray, hw: tuple[int, int], side: int = SIDE) -> np.ndarray:
    """256x256 low-res logits -> HxW logits (the same steps as ``SamOnnxPredictor.upsample``)."""
    h, w = hw
    nh, nw = resized_shape(h, w, side)
    up = cv2.resize(np.asarray(low_res, np.float32), (side, side), interpolation=cv2.INTER_LINEAR)[:nh, :nw]
    if (nh, nw) != (h, w):
        up = cv2.resize(up, (w, h), interpolation=cv2.INTER_LINEAR)
    return up
