"""Overlays of masks and clicks on images, for reports and the demo."""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.clicks import Click

MASK_COLOR = (30, 144, 255)
POSITIVE_COLOR = (40, 220, 60)
NEGATIVE_COLOR = (230, 40, 40)


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    clicks: Sequence[Click] = (),
    alpha: float = 0.5,
    gt: np.ndarray | None = None,
) -> np.ndarray:
    """Blend an HxW bool ``mask`` over an HxWx3 uint8 image, draw its outline and clicks.

    With ``gt`` (HxW bool), the ground-truth outline is drawn in white.
    Returns a new HxWx3 uint8 RGB array.
    """
    out = image.astype(np.float32)
    color = np.array(MASK_COLOR, np.float32)
    out[mask] = (1 - alpha) * out[mask] + alpha * color
    out = out.astype(np.uint8)
    thickness = max(1, round(max(image.shape[:2]) / 400))
    if gt is not None:
        contours, _ = cv2.findContours(gt.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, (255, 255, 255), thickness)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, MASK_COLOR, thickness)
    radius = max(3, round(max(image.shape[:2]) / 120))
    for c in clicks:
        center = (int(round(c.x)), int(round(c.y)))
        cv2.circle(out, center, radius, POSITIVE_COLOR if c.positive else NEGATIVE_COLOR, -1)
        cv2.circle(out, center, radius, (255, 255, 255), max(1, radius // 3))
    return out
