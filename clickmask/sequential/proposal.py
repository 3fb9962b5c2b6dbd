"""Object-level check of an ICP proposal: segment the best peaks, keep the most familiar object.

The click bank's proposal is the single pixel most similar to earlier first
clicks. That pixel is often on a part (a face, a wheel) or on a look-alike
background patch. :func:`checked_proposal` segments the bank's best few peaks
with the model (one decoder run each, all mask tokens), scores every mask
that contains its peak by how close its object feature is to an object the
user already finished (:meth:`ClickBank.object_similarity`), and proposes the
centre of the best mask (the point farthest from its boundary), where the
robot user and most people would click.

Conventions: clicks use ``x`` = column, ``y`` = row in image pixels; masks are
HxW bool; the embedding is the plain model's 1xCxGxG (no adapter).
"""

from __future__ import annotations

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Predictor
from clickmask.engine.preprocess import map_coords
from clickmask.sequential.click_bank import ClickBank, mask_feature

#: How many similarity peaks :func:`checked_proposal` segments by default.
DEFAULT_CANDIDATES = 4


def token_masks(predictor: Predictor, click: Click, embedding: np.ndarray, image_hw: tuple[int, int]) -> list[np.ndarray]:
    """HxW bool masks of every single-click hypothesis (SAM's multimask tokens) for a positive click.

    Decodes ``embedding`` (1xCxGxG of the image of size ``image_hw``, the raw
    one: an adapter selected in the app does not change the check) with the
    SAM decoder of ``predictor`` (or of its ``base``); the predictor's current
    image is not used, so this may run beside clicks on another image. An
    empty list for backends without mask tokens (GrabCut).
    """
    base = getattr(predictor, "base", predictor)
    if not hasattr(base, "decode_candidates"):
        return []
    h, w = image_hw
    coords = map_coords(np.array([[click.x, click.y]], np.float32), h, w, base.side)
    low_res, scores = base.decode_candidates(coords, np.ones(1, np.float32), None, embedding=embedding)
    tokens = range(1, len(scores)) if len(scores) > 1 else range(1)
    return [base.upsample(low_res[k], size=(h, w)) > 0 for k in tokens]


def deepest_point(mask: np.ndarray, click: Click) -> Click:
    """The point of ``mask``'s connected part under ``click`` farthest from its boundary (or ``click``).

    mask: HxW bool; the image border counts as boundary. Among the points
    within one pixel of the largest distance (a ridge, for elongated parts),
    the one nearest their mean. Returns ``click`` unchanged when it is not on
    the mask.
    """
    col, row = click.as_int()
    if not mask[row, col]:
        return click
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    part = np.pad(labels == labels[row, col], 1).astype(np.uint8)
    dist = cv2.distanceTransform(part, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    rows, cols = np.nonzero(dist >= dist.max() - 1.0)
    nearest = int(np.argmin((rows - rows.mean()) ** 2 + (cols - cols.mean()) ** 2))
    return Click(x=float(cols[nearest]), y=float(rows[nearest]), positive=True)


def checked_proposal(
    bank: ClickBank,
    predictor: Predictor,
    embedding: np.ndarray,
    image_hw: tuple[int, int],
    ignore_mask: np.ndarray | None = None,
    candidates: int = DEFAULT_CANDIDATES,
) -> Click | None:
    """The proposal after the object-level check, or None when the bank proposes nothing.

    ``predictor`` provides the decoder; ``embedding`` is the image's plain
    1xCxGxG one (the predictor's current image is not used); ``ignore_mask``
    (HxW bool) marks annotated objects, which are cut out of every candidate
    mask. Falls back to the bank's own proposal while it holds no finished
    object, or when no peak gives a usable mask.
    """
    peaks = bank.peaks(embedding, image_hw, ignore_mask, count=candidates)
    if not peaks or not bank.objects:
        return peaks[0] if peaks else None
    best: tuple[float, Click, np.ndarray] | None = None
    for peak in peaks:
        col, row = peak.as_int()
        for mask in token_masks(predictor, peak, embedding, image_hw):
            if ignore_mask is not None:
                mask = mask & ~ignore_mask
            if not mask[row, col]:
                continue
            feature = mask_feature(embedding, mask, image_hw)
            if feature is None:
                continue
            similarity = bank.object_similarity(feature)
            if similarity is not None and (best is None or similarity > best[0]):
                best = (similarity, peak, mask)
    if best is None:
        return peaks[0]
    return deepest_point(best[2], best[1])
