"""A per-pixel affine map of an image embedding, in NumPy (no torch on the click path)."""

from __future__ import annotations

import numpy as np

from clickmask.errors import ClickmaskError


def apply_affine(embedding: np.ndarray, affine: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``A x + b`` at every pixel of a BxCxHxW float32 embedding (SAM: 1x256x64x64).

    affine: (A, b) with A of shape C'xC and b of shape C'. Returns a new
    BxC'xHxW float32 array.
    """
    a, b = affine
    x = np.asarray(embedding, dtype=np.float32)
    if x.ndim != 4 or x.shape[1] != a.shape[1]:
        raise ClickmaskError(f"embedding must be Bx{a.shape[1]}xHxW, got shape {x.shape}")
    out = np.einsum("ck,bkhw->bchw", a, x, optimize=True) + b[None, :, None, None]
    return out.astype(np.float32, copy=False)
