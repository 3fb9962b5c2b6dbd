"""Object-level check of an ICP proposal: segment the best peaks, keep the most familiar object.

The click bank's proposal is the single pixel most similar to earlier first
clicks. That pixel is often on a part (a face, a wheel) or on a look-alike
background patch. :func:`checked_proposal` segments the bank's best few peaks
with the model (one decoder run each, all mask tokens), scores every mask
that contains its peak by how close its object feature is to an object the
user already finished (:meth:`ClickBank.object_similarity`), and proposes the
centre of the best mask (the point farthest from its boundary), where the
robot user and most people would click. The winning mask comes along
(:class:`CheckedProposal`): when the proposal is accepted it is the first
mask shown, so accepting costs no decoder run and shows the object the check
recognised, with the objects already annotated cut out.

:func:`map_checked_proposal` is the alternative for sequences of one object
(video frames): the category's :class:`~clickmask.learning.object_map.ObjectMap`
proposes the click and shapes its mask.

Conventions: clicks use ``x`` = column, ``y`` = row in image pixels; masks are
HxW bool; the embedding is the plain model's 1xCxGxG (no adapter).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.refine import sam_model
from clickmask.engine.predictor import Prediction, Predictor
from clickmask.engine.preprocess import map_coords
from clickmask.geometry.masks import iou
from clickmask.learning.click_bank import ClickBank, mask_feature
from clickmask.learning.object_map import ObjectMap, map_proposal, map_support, prior_logits

#: How many similarity peaks :func:`checked_proposal` segments by default.
DEFAULT_CANDIDATES = 4


@dataclass(eq=False)
class TokenMask:
    """One single-click hypothesis: mask token ``token``'s 256x256 low-res and HxW float32 logits (> 0: object)."""

    token: int
    low_res: np.ndarray
    logits: np.ndarray


def token_masks(predictor: Predictor, click: Click, embedding: np.ndarray, image_hw: tuple[int, int]) -> list[TokenMask]:
    """Every single-click hypothesis (SAM's multimask tokens) for a positive click.

    Decodes ``embedding`` (1xCxGxG of the image of size ``image_hw``, the raw
    one: an adapter selected in the app does not change the check) with the
    SAM decoder of ``predictor`` (or of its ``base``); the predictor's current
    image is not used, so this may run beside clicks on another image. An
    empty list for backends without mask tokens (GrabCut).
    """
    base = sam_model(predictor)
    if base is None:
        return []
    h, w = image_hw
    coords = map_coords(np.array([[click.x, click.y]], np.float32), h, w, base.side)
    low_res, scores = base.decode_candidates(coords, np.ones(1, np.float32), None, embedding=embedding)
    tokens = range(1, len(scores)) if len(scores) > 1 else range(1)
    return [TokenMask(k, low_res[k], base.upsample(low_res[k], size=(h, w))) for k in tokens]


@dataclass(eq=False)
class CheckedProposal:
    """What the object check proposes.

    click: the proposed first click (positive; x = column, y = row in pixels).
    logits: HxW float32 logits (> 0: object) of the object the check
    recognised around it, annotated objects cut out; None when the check did
    not run (no finished object yet, or no usable mask): the plain peak is
    proposed then. low_res: that token's 256x256 logits (the decoder state
    for mask feedback); token: its index among the decoder's outputs;
    similarity: the proposal's confidence (0..1): for the object map's proposal
    the share of its mask the map calls object-like, for the bank's its cosine
    similarity to the nearest finished object.
    """

    click: Click
    logits: np.ndarray | None = None
    low_res: np.ndarray | None = None
    token: int | None = None
    similarity: float | None = None

    def prediction(self, ignore_mask: np.ndarray | None = None) -> Prediction | None:
        """The accepted proposal's first mask as a :class:`Prediction` (None without a checked mask).

        ``ignore_mask`` (HxW bool): objects annotated since the proposal was
        made, cut out as well. None when the cut leaves the click outside the
        mask (the caller then predicts from the click as usual).
        """
        if self.logits is None or self.low_res is None:
            return None
        logits = self.logits if ignore_mask is None else cut_out(self.logits, ignore_mask)
        col, row = self.click.as_int()
        if not logits[row, col] > 0:
            return None
        return Prediction(logits=logits, low_res_logits=self.low_res, score=float(self.similarity or 0.0),
                          info={"proposal_token": self.token})


