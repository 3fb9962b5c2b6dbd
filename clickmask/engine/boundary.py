"""Edge-aware refinement of upsampled mask logits with the full-resolution image."""

from __future__ import annotations

import cv2
import numpy as np


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Gray-scale guided filter (He et al.): HxW float32 guide in [0, 1], HxW float32 src.

    Returns HxW float32: ``src`` smoothed so that its edges follow the guide's.
    Box filters only, O(HW) whatever the radius.
    """
    ksize = (2 * radius + 1, 2 * radius + 1)

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(guide), box(src)
    cov_ip = box(guide * src) - mean_i * mean_p
    var_i = box(guide * guide) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box(a) * guide + box(b)


# Work area (pixels of the mask's padded box) up to which the filter runs at
# full resolution; above it, it runs subsampled (He & Sun's fast guided filter)
# so that a click at 1 MP stays within its budget.
FULL_RES_AREA = 300_000


def fast_guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, scale: int) -> np.ndarray:
    """Guided filter with the linear coefficients computed at 1/``scale`` resolution.

    Same arguments and result as :func:`guided_filter` (HxW float32); the
    coefficient maps are upsampled bilinearly and applied to the full-resolution
    guide, so edges stay sharp while the work drops by about ``scale**2``.
    """
    if scale <= 1:
        return guided_filter(guide, src, radius, eps)
    h, w = guide.shape
    small = (max(1, w // scale), max(1, h // scale))
    g = cv2.resize(guide, small, interpolation=cv2.INTER_AREA)
    p = cv2.resize(src, small, interpolation=cv2.INTER_AREA)
    r = max(1, round(radius / scale))
    ksize = (2 * r + 1, 2 * r + 1)

    def box(a: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(a, cv2.CV_32F, ksize, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(g), box(p)
    a = (box(g * p) - mean_i * mean_p) / (box(g * g) - mean_i * mean_i + eps)
    b = mean_p - a * mean_i
    mean_a = cv2.resize(box(a), (w, h), interpolation=cv2.INTER_LINEAR)
    mean_b = cv2.resize(box(b), (w, h), interpolation=cv2.INTER_LINEAR)
    return mean_a * guide + mean_b


def refine_boundary(
    image: np.ndarray, logits: np.ndarray, radius: int = 3, eps: float = 1e-3, band: int = 8
) -> np.ndarray:
    """Snap the mask boundary to image edges near it.

    image: HxWx3 uint8 RGB; logits: HxW float32 (> 0 object). The object
    probability is guided-filtered with the image's luminance, only inside a
    band of ``band`` px around the current boundary (elsewhere logits are kept).
    Work areas above :data:`FULL_RES_AREA` pixels use the subsampled filter.
    Returns HxW float32 logits.
    """
    mask = logits > 0
    if not mask.any() or mask.all():
        return logits
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    pad = band + 2 * radius + 1
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
    area = (y1 - y0) * (x1 - x0)
    scale = 1 if area <= FULL_RES_AREA else int(np.ceil(np.sqrt(area / FULL_RES_AREA)))
    near = _band(mask[y0:y1, x0:x1], band, scale)
    gray = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    prob = 1.0 / (1.0 + np.exp(-np.clip(logits[y0:y1, x0:x1], -20, 20)))
    filtered = fast_guided_filter(gray, prob.astype(np.float32), radius, eps, scale)
    refined = np.clip(filtered[near], 1e-4, 1 - 1e-4)
    out = logits.copy()
    region = out[y0:y1, x0:x1]
    region[near] = np.log(refined / (1 - refined)).astype(np.float32)
    return out


def _band(mask: np.ndarray, band: int, scale: int) -> np.ndarray:
    """HxW bool: pixels within about ``band`` px of the mask's boundary
    (computed at 1/``scale`` resolution when ``scale`` > 1)."""
    sub = mask.astype(np.uint8)
    if scale > 1:
        h, w = sub.shape
        sub = cv2.resize(sub, (max(1, w // scale), max(1, h // scale)), interpolation=cv2.INTER_NEAREST)
        band = max(1, int(np.ceil(band / scale)) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    near = cv2.dilate(sub, kernel) - cv2.erode(sub, kernel)
    if scale > 1:
        near = cv2.resize(near, (mask.shape[1], mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    return near.astype(bool)
