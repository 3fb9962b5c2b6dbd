"""Weight-free fallback backend: OpenCV GrabCut seeded by the clicks.

Used when no neural model can be installed, so the tool still segments. It is
much weaker than the model (see BENCHMARKS.md) and reports ``is_fallback``.
Works on a copy of the image downscaled to at most ``work_side`` pixels on the
long side; results are upsampled to the original size.
"""

from __future__ import annotations

import time
from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.predictor import Prediction, check_clicks, check_image
from clickmask.errors import ClickmaskError

FALLBACK_MODEL_ID = "grabcut"


class GrabCutPredictor:
    """GrabCut with hard seeds at the clicks and a soft prior around them.

    The first positive click seeds a probable-foreground disk of radius
    ``prior_radius`` (fraction of the short side); later calls start from the
    previous mask (``previous.low_res_logits``, a work-size float map,
    > 0 = object). Only connected components touching a positive
    click are kept.
    """

    is_fallback = True

    def __init__(
        self, work_side: int = 512, iterations: int = 4, prior_radius: float = 0.15,
        seed_radius: float = 0.012,
    ) -> None:
        self.model_id = FALLBACK_MODEL_ID
        self.work_side = work_side
        self.iterations = iterations
        self.prior_radius = prior_radius
        self.seed_radius = seed_radius
        self._image: np.ndarray | None = None
        self._work: np.ndarray | None = None
        self._scale = 1.0
        self.last_embed_ms = 0.0
        self.last_embed_cached = False
        self.last_predict_ms = 0.0

    def set_image(self, image: np.ndarray) -> None:
        """Set an HxWx3 uint8 RGB image (only a resize is precomputed)."""
        check_image(image)
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        self._scale = min(1.0, self.work_side / max(h, w))
        size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if self._scale < 1 else image
        self._work = cv2.cvtColor(work, cv2.COLOR_RGB2BGR)
        self._image = image
        self.last_embed_ms = (time.perf_counter() - t0) * 1000

    def prefetch(self, image: np.ndarray) -> bool:
        """Nothing to precompute for GrabCut; returns False."""
        return False

    def polish(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """No image-space steps: ``pred`` as it is."""
        return pred

    @property
    def image_size(self) -> tuple[int, int]:
        if self._image is None:
            raise ClickmaskError("no image set: call set_image first")
        return self._image.shape[:2]

    def predict(
        self, clicks: Sequence[Click], previous: Prediction | None = None, box: BoxPrompt | None = None
    ) -> Prediction:
        """Segment with GrabCut; returns +-1 logits (HxW) and the work-size state.

        A ``box`` marks everything outside it as background and its inside as
        probably object (GrabCut's own rectangle start).
        """
        t0 = time.perf_counter()
        h, w = self.image_size
        check_clicks(clicks, h, w, box)
        assert self._work is not None
        wh, ww = self._work.shape[:2]
        pts = [
            (int(min(ww - 1, c.x * self._scale)), int(min(wh - 1, c.y * self._scale)), c.positive)
            for c in clicks
        ]
        seed_r = max(2, round(self.seed_radius * max(wh, ww)))
        gc = np.full((wh, ww), cv2.GC_PR_BGD, np.uint8)
        prior = previous.low_res_logits if previous is not None else None
        if box is not None:
            s = self._scale
            gc[:] = cv2.GC_BGD
            gc[max(0, int(box.y0 * s)):int(np.ceil(box.y1 * s)), max(0, int(box.x0 * s)):int(np.ceil(box.x1 * s))] = \
                cv2.GC_PR_FGD
        if prior is not None and prior.shape == (wh, ww):
            gc[(prior > 0) & (gc != cv2.GC_BGD)] = cv2.GC_PR_FGD
        elif box is None:
            prior_r = max(seed_r + 1, round(self.prior_radius * min(wh, ww)))
            for x, y, pos in pts:
                if pos:
                    cv2.circle(gc, (x, y), prior_r, int(cv2.GC_PR_FGD), -1)
        for x, y, pos in pts:
            cv2.circle(gc, (x, y), seed_r, int(cv2.GC_FGD if pos else cv2.GC_BGD), -1)
        work_mask = self._grabcut(gc)
        work_mask = _keep_components_with(work_mask, [(x, y) for x, y, pos in pts if pos])
        state = np.where(work_mask, 1.0, -1.0).astype(np.float32)
        logits = cv2.resize(state, (w, h), interpolation=cv2.INTER_LINEAR) if (wh, ww) != (h, w) else state
        self.last_predict_ms = (time.perf_counter() - t0) * 1000
        return Prediction(logits=logits, low_res_logits=state, score=0.0)

    def _grabcut(self, gc: np.ndarray) -> np.ndarray:
        has_fg = np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD)).any()
        has_bg = np.isin(gc, (cv2.GC_BGD, cv2.GC_PR_BGD)).any()
        if not (has_fg and has_bg):
            return np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))
        bgd = np.zeros((1, 65), np.float64)
        fgd = np.zeros((1, 65), np.float64)
        cv2.grabCut(self._work, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        return np.isin(gc, (cv2.GC_FGD, cv2.GC_PR_FGD))


def _keep_components_with(mask: np.ndarray, points: list[tuple[int, int]]) -> np.ndarray:
    """Keep the 8-connected components of ``mask`` that contain one of ``points`` (x, y)."""
    if not points or not mask.any():
        return mask
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = {int(labels[y, x]) for x, y in points} - {0}
    if not keep:
        return mask
    return np.isin(labels, list(keep))