def accepted_prediction(
    checked: CheckedProposal, predictor: Predictor, ignore_mask: np.ndarray | None = None
) -> Prediction | None:
    """The first Prediction of an accepted checked proposal on the predictor's current image, or None.

    The check's mask (see :meth:`CheckedProposal.prediction`) gets the
    predictor's image-space steps (``polish``: boundary snapping, clicked
    pixels honoured, if its options have them), like any first click's mask; the
    annotated objects (``ignore_mask``, HxW bool) stay cut out.
    """
    pred = checked.prediction(ignore_mask)
    if pred is None:
        return pred
    pred = predictor.polish(pred, [checked.click])
    if ignore_mask is not None:
        pred.logits = cut_out(pred.logits, ignore_mask)
    return pred


def cut_out(logits: np.ndarray, ignore_mask: np.ndarray) -> np.ndarray:
    """HxW float32 ``logits`` with every pixel of ``ignore_mask`` (HxW bool) made background (<= -1)."""
    return np.where(ignore_mask, np.minimum(logits, -1.0), logits).astype(np.float32)


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
) -> CheckedProposal | None:
    """The proposal after the object-level check, or None when the bank proposes nothing.

    ``predictor`` provides the decoder; ``embedding`` is the image's plain
    1xCxGxG one (the predictor's current image is not used); ``ignore_mask``
    (HxW bool) marks annotated objects, which are cut out of every candidate
    mask. Falls back to the bank's own proposal (with no mask) while it holds
    no finished object, or when no peak gives a usable mask.
    """
    peaks = bank.peaks(embedding, image_hw, ignore_mask, count=candidates)
    if not peaks:
        return None
    if not bank.objects:
        return CheckedProposal(peaks[0])
    best: tuple[float, Click, TokenMask, np.ndarray] | None = None
    for peak in peaks:
        col, row = peak.as_int()
        for hypothesis in token_masks(predictor, peak, embedding, image_hw):
            logits = hypothesis.logits if ignore_mask is None else cut_out(hypothesis.logits, ignore_mask)
            mask = logits > 0
            if not mask[row, col]:
                continue
            feature = mask_feature(embedding, mask, image_hw)
            if feature is None:
                continue
            similarity = bank.object_similarity(feature)
            if similarity is not None and (best is None or similarity > best[0]):
                best = (similarity, peak, hypothesis, logits)
    if best is None:
        return CheckedProposal(peaks[0])
    similarity, peak, hypothesis, logits = best
    return CheckedProposal(deepest_point(logits > 0, peak), logits, hypothesis.low_res, hypothesis.token, similarity)


def map_checked_proposal(
    object_map: ObjectMap,
    predictor: Predictor,
    embedding: np.ndarray,
    image_hw: tuple[int, int],
    ignore_mask: np.ndarray | None = None,
) -> CheckedProposal | None:
    """The object map's proposal with its mask, or None before the map has seen an object.

    The click is the map's smoothed maximum off the annotated objects
    (``ignore_mask``, HxW bool); its mask is the decoder's answer to that click
    with the map around it as mask input (:func:`prior_logits`), the token
    agreeing best with the map, annotated objects cut out. ``embedding``: the
    image's plain 1xCxGxG one (the predictor's current image is not used).
    """
    scores = object_map.scores(embedding)
    base = sam_model(predictor)
    if scores is None or base is None:
        return None
    click = map_proposal(scores, image_hw, ignore_mask)
    if click is None:
        return None
    h, w = image_hw
    prior = prior_logits(scores, click, image_hw, ignore_mask)
    coords = map_coords(np.array([[click.x, click.y]], np.float32), h, w, base.side)
    low_res, _ = base.decode_candidates(coords, np.ones(1, np.float32), prior, embedding=embedding)
    agreement = [iou(prior > 0, low_res[k] > 0) for k in range(len(low_res))]
    token = int(np.argmax(agreement))
    logits = base.upsample(low_res[token], size=(h, w))
    if ignore_mask is not None:
        logits = cut_out(logits, ignore_mask)
    return CheckedProposal(click, logits.astype(np.float32), low_res[token], token, map_support(scores, logits > 0))
