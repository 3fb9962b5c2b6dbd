"""The server's memory stays bounded: abandoned tabs and long objects give their memory back."""

from __future__ import annotations

import gc
import os
import time

import numpy as np
import pytest
from PIL import Image

from clickmask.project import open_project
from clickmask.server import AppState
from clickmask.server.state import MAX_SESSIONS
from page_client import page_client

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads /proc/self/statm")


def _rss_mb() -> float:
    gc.collect()
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _clicks(client, n: int, category: int, tab: str = "") -> None:
    for k in range(n):
        r = client.post("/api/images/1/clicks", headers={"x-clickmask-tab": tab},
                        json={"x": 200 + k * 7 % 250, "y": 150 + k * 7 % 200, "positive": k % 3 != 2,
                              "category_id": category})
        assert r.status_code == 200, r.text


@pytest.mark.model
def test_memory_returns_after_200_tabs_and_a_300_click_object(tmp_path, sam_predictor):
    rng = np.random.default_rng(0)
    image = (rng.random((480, 640, 3)) * 60).astype(np.uint8)
    image[100:380, 150:500] += 150
    Image.fromarray(image).save(tmp_path / "a.png")
    store = open_project(tmp_path)
    category = store.add_category("thing")["id"]
    state = AppState(store=store, predictor=sam_predictor)
    state.adaptation.learn = lambda *args: False  # the trainer is another process: not what is measured here
    client = page_client(state)
    _clicks(client, 30, category)  # warm-up: the model's buffers and caches reach their working size
    assert client.post("/api/images/1/finish", json={"category_id": category}).status_code == 200
    start = _rss_mb()
    t0 = time.monotonic()
    for tab in range(200):  # tabs that click once and are closed
        _clicks(client, 1, category, tab=f"tab{tab}")
    assert len(state.sessions) <= MAX_SESSIONS
    _clicks(client, 300, category)
    long_object = _rss_mb() - start
    assert client.post("/api/images/1/finish", json={"category_id": category}).status_code == 200
    after = _rss_mb() - start
    print(f"memory: +{long_object:.0f} MB during the 300-click object, +{after:.0f} MB after it "
          f"({time.monotonic() - t0:.0f} s)")
    assert after < 100
