"""Inference-time refinements of the SAM ONNX predictor, each a switchable option.

``RefinedPredictor`` wraps a :class:`SamOnnxPredictor` and implements the same
``set_image`` / ``predict(clicks, previous)`` interface, so the app, the
session and ``clickmask eval`` use it unchanged. Options (all off by default,
``InferenceOptions.parse("cfr=1,consistency")`` builds them from text):

- ``cfr=N``: Cascade-Forward Refinement (CFR-N): after the prediction of every
  click but the first (a lone click has no mask worth refining), run the decoder N more times with the same clicks, feeding its own low-res
  logits back. ``acfr=T`` makes it adaptive (A-CFR): stop as soon as fewer
  than T pixels of the mask change.
- ``consistency``: a positive click must end up inside the mask and a negative
  one outside. When violated, cheap alternatives are tried (more refinement
  passes, the other mask tokens, early on no mask feedback) and one is kept
  only if it satisfies strictly more clicks.
- ``zoom``: focus view. From click ``zoom_from`` on, each click is first
  predicted on the whole image; then the object (that mask + positive
  clicks) is cropped with margin ``zoom_expand`` and minimum side ``zoom_min``
  px, the crop is encoded at full model resolution (embedding cached like an
  image's), the clicks inside it are mapped into it, and its prediction is
  pasted over the whole-image one. The crop is kept while the object stays
  inside it; no zoom when the crop would cover more than ``zoom_max_frac`` of
  the image's long side (no resolution to gain).
- ``first=all``: for the first click pick among all four mask tokens by
  predicted IoU (SAM's default, ``first=sam``, considers tokens 1-3 only).
  ``first=central`` weighs tokens 1-3's predicted IoU by how central the
  click lies in each candidate (users click inside the object they mean).
- ``local`` (``local_k``, ``local_keep``, ``local_until``: last click it
  applies to, 0 = all): a click corrects the mask near
  itself; when the decoder's answer to a click drops much of the previous mask
  far from it (SAM's single-mask token often collapses at the second click),
  the new mask is used only in the click's neighbourhood (see :func:`keep_local`).
- ``pick=guard``: for 2+ clicks, replace a collapsing token 0 by the mask
  token closest to the previous mask (measured; not recommended).
- ``components``: keep only the mask's connected components that contain a
  positive click (stray blobs elsewhere cost the user negative clicks).
- ``honor`` (``honor_radius``: fraction of the image's long side): a click the
  mask still disagrees with (a positive one outside, a negative one inside)
  adds or removes the small region of similar colour connected to it, when that
  region stays local (thin parts the 256x256 decoder output loses; see
  :mod:`clickmask.engine.click_regions`).
- ``flip``: test-time augmentation: the mirrored image (its own embedding,
  cached like any image's) is decoded with the mirrored clicks and its own
  mask feedback, and the two logit maps are averaged (whole image only).
- ``boundary``: edge-aware guided filtering of the upsampled logits near the
  boundary, with the full-resolution image as guide.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.boundary import refine_boundary
from clickmask.engine.click_regions import honor_clicks, lab_image
from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction, check_clicks
from clickmask.engine.preprocess import resized_shape
from clickmask.engine.sam_onnx import LOW_RES, SamOnnxPredictor
from clickmask.errors import ClickmaskError

PICK_RULES = ("sam", "guard")

# The configuration the app and `clickmask eval` use by default: a better first mask
# (first=central), the second click cannot wipe it out (local until click 2), a crop
# refines from click 3 (zoom), the edge follows the image (boundary) and ignored clicks
# count (honor). Why: docs/decisions/0001-default-inference-options.md.
RECOMMENDED = "first=central,local,local_until=2,zoom,zoom_expand=1.8,zoom_from=3,boundary,honor"

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)


@dataclass(frozen=True)
class InferenceOptions:
    """Switches and parameters of the inference refinements (see module doc)."""

    cfr: int = 0
    acfr: int = 0
    consistency: bool = False
    zoom: bool = False
    zoom_from: int = 2
    zoom_expand: float = 1.4
    zoom_min: int = 200
    zoom_max_frac: float = 0.8
    first: str = "sam"
    pick: str = "sam"
    guard: float = 0.5
    boundary: bool = False
    flip: bool = False
    honor: bool = False
    honor_radius: float = 0.05
    components: bool = False
    local: bool = False
    local_k: float = 2.5
    local_keep: float = 0.7
    local_until: int = 0

    @classmethod
    def parse(cls, text: str | None) -> "InferenceOptions":
        """Parse ``"cfr=1,zoom,zoom_expand=1.6"`` (bare names switch a flag on).

        None or ``"default"`` gives :data:`RECOMMENDED` (what the app and
        ``clickmask eval`` use unless told otherwise); ``""``, ``"raw"`` or
        ``"none"`` give the raw model (every option off).
        """
        if text is None or text.strip() == "default":
            text = RECOMMENDED
        if text.strip() in ("", "raw", "none"):
            return cls()
        types = {f.name: f.type for f in fields(cls)}
        values: dict = {}
        for item in (p.strip() for p in text.split(",") if p.strip()):
            name, _, raw = item.partition("=")
            name = name.strip()
            if name not in types:
                raise ClickmaskError(
                    f"unknown inference option {name!r}; known: {', '.join(sorted(types))}"
                )
            kind = types[name]
            try:
                if kind in ("bool", bool):
                    values[name] = raw.strip().lower() not in ("0", "false", "off", "no") if raw else True
                elif kind in ("int", int):
                    values[name] = int(raw)
                elif kind in ("float", float):
                    values[name] = float(raw)
                else:
                    values[name] = raw.strip()
            except ValueError:
                raise ClickmaskError(f"inference option {item!r}: expected a {kind} value") from None
        opts = cls(**values)
        if opts.first not in ("sam", "all", "central"):
            raise ClickmaskError(f"inference option first={opts.first!r}: use 'sam', 'all' or 'central'")
        if opts.pick not in PICK_RULES:
            raise ClickmaskError(f"inference option pick={opts.pick!r}: use one of {', '.join(PICK_RULES)}")
        return opts

    def changed(self) -> dict:
        """The options that differ from the defaults (for reports)."""
        default = asdict(InferenceOptions())
        return {k: v for k, v in asdict(self).items() if v != default[k]}


def _satisfied(logits: np.ndarray, clicks: Sequence[Click], offset: tuple[int, int] = (0, 0)) -> int:
    """How many clicks agree with the mask: positive inside, negative outside."""
    h, w = logits.shape
    ok = 0
    for c in clicks:
        x, y = int(round(c.x)) - offset[0], int(round(c.y)) - offset[1]
        if 0 <= x < w and 0 <= y < h:
            ok += int((logits[y, x] > 0) == c.positive)
    return ok


def _bbox(mask: np.ndarray) -> Box | None:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def sam_model(predictor) -> SamOnnxPredictor | None:
    """The SAM ONNX model a predictor decodes with (itself, or a refined predictor's base); None for GrabCut."""
    base = predictor.base if isinstance(predictor, RefinedPredictor) else predictor
    return base if isinstance(base, SamOnnxPredictor) else None


@dataclass
class InferenceStats:
    """Counters a benchmark attaches to a :class:`RefinedPredictor` (``predictor.stats = InferenceStats()``).

    zoom_encodes: new zoom-in crops (an encoder pass unless cached);
    zoom_encode_ms: the crop encodes that missed the cache; step_ms: ms per
    call of the image-space steps.
    """

    zoom_encodes: int = 0
    zoom_encode_ms: list[float] = field(default_factory=list)
    step_ms: dict[str, list[float]] = field(default_factory=lambda: {"honor": [], "boundary": []})


class RefinedPredictor:
    """A SAM ONNX predictor with the refinements of :class:`InferenceOptions`."""

    is_fallback = False

    def __init__(self, base: SamOnnxPredictor, options: InferenceOptions = InferenceOptions()) -> None:
        self.base = base
        self.options = options
        self.model_id = base.model_id
        self._image: np.ndarray | None = None
        self._lab: np.ndarray | None = None
        self.last_predict_ms = 0.0
        self.stats: InferenceStats | None = None  # a benchmark's counters; None (off) in the app
        self.first_token: int | None = None

    def set_first_token(self, token: int | None) -> None:
        """Decode the next objects' first click with mask token ``token`` (None: the options' own choice).

        A per-category preference learned from finished objects
        (:class:`clickmask.learning.granularity.GranularityMemory`); it stays
        until changed. Only single-click predictions are affected.
        """
        self.first_token = token

    # delegated image handling ------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Set an HxWx3 uint8 RGB image (see SamOnnxPredictor.set_image)."""
        self.base.set_image(image)
        if image is not self._image:
            self._lab = None
        self._image = image

    def prefetch(self, image: np.ndarray) -> bool:
        """Cache the image's embedding in the background (and the mirrored one's with ``flip``)."""
        computed = self.base.prefetch(image)
        if self.options.flip:
            computed = self.base.prefetch(np.ascontiguousarray(image[:, ::-1])) or computed
        return computed

    @property
    def last_embed_ms(self) -> float:
        return self.base.last_embed_ms

    @property
    def last_embed_cached(self) -> bool:
        return self.base.last_embed_cached

    @property
    def image_size(self) -> tuple[int, int]:
        return self.base.image_size

    # prediction ----------------------------------------------------------------
    def predict(self, clicks: Sequence[Click], previous: Prediction | None = None) -> Prediction:
        """Predict with the configured refinements; same contract as the base predictor.

        With zoom-in, each click first runs on the whole image (so the object
        can grow anywhere), then the object's crop is predicted at full model
        resolution and pasted over the whole-image result.
        """
        t0 = time.perf_counter()
        h, w = self.image_size
        check_clicks(clicks, h, w)
        full = _Frame.full(self.base, (h, w))
        pred = self._predict_in_frame(full, clicks, self._mask_input(full, previous))
        if self.options.flip and self._image is not None:
            pred = self._with_flip(pred, clicks, previous)
        crop = self._choose_crop(clicks, pred, previous)
        if crop is not None:
            if self.stats is not None and (previous is None or previous.info.get("crop") != crop):
                self.stats.zoom_encodes += 1  # a new crop: an encoder pass unless cached
            frame = self._crop_frame(crop)
            prior = previous if previous is not None and previous.info.get("crop") == crop else pred
            zoomed = self._predict_in_frame(frame, clicks, self._mask_input(frame, prior))
            fused = pred.logits.copy()
            x0, y0, x1, y1 = crop
            fused[y0:y1, x0:x1] = zoomed.logits
            pred = Prediction(
                logits=fused, low_res_logits=pred.low_res_logits, score=zoomed.score,
                candidates=pred.candidates,
                info={**pred.info, "crop": crop, "crop_low_res": zoomed.low_res_logits},
            )
        until = self.options.local_until
        if self.options.local and previous is not None and 2 <= len(clicks) <= (until or len(clicks)):
            pred = self._keep_local(pred, previous, clicks[-1], full)
        pred = self.polish(pred, clicks)
        self.last_predict_ms = (time.perf_counter() - t0) * 1000
        return pred

    def polish(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """The image-space steps of the options (honor, boundary, components) on a decoder prediction.

        ``predict`` ends with them; a first mask made elsewhere for the
        current image (an accepted proposal's) gets them here, so it looks
        like any click's. ``pred.logits`` HxW of the current image.
        """
        if self.options.honor and self._image is not None:
            t1 = time.perf_counter()
            pred = self._honor(pred, clicks)
            self._count("honor", t1)
        if self.options.boundary and self._image is not None:
            t1 = time.perf_counter()
            pred.logits = refine_boundary(self._image, pred.logits)
            self._count("boundary", t1)
        if self.options.components:
            pred.logits = keep_clicked_components(pred.logits, clicks)
        return pred

    def _count(self, step: str, t0: float) -> None:
        """Record the ms since ``t0`` of an image-space step when a benchmark attached ``stats``."""
        if self.stats is not None:
            self.stats.step_ms[step].append((time.perf_counter() - t0) * 1000)

    def _predict_in_frame(
        self, frame: "_Frame", clicks: Sequence[Click], mask_input: np.ndarray | None
    ) -> Prediction:
        opts = self.options
        inside = [c for c in clicks if frame.contains(c)]
        coords, labels = frame.prompts(inside)
        low_res, scores = self.base.decode_candidates(coords, labels, mask_input, frame.embedding)
        first_info: dict = {}
        if len(clicks) == 1:
            if opts.first == "all":
                best = int(np.argmax(scores))
            elif opts.first == "central" and len(scores) > 1:
                best = pick_central(low_res, scores, coords[0] * LOW_RES / self.base.side)
            else:
                best = self.base.select_candidate(len(inside), scores)
            # every token's reading (Kx256x256 low-res logits of this frame): the granularity memory learns from it
            first_info = {"first_default": best, "first_low_res": low_res}
            if self.first_token is not None and 0 <= self.first_token < len(scores):
                best = self.first_token
            first_info["first_token"] = best
        elif len(clicks) > 1 and opts.pick == "guard":
            best = self._guard(frame, inside, low_res, scores, mask_input)
        else:
            best = self.base.select_candidate(len(inside), scores)
        current, score = low_res[best], float(scores[best])
        tokens = [(low_res[k], float(scores[k])) for k in range(len(scores)) if k != best]
        logits = frame.upsample(current)
        steps = 0
        for _ in range(opts.cfr if len(clicks) > 1 else 0):
            nxt, nscores = self.base.decode_candidates(coords, labels, current, frame.embedding)
            k = self.base.select_candidate(len(inside), nscores)
            new_logits = frame.upsample(nxt[k])
            steps += 1
            changed = int(np.count_nonzero((new_logits > 0) != (logits > 0)))
            current, score, logits = nxt[k], float(nscores[k]), new_logits
            if opts.acfr and changed < opts.acfr:
                break
        pred = Prediction(logits=logits, low_res_logits=current, score=score,
                          info={"cfr_steps": steps, **first_info})
        if len(clicks) == 1:
            pred.candidates = [
                Prediction(frame.upsample(lr), lr, s) for lr, s in tokens
            ]
        if opts.consistency and _satisfied(logits, inside, frame.offset) < len(inside):
            pred = self._most_consistent(frame, inside, pred, coords, labels, tokens)
        return pred

    def _guard(
        self, frame: "_Frame", clicks: Sequence[Click], low_res: np.ndarray, scores: np.ndarray,
        mask_input: np.ndarray | None,
    ) -> int:
        """SAM's token 0 for 2+ clicks, unless it collapses (``pick=guard``).

        One click corrects a mask locally; when token 0 keeps less than
        ``guard`` IoU of the previous mask (low-res masks), the mask token
        that stays closest to the previous mask while satisfying at least as
        many clicks replaces it.
        """
        default = self.base.select_candidate(len(clicks), scores)
        if mask_input is None or len(scores) == 1:
            return default
        prev = mask_input > 0

        def overlap(k: int) -> float:
            cur = low_res[k] > 0
            union = np.count_nonzero(cur | prev)
            return np.count_nonzero(cur & prev) / union if union else 1.0

        if overlap(default) >= self.options.guard:
            return default
        need = _satisfied(frame.upsample(low_res[default]), clicks, frame.offset)
        best, best_overlap = default, overlap(default)
        for k in range(len(scores)):
            if k == default or overlap(k) <= best_overlap:
                continue
            if _satisfied(frame.upsample(low_res[k]), clicks, frame.offset) >= need:
                best, best_overlap = k, overlap(k)
        return best

    def _most_consistent(
        self, frame: "_Frame", clicks: Sequence[Click], pred: Prediction,
        coords: np.ndarray, labels: np.ndarray, tokens: list[tuple[np.ndarray, float]],
    ) -> Prediction:
        """Try cheap alternatives; keep one only if it satisfies strictly more clicks.

        Alternatives: up to two more refinement passes from the prediction, the
        other mask tokens (first click only) and, for the first three clicks,
        the prediction without mask feedback. Ties keep the original, since the
        predicted IoU does not rank masks of different passes reliably.
        """
        alternatives = [pred]
        current = pred.low_res_logits
        for _ in range(2):
            more, mscores = self.base.decode_candidates(coords, labels, current, frame.embedding)
            k = self.base.select_candidate(len(clicks), mscores)
            current = more[k]
            alternatives.append(Prediction(frame.upsample(current), current, float(mscores[k])))
        if len(clicks) <= 3:
            fresh, fscores = self.base.decode_candidates(coords, labels, None, frame.embedding)
            k = self.base.select_candidate(len(clicks), fscores)
            alternatives.append(Prediction(frame.upsample(fresh[k]), fresh[k], float(fscores[k])))
        if len(clicks) == 1:
            for lr, s in tokens:
                alternatives.append(Prediction(frame.upsample(lr), lr, s))
        counts = [_satisfied(p.logits, clicks, frame.offset) for p in alternatives]
        choice = max(range(len(alternatives)), key=lambda i: (counts[i], i == 0))
        best = alternatives[choice]
        best.info = {**pred.info, "consistency": choice}
        best.candidates = pred.candidates
        return best

    def _keep_local(
        self, pred: Prediction, previous: Prediction, click: Click, full: "_Frame"
    ) -> Prediction:
        """``local`` option: undo a collapse of the mask far from the new click.

        Only the mask shown changes; the decoder keeps being fed its own
        low-res output (it recovers from a collapse at the next click better
        from there than from the patched mask: measured).
        """
        fused = keep_local(previous.logits, pred.logits, click, self.options.local_k, self.options.local_keep)
        if fused is None:
            return pred
        logits, window = fused
        return Prediction(logits=logits, low_res_logits=pred.low_res_logits, score=pred.score,
                          candidates=pred.candidates, info={**pred.info, "local": window})

    def _with_flip(self, pred: Prediction, clicks: Sequence[Click], previous: Prediction | None) -> Prediction:
        """``flip`` option: average with the prediction on the mirrored image."""
        assert self._image is not None
        h, w = self.image_size
        embedding, _ = self.base.image_embedding(np.ascontiguousarray(self._image[:, ::-1]))
        frame = _Frame(self.base, (h, w), embedding)
        mirrored = [Click(w - 1 - c.x, c.y, c.positive) for c in clicks]
        mask_input = previous.info.get("flip_low_res") if previous is not None else None
        flipped = self._predict_in_frame(frame, mirrored, mask_input)
        logits = 0.5 * (pred.logits + flipped.logits[:, ::-1])
        return Prediction(logits=np.ascontiguousarray(logits, dtype=np.float32), low_res_logits=pred.low_res_logits,
                          score=pred.score, candidates=pred.candidates,
                          info={**pred.info, "flip_low_res": flipped.low_res_logits})

    def _honor(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """``honor`` option: grow the clicks the mask ignores (shown mask only)."""
        assert self._image is not None
        if _satisfied(pred.logits, clicks) == len(clicks):
            return pred  # nothing ignored: skip the colour conversion
        if self._lab is None:
            self._lab = lab_image(self._image)
        h, w = self.image_size
        radius = max(12, int(round(self.options.honor_radius * max(h, w))))
        logits, fixed = honor_clicks(self._lab, pred.logits, clicks, radius)
        if fixed:
            pred = Prediction(logits=logits, low_res_logits=pred.low_res_logits, score=pred.score,
                              candidates=pred.candidates, info={**pred.info, "honored": fixed})
        return pred

    # zoom-in -------------------------------------------------------------------
    def _choose_crop(
        self, clicks: Sequence[Click], current: Prediction, previous: Prediction | None
    ) -> Box | None:
        """The crop to refine in, or None: object box (current mask + positive clicks),
        expanded; the previous crop is kept while the object stays inside it."""
        opts = self.options
        if not opts.zoom or len(clicks) < opts.zoom_from:
            return None
        h, w = self.image_size
        box = _bbox(current.logits > 0)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        for c in clicks:
            if c.positive:
                x0, y0 = min(x0, int(c.x)), min(y0, int(c.y))
                x1, y1 = max(x1, int(c.x) + 1), max(y1, int(c.y) + 1)
        old = previous.info.get("crop") if previous is not None else None
        if old is not None:
            ox0, oy0, ox1, oy1 = old
            margin = 0.05 * max(ox1 - ox0, oy1 - oy0)
            inside = (x0 >= ox0 + margin or ox0 == 0) and (y0 >= oy0 + margin or oy0 == 0) and \
                (x1 <= ox1 - margin or ox1 == w) and (y1 <= oy1 - margin or oy1 == h)
            if inside:
                return old
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        bw = max((x1 - x0) * opts.zoom_expand, opts.zoom_min)
        bh = max((y1 - y0) * opts.zoom_expand, opts.zoom_min)
        if max(bw, bh) > opts.zoom_max_frac * max(h, w):
            return None
        nx0, ny0 = int(max(0, round(cx - bw / 2))), int(max(0, round(cy - bh / 2)))
        nx1, ny1 = int(min(w, round(cx + bw / 2))), int(min(h, round(cy + bh / 2)))
        return nx0, ny0, nx1, ny1

    def crop_embedding(self, crop: Box) -> np.ndarray:
        """The 1x256x64x64 embedding of the current image's crop (x0, y0, x1, y1), as zoom-in encodes it.

        Read from the embedding cache when the crop was used before (e.g. the
        crop of an object's last prediction, ``Prediction.info["crop"]``).
        """
        return self._crop_frame(crop).embedding

    def _crop_frame(self, crop: Box) -> "_Frame":
        assert self._image is not None
        x0, y0, x1, y1 = crop
        image = np.ascontiguousarray(self._image[y0:y1, x0:x1])
        t0 = time.perf_counter()
        embedding, cached = self.base.image_embedding(image)
        if not cached and self.stats is not None:
            self.stats.zoom_encode_ms.append((time.perf_counter() - t0) * 1000)
        return _Frame(self.base, (y1 - y0, x1 - x0), embedding, (x0, y0))

    def _mask_input(self, frame: "_Frame", previous: Prediction | None) -> np.ndarray | None:
        """The previous prediction as 256x256 low-res logits of ``frame``."""
        if previous is None:
            return None
        crop = previous.info.get("crop")
        if frame.box is None:
            if crop is None:
                return previous.low_res_logits
        elif crop == frame.box and "crop_low_res" in previous.info:
            return previous.info["crop_low_res"]
        x0, y0 = frame.offset
        fh, fw = frame.size
        return frame.to_low_res(previous.logits[y0 : y0 + fh, x0 : x0 + fw])


def keep_local(
    previous: np.ndarray, new: np.ndarray, click: Click, k: float = 2.5, keep: float = 0.7
) -> tuple[np.ndarray, Box] | None:
    """Confine the change a click makes to the neighbourhood it points at.

    previous, new: HxW float32 logits before and after ``click`` (x, y pixels).
    The click's reach is ``k`` times its distance to the previous mask's
    boundary (the size of the error it marks), at least 16 px, as a square
    window. If ``new`` keeps at least ``keep`` of the previous mask outside the
    window, it is accepted (returns None). Otherwise the mask collapsed where
    the user did not click: returns (logits that are ``new`` inside the window
    and ``previous`` elsewhere, the window x0, y0, x1, y1).
    """
    prev = previous > 0
    h, w = prev.shape
    col, row = min(w - 1, max(0, int(round(click.x)))), min(h - 1, max(0, int(round(click.y))))
    region = prev if prev[row, col] else ~prev
    dist = cv2.distanceTransform(np.pad(region, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    reach = max(16.0, k * float(dist[row, col]))
    x0, x1 = max(0, int(col - reach)), min(w, int(col + reach) + 1)
    y0, y1 = max(0, int(row - reach)), min(h, int(row + reach) + 1)
    outside = prev.copy()
    outside[y0:y1, x0:x1] = False
    before = np.count_nonzero(outside)
    if before == 0 or np.count_nonzero(outside & (new > 0)) >= keep * before:
        return None
    fused = previous.astype(np.float32, copy=True)
    fused[y0:y1, x0:x1] = new[y0:y1, x0:x1]
    return fused, (x0, y0, x1, y1)


def click_centrality(mask: np.ndarray, x: float, y: float) -> float:
    """How central (x, y) lies in ``mask`` (HxW bool): distance to the mask's
    boundary at the point over the largest such distance; 0 outside, 1 at the
    innermost pixel."""
    h, w = mask.shape
    col, row = min(w - 1, max(0, int(x))), min(h - 1, max(0, int(y)))
    if not mask[row, col]:
        return 0.0
    dist = cv2.distanceTransform(np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, 3)[1:-1, 1:-1]
    return float(dist[row, col] / dist.max())


def pick_central(low_res: np.ndarray, scores: np.ndarray, xy: np.ndarray) -> int:
    """First-click choice among mask tokens 1..K-1: predicted IoU x click centrality.

    A user (and the standard robot) clicks well inside the object meant, so a
    candidate in which the click sits near the border is the wrong reading of it.
    low_res: Kx256x256 logits; scores: K; xy: the click in low-res pixels.
    """
    ks = range(1, len(scores))
    return max(ks, key=lambda k: float(scores[k]) * click_centrality(low_res[k] > 0, xy[0], xy[1]))


def keep_clicked_components(logits: np.ndarray, clicks: Sequence[Click]) -> np.ndarray:
    """Turn off the 8-connected mask components (logits > 0) that hold no positive click.

    logits: HxW float32. If no component holds a positive click, nothing is
    removed. Removed pixels get logit -1. Returns a new array.
    """
    mask = (logits > 0).astype(np.uint8)
    n, labels = cv2.connectedComponents(mask, connectivity=8)
    if n <= 2:
        return logits
    h, w = logits.shape
    keep = {
        int(labels[min(h - 1, int(round(c.y))), min(w - 1, int(round(c.x)))]) for c in clicks if c.positive
    } - {0}
    if not keep:
        return logits
    out = logits.copy()
    out[(labels > 0) & ~np.isin(labels, list(keep))] = -1.0
    return out


class _Frame:
    """Where the decoder runs: the whole image or a crop, with its embedding."""

    def __init__(self, base: SamOnnxPredictor, size: tuple[int, int], embedding: np.ndarray,
                 offset: tuple[int, int] = (0, 0)) -> None:
        self.base, self.size, self.embedding, self.offset = base, size, embedding, offset

    @classmethod
    def full(cls, base: SamOnnxPredictor, size: tuple[int, int]) -> "_Frame":
        return cls(base, size, base.embedding)

    @property
    def box(self) -> Box | None:
        if self.offset == (0, 0) and self.size == self.base.image_size:
            return None
        return (self.offset[0], self.offset[1], self.offset[0] + self.size[1], self.offset[1] + self.size[0])

    def contains(self, c: Click) -> bool:
        x, y = c.x - self.offset[0], c.y - self.offset[1]
        return 0 <= x < self.size[1] and 0 <= y < self.size[0]

    def prompts(self, clicks: Sequence[Click]) -> tuple[np.ndarray, np.ndarray]:
        h, w = self.size
        nh, nw = resized_shape(h, w, self.base.side)
        xy = np.array([[c.x - self.offset[0], c.y - self.offset[1]] for c in clicks], np.float32).reshape(-1, 2)
        xy[:, 0] *= nw / w
        xy[:, 1] *= nh / h
        labels = np.array([1.0 if c.positive else 0.0 for c in clicks], np.float32)
        return xy, labels

    def upsample(self, low_res: np.ndarray) -> np.ndarray:
        return self.base.upsample(low_res, self.size)

    def to_low_res(self, logits: np.ndarray) -> np.ndarray:
        """HxW logits of this frame -> 256x256 low-res logits in the padded model frame."""
        side = self.base.side
        nh, nw = resized_shape(*logits.shape, side)
        frame = np.full((side, side), float(min(logits.min(), -1.0)), np.float32)
        frame[:nh, :nw] = cv2.resize(logits.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(frame, (LOW_RES, LOW_RES), interpolation=cv2.INTER_AREA)
