"""Reference-guided segmentation without training: one example says what every click means.

The user shows one *reference*: an image and a positive mask (what to
segment there: a part, a whole object, a group) and optionally a negative mask
(what not to: the rest of the object). Its representation is the masked
average of the reference image's embedding over each mask (RefCut's
representation extraction), one C-d unit vector per mask, the *prototypes*;
optionally a few *local* prototypes (k-means of the positive cells) keep a
positive region of several looks apart.

On a new image the prototypes give every embedding cell a cosine similarity
(:meth:`Reference.maps`), and the reference acts on an object's first click in
three ways, each switchable (:class:`ReferenceUses`):

- ``choose`` (a): among the decoder's candidate masks for the click (part,
  larger part, whole), take the one whose pooled feature is most like the
  positive prototype and least like the negative one (:func:`candidate_scores`);
- ``prior`` (b): the similarity map around the click, scaled to logits, is the
  decoder's mask input (:func:`prior_low_res`);
- ``points`` (c): automatic prompts where one prototype clearly wins inside the
  candidate region around the click: a negative point where the negative one
  does, a positive point where the positive one does (:func:`auto_points`).

:class:`ReferencePredictor` wraps the default inference
(:class:`~clickmask.engine.refine.RefinedPredictor`) with the same contract
(``set_image`` once, cheap ``predict``): the first click of every object is
decoded with the reference, later clicks go through the wrapped predictor as
usual, the reference reaching them through the mask feedback.

Conventions as in :mod:`clickmask.learning.click_bank`: the embedding is
1xCxGxG (C = 256, G = 64) for the image resized to long side ``side`` (1024)
and zero-padded bottom/right; cell ``(i, j)`` covers encoder pixels
``[16j, 16j + 16) x [16i, 16i + 16)``; masks are HxW bool in image pixels;
the decoder's low-res logits are 256x256 over the padded ``side`` frame.
Plain NumPy (and OpenCV for resizing); no state besides what the objects hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.predictor import Prediction, check_clicks
from clickmask.engine.refine import sam_model
from clickmask.engine.refine.first_click import pick_central
from clickmask.engine.refine.frame import Frame
from clickmask.engine.sam_onnx import LOW_RES, SamOnnxPredictor
from clickmask.errors import ClickmaskError
from clickmask.learning.adapted import AdaptedPredictor
from clickmask.learning.click_bank import SIDE, _cell_fraction, _check_hw, _grid, _valid_cells, pixel_to_grid

EPS = 1e-6
PRIOR_SCALE = 4.0  # mask-input logits: similarity differences in units of their spread, times this
POINT_MARGIN = 0.2  # a prototype "clearly wins" a cell when it is this much more similar (cosine)


def unit(v: np.ndarray) -> np.ndarray:
    """``v`` (..., C) scaled to unit length along its last axis (zero vectors stay zero)."""
    v = np.asarray(v, np.float32)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), EPS)


def cell_weights(mask: np.ndarray, image_hw: tuple[int, int], grid: int, side: int = SIDE) -> np.ndarray:
    """GxG float32: the fraction of each embedding cell an HxW bool mask covers (padding: 0)."""
    h, w = _check_hw(image_hw)
    mask = np.asarray(mask, bool)
    if mask.shape != (h, w):
        raise ClickmaskError(f"mask is {mask.shape[1] if mask.ndim == 2 else '?'}x{mask.shape[0]} "
                             f"but the image is {w}x{h}")
    return _cell_fraction(mask, (h, w), grid, side)


def low_res_weights(low_res: np.ndarray, grid: int) -> np.ndarray:
    """GxG float32 cell coverage of the mask of 256x256 low-res logits (> 0), same padded frame."""
    return cv2.resize((np.asarray(low_res) > 0).astype(np.float32), (grid, grid), interpolation=cv2.INTER_AREA)


def pool(embedding: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """Masked average pooling: the unit C-d mean of a 1xCxGxG embedding weighted by GxG ``weights``.

    None when the weights are (almost) all zero.
    """
    emb = _grid(embedding)
    wts = np.asarray(weights, np.float32).reshape(-1)
    if wts.size != emb.shape[1] * emb.shape[2]:
        raise ClickmaskError(f"weights of {wts.size} cells for a {emb.shape[1]}x{emb.shape[2]} embedding")
    total = float(wts.sum())
    if total <= EPS:
        return None
    feat = emb.reshape(emb.shape[0], -1) @ wts / total
    return unit(feat) if float(np.linalg.norm(feat)) > EPS else None


def similarity(embedding: np.ndarray, prototypes: np.ndarray) -> np.ndarray:
    """Cosine similarity of every cell of a 1xCxGxG embedding to P unit prototypes (PxC or C).

    Returns PxGxG float32 (GxG for a single C-d prototype).
    """
    emb = _grid(embedding)
    c, g = emb.shape[0], emb.shape[1]
    protos = np.asarray(prototypes, np.float32)
    single = protos.ndim == 1
    protos = protos.reshape(-1, c)
    cells = unit(emb.reshape(c, -1).T)  # (G*G)xC
    sims = np.einsum("pc,nc->pn", unit(protos), cells).reshape(-1, g, g)  # no BLAS: see candidate_scores
    return sims[0] if single else sims


def kmeans(points: np.ndarray, k: int, weights: np.ndarray | None = None, iters: int = 10,
           seed: int = 0) -> np.ndarray:
    """k unit centres of N unit C-d ``points`` (spherical k-means, weighted, deterministic); fewer if N < k."""
    pts = unit(points)
    n = len(pts)
    k = min(k, n)
    if k <= 0:
        return np.zeros((0, pts.shape[1] if pts.ndim == 2 else 0), np.float32)
    wts = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
    rng = np.random.default_rng(seed)
    centres = [pts[int(np.argmax(wts))]]  # farthest-point start: deterministic and spread out
    for _ in range(1, k):
        far = 1.0 - np.max(pts @ np.stack(centres).T, axis=1)
        centres.append(pts[int(np.argmax(far * wts + 1e-9 * rng.random(n)))])
    cent = np.stack(centres)
    for _ in range(iters):
        assign = np.argmax(pts @ cent.T, axis=1)
        new = np.stack([(pts[assign == j] * wts[assign == j, None]).sum(0) if np.any(assign == j) else cent[j]
                        for j in range(k)])
        new = unit(new)
        if np.allclose(new, cent, atol=1e-5):
            break
        cent = new
    return cent.astype(np.float32)


@dataclass(frozen=True)
class Reference:
    """A reference's representation: unit prototypes, C-d each.

    positive: the masked average of the reference embedding over the positive mask;
    negative: over the negative mask, or None (positive only);
    local: LxC k-means centres of the positive cells (L may be 0).
    """

    positive: np.ndarray
    negative: np.ndarray | None = None
    local: np.ndarray | None = None

    @classmethod
    def from_masks(cls, embedding: np.ndarray, image_hw: tuple[int, int], positive: np.ndarray,
                   negative: np.ndarray | None = None, local: int = 0, side: int = SIDE) -> "Reference":
        """The reference of an image's 1xCxGxG ``embedding`` and HxW bool masks (``negative`` optional).

        ``local``: how many local positive prototypes to keep (0: none). Raises
        ClickmaskError when the positive mask covers no embedding cell; an empty
        negative mask counts as none.
        """
        g = _grid(embedding).shape[1]
        pos_w = cell_weights(positive, image_hw, g, side)
        pos = pool(embedding, pos_w)
        if pos is None:
            raise ClickmaskError("the reference's positive mask is empty")
        neg = None
        if negative is not None:
            neg = pool(embedding, cell_weights(negative, image_hw, g, side))
        loc = None
        if local > 0:
            cells = _grid(embedding).reshape(_grid(embedding).shape[0], -1).T
            wts = pos_w.reshape(-1)
            keep = wts >= 0.5
            if keep.any():
                loc = kmeans(cells[keep], local, wts[keep])
        return cls(pos, neg, loc)

    @property
    def channels(self) -> int:
        return int(self.positive.shape[0])

    def maps(self, embedding: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(positive, negative or None) GxG cosine similarity maps of a target embedding.

        With local prototypes, the positive map is the best of the global and local ones per cell.
        """
        emb = _grid(embedding)
        if emb.shape[0] != self.channels:
            raise ClickmaskError(f"embedding has {emb.shape[0]} channels, the reference {self.channels}")
        protos = [self.positive] + ([] if self.local is None else list(self.local))
        extra = [] if self.negative is None else [self.negative]
        sims = similarity(emb, np.stack(protos + extra))  # the cells are normalised once for all prototypes
        return sims[:len(protos)].max(axis=0), (sims[-1] if extra else None)

    def positive_only(self) -> "Reference":
        """The same reference without its negative prototype."""
        return Reference(self.positive, None, self.local)


