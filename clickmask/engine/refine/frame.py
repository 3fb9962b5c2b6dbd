"""Where the decoder runs: the whole image or a crop of it, with that view's embedding.

Coordinates: clicks in image pixels (x = column, y = row); a frame maps them
into its own pixels (``offset``) and into the model's input frame; boxes are
(x0, y0, x1, y1) with x1, y1 exclusive.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.preprocess import resized_shape
from clickmask.engine.sam_onnx import LOW_RES, SamOnnxPredictor, point_prompts

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 (pixels, x1/y1 exclusive)


def satisfied(logits: np.ndarray, clicks: Sequence[Click], offset: tuple[int, int] = (0, 0)) -> int:
    """How many clicks agree with the mask (HxW logits > 0): positive inside, negative outside."""
    h, w = logits.shape
    ok = 0
    for c in clicks:
        x, y = int(round(c.x)) - offset[0], int(round(c.y)) - offset[1]
        if 0 <= x < w and 0 <= y < h:
            ok += int((logits[y, x] > 0) == c.positive)
    return ok


def bbox(mask: np.ndarray) -> Box | None:
    """The bounding box of an HxW bool mask, or None when it is empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if ys.size == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


class Frame:
    """The whole image or a crop (``size`` = (h, w), ``offset`` = its top-left pixel) with its embedding."""

    def __init__(self, base: SamOnnxPredictor, size: tuple[int, int], embedding: np.ndarray,
                 offset: tuple[int, int] = (0, 0)) -> None:
        self.base, self.size, self.embedding, self.offset = base, size, embedding, offset

    @classmethod
    def full(cls, base: SamOnnxPredictor, size: tuple[int, int]) -> "Frame":
        """The base model's current image."""
        return cls(base, size, base.embedding)

    @property
    def box(self) -> Box | None:
        """The crop in image pixels, None for the whole image."""
        if self.offset == (0, 0) and self.size == self.base.image_size:
            return None
        return (self.offset[0], self.offset[1], self.offset[0] + self.size[1], self.offset[1] + self.size[0])

    def contains(self, c: Click) -> bool:
        x, y = c.x - self.offset[0], c.y - self.offset[1]
        return 0 <= x < self.size[1] and 0 <= y < self.size[0]

    def prompts(self, clicks: Sequence[Click], box: BoxPrompt | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(Nx2 float32 coords in the model frame, N float32 labels) of clicks inside this frame
        and of ``box`` (image pixels) cut to the frame."""
        h, w = self.size
        x0, y0 = self.offset
        if box is not None:
            box = BoxPrompt(max(box.x0, x0), max(box.y0, y0), min(box.x1, x0 + w), min(box.y1, y0 + h))
        xy, labels = point_prompts(clicks, box, (x0, y0))
        nh, nw = resized_shape(h, w, self.base.side)
        xy[:, 0] *= nw / w
        xy[:, 1] *= nh / h
        return xy, labels

    def decode(self, coords: np.ndarray, labels: np.ndarray, mask_input: np.ndarray | None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(Kx256x256 low-res logits, K scores) of the decoder on this frame's embedding."""
        return self.base.decode_candidates(coords, labels, mask_input, self.embedding)

    def upsample(self, low_res: np.ndarray) -> np.ndarray:
        """256x256 low-res logits -> this frame's HxW logits."""
        return self.base.upsample(low_res, self.size)

    def to_low_res(self, logits: np.ndarray) -> np.ndarray:
        """HxW logits of this frame -> 256x256 low-res logits in the padded model frame."""
        side = self.base.side
        nh, nw = resized_shape(*logits.shape, side)
        frame = np.full((side, side), float(min(logits.min(), -1.0)), np.float32)
        frame[:nh, :nw] = cv2.resize(logits.astype(np.float32), (nw, nh), interpolation=cv2.INTER_LINEAR)
        return cv2.resize(frame, (LOW_RES, LOW_RES), interpolation=cv2.INTER_AREA)
