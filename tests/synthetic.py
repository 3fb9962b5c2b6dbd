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


def two_part_objects(boxes: list[tuple[int, int, int, int]], hw: tuple[int, int] = (240, 320),
                     seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Objects made of two clearly different parts on a noisy grey HxW image: in each box (x0, y0, x1, y1)
    the top half is dark ochre with thin yellow stripes, the bottom half plain blue.

    Returns (HxWx3 uint8 RGB image, the objects' top-half masks, their whole masks).
    """
    rng = np.random.default_rng(seed)
    img = (np.full((*hw, 3), 120, np.int16) + rng.integers(-8, 9, (*hw, 3))).clip(0, 255).astype(np.uint8)
    tops, wholes = [], []
    for x0, y0, x1, y1 in boxes:
        mid = (y0 + y1) // 2
        top, whole = np.zeros(hw, bool), np.zeros(hw, bool)
        top[y0:mid, x0:x1] = True
        whole[y0:y1, x0:x1] = True
        img[top] = (150, 120, 10)
        stripes = np.zeros(hw, bool)
        stripes[y0:mid:6, x0:x1] = True
        img[stripes] = (230, 200, 30)
        img[whole & ~top] = (30, 60, 200)
        tops.append(top)
        wholes.append(whole)
    return img, tops, wholes