def candidate_scores(reference: Reference, embedding: np.ndarray, low_res: np.ndarray) -> np.ndarray:
    """How well each candidate mask matches the reference (higher is better), K float32.

    low_res: Kx256x256 candidate logits (the decoder's tokens); each mask's
    feature is the target embedding pooled over it; the score is its cosine to
    the positive prototype minus its cosine to the negative one (when there is
    one). An empty candidate scores -inf.
    """
    emb = _grid(embedding)
    g = emb.shape[1]
    weights = np.stack([low_res_weights(lr, g).reshape(-1) for lr in low_res])  # KxGG
    totals = weights.sum(axis=1)
    # KxC in one pass over the embedding; einsum, not a BLAS product: right after a decoder run the ONNX
    # runtime's threads still spin, and a multi-threaded BLAS call then waits for the cores (tens of ms)
    feats = np.einsum("kg,cg->kc", weights, emb.reshape(emb.shape[0], -1)) / np.maximum(totals, EPS)[:, None]
    norms = np.linalg.norm(feats, axis=1)
    feats = unit(feats)
    scores = feats @ reference.positive
    if reference.negative is not None:
        scores = scores - feats @ reference.negative
    return np.where((totals > EPS) & (norms > EPS), scores, -np.inf).astype(np.float32)


