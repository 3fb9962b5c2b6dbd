"""SUEM copy-paste augmentation for interactive segmentation (CFR-ICL, Sec. 3.3).

Four ways to make a new (image, ground truth) pair from a *source* object
(the object to segment) and an *extra* image / object drawn from the data:

- ``simple``: the source object is pasted into the extra image; GT = the pasted source object.
- ``union``: the extra object is pasted into the source image, touching the
  source object; GT = source mask OR pasted extra mask (one target made of two objects).
- ``exclusion``: the extra object is pasted over the source object as an
  occluder; GT = source mask AND NOT pasted extra mask.
- ``mixing``: the extra image is blended into the source image; GT = source mask.

Images are HxWx3 uint8 RGB, masks HxW bool. Every function is deterministic
given its ``rng``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clickmask.errors import ClickmaskError

MODES = ("simple", "union", "exclusion", "mixing")


@dataclass
class Augmented:
    """One augmented training pair: HxWx3 uint8 image, HxW bool ground truth, the mode used."""

    image: np.ndarray
    gt: np.ndarray
    mode: str


def _check(image: np.ndarray, mask: np.ndarray, what: str) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ClickmaskError(f"{what}: image {image.shape} and mask {mask.shape} do not match (need HxWx3 and HxW)")
    if not mask.any():
        raise ClickmaskError(f"{what}: the object mask is empty")


def _crop(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The object's bounding box crop of (image, mask)."""
    rows, cols = np.nonzero(mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    return image[r0:r1, c0:c1], mask[r0:r1, c0:c1]


def _fit(patch: np.ndarray, pmask: np.ndarray, hw: tuple[int, int], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Resize the crop by ``scale`` and shrink it further if needed to fit into ``hw``."""
    ph, pw = pmask.shape
    s = min(scale, hw[0] / ph, hw[1] / pw)
    nh, nw = max(1, int(round(ph * s))), max(1, int(round(pw * s)))
    if (nh, nw) != (ph, pw):
        patch = cv2.resize(patch, (nw, nh), interpolation=cv2.INTER_LINEAR)
        pmask = cv2.resize(pmask.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST).astype(bool)
    return patch, pmask


def paste(
    background: np.ndarray, patch: np.ndarray, pmask: np.ndarray, top: int, left: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``patch`` pixels where ``pmask`` at (top, left) into a copy of ``background``.

    Returns (new image, HxW bool mask of the pasted pixels). The patch must fit.
    """
    h, w = background.shape[:2]
    ph, pw = pmask.shape
    if top < 0 or left < 0 or top + ph > h or left + pw > w:
        raise ClickmaskError(f"patch {ph}x{pw} at ({top}, {left}) does not fit into {h}x{w}")
    out = background.copy()
    region = out[top : top + ph, left : left + pw]
    region[pmask] = patch[pmask]
    pasted = np.zeros((h, w), dtype=bool)
    pasted[top : top + ph, left : left + pw] = pmask
    return out, pasted


def simple_paste(src_image, src_mask, extra_image, rng: np.random.Generator, scale=(0.6, 1.0)) -> Augmented:
    """Source object pasted at a random place of the extra image; GT = the pasted object."""
    _check(src_image, src_mask, "simple paste source")
    patch, pmask = _fit(*_crop(src_image, src_mask), extra_image.shape[:2], float(rng.uniform(*scale)))
    top = int(rng.integers(0, extra_image.shape[0] - pmask.shape[0] + 1))
    left = int(rng.integers(0, extra_image.shape[1] - pmask.shape[1] + 1))
    image, pasted = paste(extra_image, patch, pmask, top, left)
    return Augmented(image, pasted, "simple")


def _place_near(src_mask: np.ndarray, pshape: tuple[int, int], rng: np.random.Generator, overlap: bool) -> tuple[int, int]:
    """(top, left) for a patch so that it overlaps (``overlap``) or touches the source object's box."""
    h, w = src_mask.shape
    ph, pw = pshape
    rows, cols = np.nonzero(src_mask)
    if overlap:  # patch centre on a random source pixel
        k = int(rng.integers(len(rows)))
        cy, cx = rows[k], cols[k]
    else:  # patch centre on a random pixel just outside the source bounding box, left/right/above/below
        r0, r1, c0, c1 = rows.min(), rows.max(), cols.min(), cols.max()
        side = int(rng.integers(4))
        cy = int(rng.integers(r0, r1 + 1)) if side < 2 else (r0 - ph // 3 if side == 2 else r1 + ph // 3)
        cx = int(rng.integers(c0, c1 + 1)) if side >= 2 else (c0 - pw // 3 if side == 0 else c1 + pw // 3)
    top = int(np.clip(cy - ph // 2, 0, h - ph))
    left = int(np.clip(cx - pw // 2, 0, w - pw))
    return top, left


def union_paste(src_image, src_mask, extra_image, extra_mask, rng: np.random.Generator, scale=(0.4, 0.8)) -> Augmented:
    """Extra object pasted next to the source object; GT = union of both masks."""
    _check(src_image, src_mask, "union paste source")
    _check(extra_image, extra_mask, "union paste extra")
    src_size = np.sqrt(src_mask.sum())
    ext_size = np.sqrt(extra_mask.sum())
    s = float(rng.uniform(*scale)) * src_size / max(ext_size, 1.0)  # extra object about as big as the source
    patch, pmask = _fit(*_crop(extra_image, extra_mask), src_mask.shape, s)
    top, left = _place_near(src_mask, pmask.shape, rng, overlap=False)
    image, pasted = paste(src_image, patch, pmask, top, left)
    return Augmented(image, src_mask | pasted, "union")


def exclusion_paste(
    src_image, src_mask, extra_image, extra_mask, rng: np.random.Generator, scale=(0.3, 0.6), keep=0.4, tries=5
) -> Augmented:
    """Extra object pasted over the source object (an occluder); GT = source minus the occluder.

    The occluder shrinks until at least ``keep`` of the source stays visible
    (after ``tries`` attempts the last, smallest one is used).
    """
    _check(src_image, src_mask, "exclusion paste source")
    _check(extra_image, extra_mask, "exclusion paste extra")
    src_area = float(src_mask.sum())
    s = float(rng.uniform(*scale)) * np.sqrt(src_area) / max(np.sqrt(extra_mask.sum()), 1.0)
    crop = _crop(extra_image, extra_mask)
    for _ in range(tries):
        patch, pmask = _fit(*crop, src_mask.shape, s)
        top, left = _place_near(src_mask, pmask.shape, rng, overlap=True)
        image, pasted = paste(src_image, patch, pmask, top, left)
        gt = src_mask & ~pasted
        if gt.sum() >= keep * src_area:
            break
        s *= 0.6
    return Augmented(image, gt, "exclusion")


def image_mixing(src_image, src_mask, extra_image, rng: np.random.Generator, alpha=(0.2, 0.5)) -> Augmented:
    """Blend ``(1 - a) * source + a * extra`` (extra resized to the source size); GT = source mask."""
    _check(src_image, src_mask, "image mixing source")
    a = float(rng.uniform(*alpha))
    h, w = src_mask.shape
    extra = cv2.resize(extra_image, (w, h), interpolation=cv2.INTER_LINEAR)
    mixed = (1.0 - a) * src_image.astype(np.float32) + a * extra.astype(np.float32)
    return Augmented(np.clip(mixed + 0.5, 0, 255).astype(np.uint8), src_mask.copy(), "mixing")


def suem_augment(
    mode: str,
    src_image: np.ndarray,
    src_mask: np.ndarray,
    extra_image: np.ndarray,
    extra_mask: np.ndarray,
    rng: np.random.Generator,
) -> Augmented:
    """Apply one SUEM mode (``simple``, ``union``, ``exclusion`` or ``mixing``)."""
    if mode == "simple":
        return simple_paste(src_image, src_mask, extra_image, rng)
    if mode == "union":
        return union_paste(src_image, src_mask, extra_image, extra_mask, rng)
    if mode == "exclusion":
        return exclusion_paste(src_image, src_mask, extra_image, extra_mask, rng)
    if mode == "mixing":
        return image_mixing(src_image, src_mask, extra_image, rng)
    raise ClickmaskError(f"unknown SUEM mode {mode!r} (use one of {', '.join(MODES)})")
