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


def refine_boundary(
    image: np.ndarray, logits: np.ndarray, radius: int = 3, eps: float = 1e-3, band: int = 8
) -> np.ndarray:
    """Snap the mask boundary to image edges near it.

    image: HxWx3 uint8 RGB; logits: HxW float32 (> 0 object). The object
    probability is guided-filtered with the image's luminance, only inside a
    band of ``band`` px around the current boundary (elsewhere logits are kept).
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
    sub = mask[y0:y1, x0:x1].astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1, 2 * band + 1))
    near = (cv2.dilate(sub, kernel) - cv2.erode(sub, kernel)).astype(bool)
    gray = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    prob = 1.0 / (1.0 + np.exp(-np.clip(logits[y0:y1, x0:x1], -20, 20)))
    filtered = guided_filter(gray, prob.astype(np.float32), radius, eps)
    out = logits.copy()
    region = out[y0:y1, x0:x1]
    refined = (np.clip(filtered, 1e-4, 1 - 1e-4))
    refined_logits = np.log(refined / (1 - refined)).astype(np.float32)
    region[near] = refined_logits[near]
    return out