def choose_candidate(reference: Reference, embedding: np.ndarray, low_res: np.ndarray,
                     tokens: Sequence[int] | None = None) -> int:
    """The candidate (index into ``low_res``, among ``tokens``, default all but token 0 when K > 1)
    that best matches the reference (:func:`candidate_scores`)."""
    scores = candidate_scores(reference, embedding, low_res)
    ks = list(tokens) if tokens is not None else (list(range(1, len(low_res))) if len(low_res) > 1 else [0])
    return max(ks, key=lambda k: float(scores[k]))


def contrast_map(reference: Reference, embedding: np.ndarray, image_hw: tuple[int, int],
                 side: int = SIDE) -> np.ndarray:
    """GxG float32: positive minus negative similarity (positive only: minus its median over the image)."""
    pos, neg = reference.maps(embedding)
    if neg is not None:
        return (pos - neg).astype(np.float32)
    valid = _valid_cells(image_hw, pos.shape[0], side)
    return (pos - float(np.median(pos[valid]))).astype(np.float32)


def _click_cell(click: Click, image_hw: tuple[int, int], g: int, side: int) -> tuple[int, int]:
    gx, gy = pixel_to_grid(click.x, click.y, image_hw, g, side)
    return min(max(int(round(gy)), 0), g - 1), min(max(int(round(gx)), 0), g - 1)


def prior_low_res(reference: Reference, embedding: np.ndarray, image_hw: tuple[int, int], click: Click,
                  region: np.ndarray | None = None, scale: float = PRIOR_SCALE, side: int = SIDE) -> np.ndarray:
    """SAM's 256x256 mask input from the reference: the contrast map around ``click``, as logits.

    Cells where the positive side wins (:func:`contrast_map` > 0) that are not
    connected (8-neighbourhood) to the click's cell, lie in the padding or
    outside ``region`` (GxG bool, e.g. the largest candidate around the click),
    are made background. The map is divided by its spread and times ``scale``.
    """
    h, w = _check_hw(image_hw)
    cmap = contrast_map(reference, embedding, (h, w), side)
    g = cmap.shape[0]
    usable = _valid_cells((h, w), g, side)
    if region is not None:
        usable &= np.asarray(region, bool)
    grid = np.where(usable, cmap, np.minimum(cmap, -abs(float(cmap.std())) - EPS))
    row, col = _click_cell(click, (h, w), g, side)
    grid[row, col] = max(float(grid[row, col]), EPS)  # the click is on the object
    _, labels = cv2.connectedComponents((grid > 0).astype(np.uint8), connectivity=8)
    grid = np.where(labels == labels[row, col], grid, np.minimum(grid, -EPS)).astype(np.float32)
    low = cv2.resize(grid, (LOW_RES, LOW_RES), interpolation=cv2.INTER_LINEAR)
    return (low / max(float(np.std(low)), EPS) * scale).astype(np.float32)


