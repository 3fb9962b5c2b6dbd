"""Prefetch: next images are encoded in the background, and a click never encodes an image twice."""

from __future__ import annotations

import threading
import time

import numpy as np
from PIL import Image

from clickmask.engine.predictor import Prediction
from clickmask.project import open_project
from clickmask.server import AppState


class SlowPredictor:
    """A fake backend: 'encoding' takes 0.3 s and is counted; predict is instant."""

    model_id = "fake"
    is_fallback = False

    def __init__(self) -> None:
        self.encoded: list[int] = []
        self.cache: set[int] = set()
        self.lock = threading.Lock()
        self._image = None

    def _encode(self, image: np.ndarray) -> None:
        key = int(image[0, 0, 0])
        with self.lock:
            if key in self.cache:
                return
        time.sleep(0.3)
        with self.lock:
            self.encoded.append(key)
            self.cache.add(key)

    def prefetch(self, image: np.ndarray) -> bool:
        self._encode(image)
        return True

    def set_image(self, image: np.ndarray) -> None:
        self._encode(image)
        self._image = image

    def predict(self, clicks, previous=None, **_kw) -> Prediction:
        h, w = self._image.shape[:2]
        logits = -np.ones((h, w), np.float32)
        logits[: h // 2, : w // 2] = 1
        return Prediction(logits=logits, low_res_logits=logits, score=1.0)


def _state(tmp_path, n=4):
    for i in range(n):
        Image.fromarray(np.full((20, 30, 3), 10 * i + 1, np.uint8)).save(tmp_path / f"img{i}.png")
    predictor = SlowPredictor()
    return AppState(store=open_project(tmp_path), predictor=predictor, prefetch_ahead=2), predictor


def test_open_prefetches_current_and_next_two(tmp_path):
    state, predictor = _state(tmp_path)
    state.open_image(1)
    assert state.status()["busy"] is True
    assert state.prefetcher.wait_idle(10)
    assert sorted(predictor.encoded) == [1, 11, 21]  # images 1..3, not image 4
    assert state.prefetcher.is_ready(2) and not state.prefetcher.is_ready(4)


def test_click_during_prefetch_waits_instead_of_encoding_again(tmp_path):
    state, predictor = _state(tmp_path)
    state.open_image(2)  # prefetch starts on image 2
    time.sleep(0.05)
    obj, _ = state.click(2, 3, 3, True)
    mask, clicks = obj.mask, obj.clicks
    assert mask[0, 0] and len(clicks) == 1
    assert predictor.encoded.count(11) == 1
    assert state.prefetcher.wait_idle(10)
    assert predictor.encoded.count(11) == 1
