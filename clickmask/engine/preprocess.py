"""SAM-style image preprocessing and coordinate mapping.

The encoder sees the image resized so its longest side is ``side`` (1024),
normalised per channel, and zero-padded at the bottom/right to ``side x side``.
Clicks given in original pixel coordinates (x = column, y = row) are mapped to
that resized frame by the same per-axis scale factors.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def resized_shape(height: int, width: int, side: int = 1024) -> tuple[int, int]:
    """(height, width) after resizing so that the longest side equals ``side``."""
    scale = side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def preprocess(image: np.ndarray, side: int = 1024) -> np.ndarray:
    """Turn an HxWx3 uint8 RGB image into the encoder input.

    Returns a 1x3x``side``x``side`` float32 array (resized with bilinear
    filtering, normalised with SAM's mean/std, zero-padded bottom/right).
    """
    h, w = image.shape[:2]
    nh, nw = resized_shape(h, w, side)
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    out = np.zeros((side, side, 3), dtype=np.float32)
    out[:nh, :nw] = (resized.astype(np.float32) - PIXEL_MEAN) / PIXEL_STD
    return np.ascontiguousarray(out.transpose(2, 0, 1)[None])


def map_coords(xy: np.ndarray, height: int, width: int, side: int = 1024) -> np.ndarray:
    """Map Nx2 (x, y) pixel coordinates of the original image to the encoder frame."""
    nh, nw = resized_shape(height, width, side)
    out = np.asarray(xy, dtype=np.float32).copy()
    out[..., 0] *= nw / width
    out[..., 1] *= nh / height
    return out
