"""Test-time mirror augmentation (option ``flip``): average with the prediction on the mirrored image.

The mirrored image has its own embedding (cached like any image's, prefetched
with the image); its clicks are mirrored and it keeps its own mask feedback
(``info["flip_low_res"]``). Whole image only.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction
from clickmask.engine.refine.frame import Frame
from clickmask.engine.sam_onnx import SamOnnxPredictor

Decode = Callable[[Frame, Sequence[Click], "np.ndarray | None"], Prediction]


def mirrored(image: np.ndarray) -> np.ndarray:
    """The HxWx3 image mirrored left-right (contiguous, so it caches like any image)."""
    return np.ascontiguousarray(image[:, ::-1])


def average_with_mirror(pred: Prediction, base: SamOnnxPredictor, image: np.ndarray, clicks: Sequence[Click],
                        previous: Prediction | None, decode: Decode) -> Prediction:
    """``pred`` (on ``image``) averaged with ``decode``'s prediction on the mirrored image and clicks."""
    h, w = image.shape[:2]
    embedding, _ = base.image_embedding(mirrored(image))
    frame = Frame(base, (h, w), embedding)
    clicks_mirrored = [Click(w - 1 - c.x, c.y, c.positive) for c in clicks]
    mask_input = previous.info.get("flip_low_res") if previous is not None else None
    flipped = decode(frame, clicks_mirrored, mask_input)
    logits = 0.5 * (pred.logits + flipped.logits[:, ::-1])
    return Prediction(logits=np.ascontiguousarray(logits, dtype=np.float32), low_res_logits=pred.low_res_logits,
                      score=pred.score, candidates=pred.candidates,
                      info={**pred.info, "flip_low_res": flipped.low_res_logits})
