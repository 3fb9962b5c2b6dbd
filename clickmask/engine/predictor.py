"""The predictor interface every segmentation backend implements.

Modelled on segment-anything's ``SamPredictor``: ``set_image`` once per image
(the expensive part), then cheap ``predict`` calls, one per click.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.errors import ClickError, ClickmaskError


@dataclass(eq=False)
class Prediction:
    """One prediction for the current clicks.

    logits: HxW float32 in original image pixels; ``> 0`` is object.
    low_res_logits: the backend's compact state for mask feedback (for SAM:
        256x256 float32 logits in the padded 1024 frame), passed back as
        ``mask_input`` to the decoder by the next ``predict(clicks, previous)``.
    score: the backend's own quality estimate (SAM: predicted IoU).
    candidates: other masks the backend considered, as (low-res logits,
        score) pairs (for a single click: the other part/whole hypotheses).
    info: what the inference did (steps run, crop used, ...), for reports.
    """

    logits: np.ndarray
    low_res_logits: np.ndarray | None
    score: float
    candidates: list[tuple[np.ndarray, float]] = field(default_factory=list, repr=False)
    info: dict = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """HxW bool object mask."""
        return self.logits > 0


class Predictor(Protocol):
    """What the engine, the app and the evaluation loop need from a backend."""

    model_id: str
    is_fallback: bool
    last_embed_ms: float  # time the last set_image took
    last_embed_cached: bool  # the last set_image found its embedding in the cache

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the set image."""

    def set_image(self, image: np.ndarray) -> None:
        """Prepare an HxWx3 uint8 RGB image (compute or load its embedding)."""

    def predict(
        self, clicks: Sequence[Click], previous: Prediction | None = None
    ) -> Prediction:
        """Predict the object for ``clicks`` (x, y in pixels of the set image).

        ``previous`` is the prediction for the clicks before the last one (mask
        feedback), or None to predict from the clicks alone.
        """

    def prefetch(self, image: np.ndarray) -> bool:
        """Compute and cache an image's embedding in the background (thread-safe)."""

    def polish(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """The image-space steps ``predict`` ends with, on a mask made elsewhere for the set image."""


def check_image(image: np.ndarray) -> None:
    """Raise ClickmaskError unless ``image`` is an HxWx3 uint8 RGB array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ClickmaskError(
            f"set_image needs an HxWx3 uint8 RGB array, got shape {image.shape} {image.dtype}"
        )


def check_clicks(clicks: Sequence[Click], height: int, width: int) -> None:
    """Raise ClickError if there are no clicks or one lies outside the image."""
    if not clicks:
        raise ClickError("at least one click is needed to predict a mask")
    for c in clicks:
        if not (0 <= c.x < width and 0 <= c.y < height):
            raise ClickError(
                f"click at (x={c.x:g}, y={c.y:g}) is outside the {width}x{height} image"
            )
