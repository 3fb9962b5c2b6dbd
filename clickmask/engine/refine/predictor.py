"""``RefinedPredictor``: the SAM ONNX predictor with the refinement steps of :class:`InferenceOptions`.

Same contract as the base predictor (``set_image`` once, then ``predict(clicks,
previous)``), so the app, the session and ``clickmask eval`` use either. One
click runs this pipeline; each step reads only its own options:

1. decode on the whole image, previous mask fed back: the first click's token
   (:mod:`.first_click`, or the category's learned token), then CFR (:mod:`.cfr`);
2. ``flip``: average with the mirrored image (:mod:`.flip`);
3. ``zoom``: decode again in a crop around the object and paste it (:mod:`.zoom`);
4. ``local``: keep the previous mask far from the click if it collapsed there (:mod:`.local`);
5. image-space polish: ``honor`` (:mod:`clickmask.engine.click_regions`), ``boundary``
   (:mod:`clickmask.engine.boundary`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from clickmask.engine.boundary import refine_boundary
from clickmask.engine.click_regions import honor_clicks, lab_image
from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.predictor import Prediction, check_clicks
from clickmask.engine.refine import cfr, flip, local, zoom
from clickmask.engine.refine.first_click import FINEST, pick_central
from clickmask.engine.refine.frame import Box, Frame, satisfied
from clickmask.engine.refine.options import InferenceOptions
from clickmask.engine.sam_onnx import LOW_RES, SamOnnxPredictor, lone_prompt, prompt_count


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

    # image ---------------------------------------------------------------------
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
            computed = self.base.prefetch(flip.mirrored(image)) or computed
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
    def predict(self, clicks: Sequence[Click], previous: Prediction | None = None,
                box: BoxPrompt | None = None) -> Prediction:
        """Predict with the configured refinements (the pipeline of the module doc).

        clicks: x, y in image pixels; previous: the last prediction of the
        same object (mask feedback), or None; box: a rectangle around the
        object (with a box, ``clicks`` may be empty; it counts as one prompt for
        ``zoom_from`` and ``local_until``; ``flip`` skips objects with a box).
        Returns HxW logits of the image.
        """
        t0 = time.perf_counter()
        h, w = self.image_size
        check_clicks(clicks, h, w, box)
        opts = self.options
        full = Frame.full(self.base, (h, w))
        pred = self.decode(full, clicks, zoom.mask_input(full, previous), box)
        if opts.flip and self._image is not None and box is None:
            pred = flip.average_with_mirror(pred, self.base, self._image, clicks, previous, self.decode)
        crop = zoom.choose_crop(opts, clicks, pred, previous, (h, w), box)
        if crop is not None:
            same_crop = previous is not None and previous.info.get("crop") == crop
            if self.stats is not None and not same_crop:
                self.stats.zoom_encodes += 1  # a new crop: an encoder pass unless cached
            frame = self._crop_frame(crop)
            zoomed = self.decode(frame, clicks, zoom.mask_input(frame, previous if same_crop else pred), box)
            if zoom.fills_crop(zoomed.logits > 0, crop, (h, w)):
                pred.info["crop_refused"] = crop
            else:
                pred = zoom.paste(pred, zoomed, crop)
        elif len(clicks) + (box is not None) + 1 == opts.zoom_from:
            ahead = zoom.choose_crop(opts, clicks, pred, previous, (h, w), box, ahead=True)
            if ahead is not None:
                pred.info["next_crop"] = ahead  # the next click zooms in there: see crop_to_prepare
        if clicks and local.applies(opts, len(clicks) + (box is not None), previous is not None):
            pred = local.keep_previous_far_away(pred, previous, clicks[-1], opts)
        pred = self.polish(pred, clicks)
        self.last_predict_ms = (time.perf_counter() - t0) * 1000
        return pred

    def decode(self, frame: Frame, clicks: Sequence[Click], mask_input: np.ndarray | None,
               box: BoxPrompt | None = None) -> Prediction:
        """One decoder answer in ``frame`` (clicks inside it, the box cut to it): the token choice, then CFR.

        A lone click records every token's low-res reading (``info["first_low_res"]``,
        Kx256x256) and the engine's own choice (``first_default``) for the
        granularity memory; a lone prompt (that click, or a box alone) keeps
        the other tokens as ``candidates``.
        """
        opts = self.options
        inside = [c for c in clicks if frame.contains(c)]
        coords, labels = frame.prompts(inside, box)
        low_res, scores = frame.decode(coords, labels, mask_input)
        first_info: dict = {}
        if len(clicks) == 1 and box is None:
            if opts.first == "central" and len(scores) > 1:
                best = pick_central(low_res, scores, coords[0] * LOW_RES / self.base.side)
            elif opts.first == "finest" and len(scores) > 1:
                best = FINEST
            else:
                best = self.base.select_candidate(len(inside), scores)
            first_info = {"first_default": best, "first_low_res": low_res}
            if self.first_token is not None and 0 <= self.first_token < len(scores):
                best = self.first_token
            first_info["first_token"] = best
        else:
            best = self.base.select_candidate(prompt_count(inside, box), scores)
        current, score = low_res[best], float(scores[best])
        logits = frame.upsample(current)
        passes = opts.cfr if prompt_count(clicks, box) > 1 else 0
        current, score, logits, steps = cfr.cascade(frame, coords, labels, prompt_count(inside, box), current,
                                                    score, logits, passes, opts.acfr)
        pred = Prediction(logits=logits, low_res_logits=current, score=score, info={"cfr_steps": steps, **first_info})
        if lone_prompt(clicks, box):
            pred.candidates = [Prediction(frame.upsample(low_res[k]), low_res[k], float(scores[k]))
                               for k in range(len(scores)) if k != best]
        return pred

    def polish(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """The image-space steps of the options (honor, boundary) on a decoder prediction.

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
        return pred

    def crop_to_prepare(self, pred: Prediction | None) -> np.ndarray | None:
        """The HxWx3 crop of the current image that the click after ``pred`` will encode (zoom), or None.

        Known one click ahead (``info["next_crop"]``); the app encodes it in the
        background (:meth:`prefetch`) while the user looks at the mask, so the
        click that zooms in finds its embedding in the cache.
        """
        crop = None if pred is None or self._image is None else pred.info.get("next_crop")
        if crop is None:
            return None
        x0, y0, x1, y1 = crop
        return np.ascontiguousarray(self._image[y0:y1, x0:x1])

    def crop_embedding(self, crop: Box) -> np.ndarray:
        """The 1x256x64x64 embedding of the current image's crop (x0, y0, x1, y1), as zoom-in encodes it.

        Read from the embedding cache when the crop was used before (e.g. the
        crop of an object's last prediction, ``Prediction.info["crop"]``).
        """
        return self._crop_frame(crop).embedding

    def _crop_frame(self, crop: Box) -> Frame:
        assert self._image is not None
        x0, y0, x1, y1 = crop
        image = np.ascontiguousarray(self._image[y0:y1, x0:x1])
        t0 = time.perf_counter()
        embedding, cached = self.base.image_embedding(image)
        if not cached and self.stats is not None:
            self.stats.zoom_encode_ms.append((time.perf_counter() - t0) * 1000)
        return Frame(self.base, (y1 - y0, x1 - x0), embedding, (x0, y0))

    def _honor(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """``honor``: grow the clicks the mask ignores (shown mask only)."""
        assert self._image is not None
        if satisfied(pred.logits, clicks) == len(clicks):
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

    def _count(self, step: str, t0: float) -> None:
        """Record the ms since ``t0`` of an image-space step when a benchmark attached ``stats``."""
        if self.stats is not None:
            self.stats.step_ms[step].append((time.perf_counter() - t0) * 1000)


def sam_model(predictor) -> SamOnnxPredictor | None:
    """The SAM ONNX model a predictor decodes with (itself, or a refined predictor's base); None for GrabCut."""
    base = predictor.base if isinstance(predictor, RefinedPredictor) else predictor
    return base if isinstance(base, SamOnnxPredictor) else None
