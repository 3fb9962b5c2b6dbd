"""Honouring clicks the model ignores: small image regions grown from a click.

A positive click the decoder leaves outside the mask is usually on a thin or
small part (a leg, a tail) that the 256x256 decoder output cannot hold; a
negative click left inside the mask is a small hole or gap. Here the pixels
around such a click whose colour matches it and that are connected to it are
added to (or removed from) the mask, as long as that region stays local. Plain
functions over NumPy arrays; coordinates are x, y in pixels.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.clicks import Click

# Colour tolerances tried, largest first, as fractions of the window's median
# colour distance to the click (so they adapt to the image's contrast).
TOLERANCES = (0.6, 0.45, 0.3, 0.2)


def lab_image(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxWx3 float32 CIELAB (L in 0..100)."""
    return cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)


def click_region(
    lab: np.ndarray,
    x: float,
    y: float,
    radius: int,
    tolerances: Sequence[float] = TOLERANCES,
    max_border: float = 0.12,
    max_area: float = 0.3,
) -> tuple[np.ndarray, tuple[int, int]] | None:
    """The region of similar colour connected to (x, y), inside a square window.

    lab: HxWx3 float32 CIELAB image. The window is ``2 * radius + 1`` px on a
    side (clipped at the image border). Colour distance is Euclidean in CIELAB
    to the click's 3x3 median colour; a tolerance is a fraction of the
    window's median distance. For each tolerance, largest first, the
    8-connected pixels within it that connect to the click form a region; the
    first region that stays local (at most ``max_area`` of the window and
    ``max_border`` of the window's inner border: it did not leak) is returned
    as (hxw bool mask of the window, (x0, y0) of the window). None when every
    tolerance leaks.
    """
    h, w = lab.shape[:2]
    col, row = min(w - 1, max(0, int(round(x)))), min(h - 1, max(0, int(round(y))))
    x0, x1 = max(0, col - radius), min(w, col + radius + 1)
    y0, y1 = max(0, row - radius), min(h, row + radius + 1)
    window = lab[y0:y1, x0:x1]
    wh, ww = window.shape[:2]
    seed = np.median(lab[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2].reshape(-1, 3), axis=0)
    dist = np.linalg.norm(window - seed.astype(np.float32), axis=2)
    dist[row - y0, col - x0] = 0.0
    scale = float(np.median(dist))
    if scale <= 1e-3:
        return None
    border = np.zeros((wh, ww), bool)
    # sides that are the image's own border do not count as leaking
    border[0, :], border[-1, :] = y0 > 0, y1 < h
    border[:, 0] |= x0 > 0
    border[:, -1] |= x1 < w
    n_border = max(1, int(border.sum()))
    for frac in tolerances:
        _, labels = cv2.connectedComponents((dist <= frac * scale).astype(np.uint8), connectivity=8)
        region = labels == labels[row - y0, col - x0]
        if region.sum() <= max_area * wh * ww and (region & border).sum() <= max_border * n_border:
            return region, (x0, y0)
    return None


def honor_clicks(
    lab: np.ndarray,
    logits: np.ndarray,
    clicks: Sequence[Click],
    radius: int,
    only_last: bool = False,
) -> tuple[np.ndarray, int]:
    """Make the mask agree with the clicks it ignores, where the image allows.

    lab: HxWx3 float32 CIELAB image; logits: HxW float32 (> 0 object); clicks
    in pixels. A positive click outside the mask adds its :func:`click_region`
    (if that region holds no negative click); a negative click inside the mask
    removes its region's overlap with the mask (if it holds no positive
    click). Returns (new HxW float32 logits, number of clicks honoured).
    """
    h, w = logits.shape
    out = logits
    fixed = 0
    todo = clicks[-1:] if only_last else clicks
    for click in todo:
        col, row = min(w - 1, max(0, int(round(click.x)))), min(h - 1, max(0, int(round(click.y))))
        if (out[row, col] > 0) == click.positive:
            continue
        found = click_region(lab, click.x, click.y, radius)
        if found is None:
            continue
        region, (x0, y0) = found
        rh, rw = region.shape
        others = [c for c in clicks if c.positive != click.positive]
        if any(
            0 <= int(round(c.x)) - x0 < rw and 0 <= int(round(c.y)) - y0 < rh
            and region[int(round(c.y)) - y0, int(round(c.x)) - x0]
            for c in others
        ):
            continue
        if out is logits:
            out = logits.copy()
        sub = out[y0 : y0 + rh, x0 : x0 + rw]
        if click.positive:
            sub[region] = np.maximum(sub[region], 1.0)
        else:
            sub[region] = np.minimum(sub[region], -1.0)
        fixed += 1
    return out, fixed