def auto_points(reference: Reference, embedding: np.ndarray, image_hw: tuple[int, int], click: Click,
                region: np.ndarray, margin: float = POINT_MARGIN, side: int = SIDE,
                negatives: int = 1, positives: int = 0) -> list[Click]:
    """Automatic prompts inside ``region`` (GxG bool cells around the click): up to ``negatives``
    negative clicks at the cells where the negative prototype wins by more than ``margin`` (most
    first), and up to ``positives`` positive clicks where the positive one wins by more than
    ``margin``; never on the click's own cell or its neighbours, at least 3 cells apart.
    Needs a negative prototype; returns [] otherwise. Clicks are at cell centres in image pixels.
    """
    if reference.negative is None:
        return []
    h, w = _check_hw(image_hw)
    pos, neg = reference.maps(embedding)
    assert neg is not None
    g = pos.shape[0]
    usable = np.asarray(region, bool) & _valid_cells((h, w), g, side)
    row, col = _click_cell(click, (h, w), g, side)
    usable[max(0, row - 1):row + 2, max(0, col - 1):col + 2] = False
    scale = side / max(h, w) / (side / g)  # grid units per pixel
    out: list[Click] = []
    for diff, count, positive in ((neg - pos, negatives, False), (pos - neg, positives, True)):
        taken: list[tuple[int, int]] = []
        order = np.argsort(-np.where(usable, diff, -np.inf), axis=None)
        for flat in order[: g * g]:
            if len(taken) >= count:
                break
            r, c = divmod(int(flat), g)
            if not usable[r, c] or diff[r, c] <= margin:
                break
            if any(abs(r - r0) < 3 and abs(c - c0) < 3 for r0, c0 in taken):
                continue
            x, y = (c + 0.5) / scale - 0.5, (r + 0.5) / scale - 0.5
            if 0 <= x < w and 0 <= y < h:
                taken.append((r, c))
                out.append(Click(float(x), float(y), positive))
    return out


@dataclass(frozen=True)
class ReferenceUses:
    """Which uses of the reference are on (``choose`` a, ``prior`` b, ``points`` c, ``learned`` prompts)
    and the negative prototype.

    ``learned``: the learned dense prompt (:mod:`clickmask.learning.reference_prompts`) on every
    click of the object; needs the prompt encoder's weights (``ReferencePredictor(prompts=...)``);
    ``learned_first``: on the object's first click only (later clicks get its mask fed back).
    ``negative``: use the reference's negative prototype (False: positive only).
    ``text``: "choose,prior,points,learned,positive_only" style, parsed by :meth:`parse`.
    """

    choose: bool = True
    prior: bool = False
    points: bool = False
    negative: bool = True
    learned: bool = False
    learned_first: bool = False

    @classmethod
    def parse(cls, text: str) -> "ReferenceUses":
        """``"choose,prior"`` -> those on; ``"positive_only"`` drops the negative; ``"none"``: all off."""
        parts = {p.strip() for p in text.split(",") if p.strip()}
        names = {"choose", "prior", "points", "learned", "learned_first"}
        unknown = parts - names - {"positive_only", "none"}
        if unknown:
            raise ClickmaskError(f"unknown reference use {sorted(unknown)[0]!r} "
                                 f"(use a comma-separated subset of choose, prior, points, learned, learned_first, "
                                 f"positive_only)")
        return cls(choose="choose" in parts, prior="prior" in parts, points="points" in parts,
                   negative="positive_only" not in parts, learned=bool(parts & {"learned", "learned_first"}),
                   learned_first="learned_first" in parts)

    @property
    def first_click(self) -> bool:
        """Whether an object's first click is decoded by the reference's own steps (choose, prior, points)."""
        return self.choose or self.prior or self.points

    def text(self) -> str:
        on = [f.name for f in fields(self) if f.name != "negative" and getattr(self, f.name)]
        if self.learned_first:
            on.remove("learned")
        return ",".join(on + ([] if self.negative else ["positive_only"])) or "none"


