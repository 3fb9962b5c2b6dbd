"""Decoded images for the browser and the model, and masks encoded for the browser."""

from __future__ import annotations

import base64
import json
import threading
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.io.display import render
from clickmask.io.images import load_image


def _display_key(display: dict | None) -> str:
    return "" if display is None else json.dumps(display, sort_keys=True)


class ImageCache:
    """LRU of decoded HxWx3 uint8 RGB images (and their JPEG for the browser), by image id.

    An image is decoded with its display settings (``clickmask.io.display``: a
    raster's bands and stretch, a DICOM's window); other settings than the
    cached image's decode it again.
    """

    def __init__(self, max_items: int = 6) -> None:
        self.max_items = max_items
        self._items: OrderedDict[int, tuple[str, np.ndarray]] = OrderedDict()
        self._jpeg: dict[int, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def get(self, image_id: int, path: Path, display: dict | None = None) -> np.ndarray:
        """The decoded image as shown with ``display`` (raises ImageReadError for an unreadable file)."""
        key = _display_key(display)
        with self._lock:
            item = self._items.get(image_id)
            if item is not None and item[0] == key:
                self._items.move_to_end(image_id)
                return item[1]
        image = load_image(path) if display is None else render(path, display)
        with self._lock:
            self._items[image_id] = (key, image)
            self._items.move_to_end(image_id)
            while len(self._items) > self.max_items:
                old, _ = self._items.popitem(last=False)
                self._jpeg.pop(old, None)
        return image

    def jpeg(self, image_id: int, path: Path, display: dict | None = None) -> bytes:
        """The upright, 8-bit RGB image as a JPEG (what the model sees)."""
        key = _display_key(display)
        with self._lock:
            item = self._jpeg.get(image_id)
            if item is not None and item[0] == key:
                return item[1]
        image = self.get(image_id, path, display)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise ClickmaskError(f"{path}: cannot encode the image for the browser")
        with self._lock:
            self._jpeg[image_id] = (key, buf.tobytes())
        return buf.tobytes()


def mask_runs(mask: np.ndarray) -> dict:
    """Row-major run lengths of a mask, starting with a (possibly empty) background run.

    ``{"size": [h, w], "runs": [bg, fg, bg, ...]}``: cheap to compute and to paint in the browser.
    """
    flat = np.ascontiguousarray(mask, dtype=bool).ravel()
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], change, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "runs": runs}


def mask_png(mask: np.ndarray, color: tuple[int, int, int] = (255, 196, 0)) -> bytes:
    """An RGBA PNG: ``color`` where the mask is set, transparent elsewhere."""
    h, w = mask.shape
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[mask] = (color[2], color[1], color[0], 255)  # cv2 writes BGRA
    ok, buf = cv2.imencode(".png", rgba, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ClickmaskError("cannot encode the mask as PNG")
    return buf.tobytes()


def mask_png_b64(mask: np.ndarray) -> str:
    """:func:`mask_png` as a ``data:`` URL."""
    return "data:image/png;base64," + base64.b64encode(mask_png(mask)).decode()
