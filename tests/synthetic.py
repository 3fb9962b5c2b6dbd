"""Small synthetic inputs shared by several test modules (not a test module itself)."""

from __future__ import annotations

import numpy as np


def scene(boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """160x240 RGB uint8 grey image with some texture and red boxes (x0, y0, x1, y1)."""
    img = np.full((160, 240, 3), 90, np.uint8)
    img[::8] = 110  # some texture
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = (220, 30, 30)
    return img


def embedding_and_mask(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random 1x256x64x64 float32 embedding and a 96x128 bool disk mask."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 0.3, size=(1, 256, 64, 64)).astype(np.float32)
    yy, xx = np.mgrid[:96, :128]
    return emb, (yy - 40) ** 2 + (xx - 60 - seed) ** 2 < 20**2