class ReferencePredictor:
    """The default inference with a reference: same contract as the predictor it wraps.

    ``inner``: a :class:`~clickmask.engine.refine.RefinedPredictor` (its ``base``
    is the SAM ONNX model). :meth:`set_reference` sets or clears the reference
    (None: ``predict`` is exactly the inner predictor's). With a reference, an
    object's first click (a lone click; boxes are left alone) is decoded here
    with the switched-on uses, then polished by the inner predictor's
    image-space steps; every later click is the inner predictor's, fed the
    first mask back. ``info["reference"]`` records what the reference did.
    With a reference, the first click's token is the reference's choice (a
    category's learned first-click token, ``set_first_token``, waits until the
    reference is cleared) and ``flip`` does not apply to it.

    ``prompts``: learned reference prompts (:class:`~clickmask.learning.reference_prompts.ReferencePrompts`);
    the inner predictor then decodes through a
    :class:`~clickmask.learning.reference_prompts.PromptedPredictor` view of its model, and with the
    ``learned`` use every click of the object (the image's and zoom crops' embeddings) carries the
    reference's dense prompt; with ``learned`` alone, every click is the inner predictor's.
    """

    is_fallback = False

    def __init__(self, inner, reference: Reference | None = None, uses: ReferenceUses = ReferenceUses(),
                 prompts=None) -> None:
        base = sam_model(inner)
        if base is None:
            raise ClickmaskError("a reference needs the SAM model's embeddings and decoder (not the GrabCut fallback)")
        if prompts is not None:
            inner, base = _prompted(inner, base)
        self.inner = inner
        self.base = base
        self.model_id = inner.model_id
        self.reference = reference
        self.uses = uses
        self.prompts = prompts
        self.last_predict_ms = 0.0
        self._sync_prompt()

    def set_reference(self, reference: Reference | None, uses: ReferenceUses | None = None) -> None:
        """Use ``reference`` from the next object on (None: no reference); ``uses`` replaces the switches."""
        self.reference = reference
        if uses is not None:
            self.uses = uses
        self._sync_prompt()

    def set_prompts(self, prompts) -> None:
        """Use another learned prompt encoder (:class:`~clickmask.learning.reference_prompts.ReferencePrompts`).

        The predictor must have been made with one (``prompts=``), so that its model carries prompts.
        """
        if self.prompts is None and prompts is not None:
            raise ClickmaskError("make the ReferencePredictor with prompts= to switch learned prompts later")
        self.prompts = prompts
        self._sync_prompt()

    def _sync_prompt(self) -> None:
        """Give the model the learned prompt of the reference in use (or none)."""
        from clickmask.learning.reference_prompts import PromptedPredictor

        if self.reference is not None and self.uses.learned and self.prompts is None:
            raise ClickmaskError("the 'learned' reference use needs learned reference prompts (a trained file)")
        self._encoded = None
        if isinstance(self.base, PromptedPredictor):
            on = self.reference is not None and self.uses.learned
            self._encoded = self.prompts.encode(self.reference, self.uses.negative) if on else None
            self.base.set_prompt(self._encoded)

    def reference_of(self, image: np.ndarray, positive: np.ndarray, negative: np.ndarray | None = None,
                     local: int = 0) -> Reference:
        """The reference of an HxWx3 image (its raw embedding from the model's cache) and HxW bool masks."""
        embedding, _ = SamOnnxPredictor.image_embedding(self.base, image)  # never an OPO-adapted one
        return Reference.from_masks(embedding, image.shape[:2], positive, negative, local, self.base.side)

    # the predictor contract ------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        self.inner.set_image(image)

    def prefetch(self, image: np.ndarray) -> bool:
        return self.inner.prefetch(image)

    def polish(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        return self.inner.polish(pred, clicks)

    def set_first_token(self, token: int | None) -> None:
        if hasattr(self.inner, "set_first_token"):
            self.inner.set_first_token(token)

    @property
    def last_embed_ms(self) -> float:
        return self.inner.last_embed_ms

    @property
    def last_embed_cached(self) -> bool:
        return self.inner.last_embed_cached

    @property
    def image_size(self) -> tuple[int, int]:
        return self.inner.image_size

    def predict(self, clicks: Sequence[Click], previous: Prediction | None = None,
                box: BoxPrompt | None = None) -> Prediction:
        """The inner prediction, except an object's first click with a reference (see the class doc)."""
        if self._encoded is not None and self.uses.learned_first:  # the prompt on an object's first click only
            self.base.set_prompt(self._encoded if box is None and len(clicks) == 1 else None)  # type: ignore[attr-defined]
        if self.reference is None or box is not None or len(clicks) != 1 or not self.uses.first_click:
            return self.inner.predict(clicks, previous, box)  # learned prompts alone: in the embeddings
        t0 = time.perf_counter()
        h, w = self.image_size
        check_clicks(clicks, h, w)
        pred = self.first_click(clicks[0])
        pred = self.inner.polish(pred, clicks)
        self.last_predict_ms = (time.perf_counter() - t0) * 1000
        return pred

    def first_click(self, click: Click) -> Prediction:
        """The first click's prediction with the reference's uses (before the image-space steps)."""
        ref = self.reference
        assert ref is not None
        uses = self.uses
        if not uses.negative:
            ref = ref.positive_only()
        h, w = self.image_size
        base = self.base
        frame = Frame.full(base, (h, w))
        # the reference was pooled from a raw embedding: compare it with this image's raw one (the decoder
        # itself may run on a category's OPO-adapted embedding)
        emb = base.raw_embedding if isinstance(base, AdaptedPredictor) else frame.embedding
        g = _grid(emb).shape[1]
        coords, labels = frame.prompts([click])
        low_res, scores = frame.decode(coords, labels, None)
        info: dict = {}
        default = (pick_central(low_res, scores, coords[0] * LOW_RES / base.side)
                   if getattr(getattr(self.inner, "options", None), "first", "sam") == "central" and len(scores) > 1
                   else base.select_candidate(1, scores))
        region = self._region(low_res, g)
        if uses.prior:
            prior = prior_low_res(ref, emb, (h, w), click, region, side=base.side)
            low_res, scores = frame.decode(coords, labels, prior)
            info["prior"] = True
        if uses.choose and len(scores) > 1:
            best = choose_candidate(ref, emb, low_res)
        elif uses.prior and len(scores) > 1:
            best = pick_central(low_res, scores, coords[0] * LOW_RES / base.side)
        else:
            best = default
        info["token"] = best
        first_info = {"first_default": default, "first_low_res": low_res, "first_token": best}
        current, score = low_res[best], float(scores[best])
        candidates = [Prediction(frame.upsample(low_res[k]), low_res[k], float(scores[k]))
                      for k in range(len(scores)) if k != best]
        if uses.points:
            extra = auto_points(ref, emb, (h, w), click, region, side=base.side)
            if extra:
                pc, pl = frame.prompts([click, *extra])
                refined, rscores = frame.decode(pc, pl, current)
                current, score = refined[0], float(rscores[0])
                info["points"] = [(c.x, c.y, c.positive) for c in extra]
        pred = Prediction(logits=frame.upsample(current), low_res_logits=current, score=score,
                          candidates=candidates, info={"cfr_steps": 0, **first_info, "reference": info})
        return pred

    @staticmethod
    def _region(low_res: np.ndarray, g: int) -> np.ndarray:
        """GxG bool: the cells of the largest candidate mask, grown by one cell (where the object may be)."""
        areas = [(lr > 0).sum() for lr in low_res]
        big = low_res_weights(low_res[int(np.argmax(areas))], g) > 0.25
        return cv2.dilate(big.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0


def _prompted(inner, base: SamOnnxPredictor):
    """(``inner`` decoding through a PromptedPredictor view of ``base``, that view); kept when it already is one."""
    from clickmask.engine.refine import RefinedPredictor
    from clickmask.learning.reference_prompts import PromptedPredictor

    if isinstance(base, PromptedPredictor):
        return inner, base
    view = PromptedPredictor.sharing(base)
    if isinstance(inner, RefinedPredictor):
        return RefinedPredictor(view, inner.options), view
    if inner is base:
        return view, view
    raise ClickmaskError("learned reference prompts need a plain or refined SAM predictor")
