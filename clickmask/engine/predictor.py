"""The predictor interface every segmentation backend implements.

Modelled on segment-anything's ``SamPredictor``: ``set_image`` once per image
(the expensive part), then cheap ``predict`` calls, one per click.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.errors import ClickError, ClickmaskError


@dataclass(eq=False)
class Prediction:
    """One prediction for the current clicks.

    logits: HxW float32 in original image pixels; ``> 0`` is object.
    low_res_logits: the backend's compact state for mask feedback (for SAM:
        256x256 float32 logits in the padded 1024 frame), passed back as
        ``mask_input`` to the decoder by the next ``predict(clicks, previous)``.
    score: the backend's own quality estimate (SAM: predicted IoU).
    candidates: the other masks the backend considered for a lone prompt (one
        click, or a box alone), as Predictions: the part/whole hypotheses
        the user can switch to (:meth:`InteractiveSession.choose`).
    info: what the inference did (steps run, crop used, ...), for reports.
    """

    logits: np.ndarray
    low_res_logits: np.ndarray | None
    score: float
    candidates: list["Prediction"] = field(default_factory=list, repr=False)
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
        self, clicks: Sequence[Click], previous: Prediction | None = None, box: BoxPrompt | None = None
    ) -> Prediction:
        """Predict the object for ``clicks`` (x, y in pixels of the set image) and an optional ``box``.

        ``previous`` is the prediction for the clicks before the last one (mask
        feedback), or None to predict from the prompts alone. With a box,
        ``clicks`` may be empty.
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


#: The smallest box side, in pixels, that is a box rather than a click.
MIN_BOX_SIDE = 2.0


def check_clicks(clicks: Sequence[Click], height: int, width: int, box: BoxPrompt | None = None) -> None:
    """Raise ClickError if there is neither a click nor a box, or a prompt lies outside the image.

    A box must overlap the image and be at least :data:`MIN_BOX_SIDE` pixels
    wide and high; it may stick out of the image (the part outside is ignored).
    """
    if box is not None:
        if box.x1 - box.x0 < MIN_BOX_SIDE or box.y1 - box.y0 < MIN_BOX_SIDE:
            raise ClickError(f"the box ({box.x0:g}, {box.y0:g})-({box.x1:g}, {box.y1:g}) is too small: "
                             f"draw at least {MIN_BOX_SIDE:g} x {MIN_BOX_SIDE:g} pixels")
        if box.x1 <= 0 or box.y1 <= 0 or box.x0 >= width or box.y0 >= height:
            raise ClickError(f"the box ({box.x0:g}, {box.y0:g})-({box.x1:g}, {box.y1:g}) "
                             f"is outside the {width}x{height} image")
    elif not clicks:
        raise ClickError("at least one click (or a box) is needed to predict a mask")
    for c in clicks:
        if not (0 <= c.x < width and 0 <= c.y < height):
            raise ClickError(
                f"click at (x={c.x:g}, y={c.y:g}) is outside the {width}x{height} image"
            )


def clip_box(box: BoxPrompt, height: int, width: int) -> BoxPrompt:
    """``box`` cut to the image (corners within [0, width] x [0, height])."""
    return BoxPrompt(max(0.0, box.x0), max(0.0, box.y0), min(float(width), box.x1), min(float(height), box.y1))
