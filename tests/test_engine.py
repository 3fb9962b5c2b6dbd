"""Engine pieces without the model: preprocessing, cache, session, GrabCut fallback."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.embedding_cache import EmbeddingCache, decode_entry, encode_entry, image_key
from clickmask.engine.grabcut import GrabCutPredictor
from clickmask.engine.predictor import Prediction, check_clicks
from clickmask.engine.preprocess import PIXEL_MEAN, map_coords, preprocess, resized_shape
from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickError, ClickmaskError
from clickmask.geometry.masks import iou


def test_resized_shape_and_coords():
    assert resized_shape(480, 640) == (768, 1024)
    assert resized_shape(1000, 10) == (1024, 10)
    xy = map_coords(np.array([[639.0, 479.0]]), 480, 640)
    assert np.allclose(xy, [[639 * 1.6, 479 * 1.6]])


def test_preprocess_pads_with_zeros_and_normalises():
    img = np.zeros((300, 600, 3), np.uint8)
    img[..., 0] = 124  # ~ mean of R
    x = preprocess(img)
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32
    assert np.all(x[:, :, 512:, :] == 0)  # padding rows below the 512-row image
    assert abs(x[0, 0, 100, 100] - (124 - PIXEL_MEAN[0]) / 58.395) < 1e-4


def test_check_clicks_outside_image():
    with pytest.raises(ClickError, match="outside the 20x10 image"):
        check_clicks([Click(20, 3, True)], 10, 20)
    with pytest.raises(ClickError):
        check_clicks([Click(-1, 3, True)], 10, 20)
    with pytest.raises(ClickError, match="at least one click"):
        check_clicks([], 10, 20)


def test_cache_entry_roundtrip_and_corruption():
    emb = np.random.default_rng(0).normal(size=(1, 256, 64, 64)).astype(np.float32)
    blob = encode_entry(emb)
    back = decode_entry(blob)
    assert back.shape == emb.shape and np.allclose(back, emb, atol=2e-3)
    flipped = bytearray(blob)
    flipped[-100] ^= 0xFF
    assert decode_entry(bytes(flipped)) is None
    assert decode_entry(blob[:-10]) is None
    assert decode_entry(b"garbage") is None
    reshaped = blob.replace(b"[1, 256, 64, 64]", b"[1, 64, 256, 64]", 1)  # same size, edited header
    assert reshaped != blob and decode_entry(reshaped) is None


def test_disk_cache_detects_corrupt_entries(tmp_path):
    emb = np.ones((1, 4, 8, 8), np.float32)
    cache = EmbeddingCache(tmp_path, max_items=2)
    cache.put("k1", emb)
    fresh = EmbeddingCache(tmp_path)
    assert np.array_equal(fresh.get("k1"), emb) and fresh.hits_disk == 1
    path = next(tmp_path.rglob("k1.emb"))
    path.write_bytes(path.read_bytes()[:-7])  # truncated, as after a crash mid-write by another tool
    fresh = EmbeddingCache(tmp_path)
    assert fresh.get("k1") is None and fresh.corrupt == 1 and not path.exists()
    assert not list(tmp_path.rglob("*.tmp*"))


def test_memory_lru_evicts_oldest():
    cache = EmbeddingCache(None, max_items=2)
    for k in "abc":
        cache.put(k, np.zeros(3, np.float32))
    assert cache.get("a") is None and cache.get("c") is not None


def test_image_key_depends_on_content_and_shape():
    a = np.zeros((4, 6, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert image_key(a) == image_key(a.copy())
    assert image_key(a) != image_key(b)
    assert image_key(a) != image_key(a.reshape(6, 4, 3))


class _CountingPredictor:
    """Fake predictor: the mask is the union of 3x3 squares at positive clicks."""

    model_id, is_fallback = "fake", False

    def __init__(self):
        self.calls = []

    def set_image(self, image):
        self.shape = image.shape[:2]

    def predict(self, clicks, previous=None, box=None):
        """3x3 squares at positive clicks, the box filled; a lone prompt offers a 7x7 square (or the
        box grown by 2 px), a copy of the mask and an empty mask as candidates."""
        self.calls.append((list(clicks), previous, box))
        logits = -np.ones(self.shape, np.float32)
        for c in clicks:
            if c.positive:
                logits[int(c.y) - 1 : int(c.y) + 2, int(c.x) - 1 : int(c.x) + 2] = 1
        if box is not None:
            logits[int(box.y0) : int(box.y1), int(box.x0) : int(box.x1)] = 1
        pred = Prediction(logits, logits[::2, ::2].copy(), 0.5)
        if len(clicks) + (box is not None) == 1:
            big = -np.ones(self.shape, np.float32)
            x0, y0, x1, y1 = (box.x0 - 2, box.y0 - 2, box.x1 + 2, box.y1 + 2) if box else \
                (clicks[0].x - 3, clicks[0].y - 3, clicks[0].x + 4, clicks[0].y + 4)
            big[max(0, int(y0)) : int(y1), max(0, int(x0)) : int(x1)] = 1
            pred.candidates = [Prediction(big, big[::2, ::2].copy(), 0.4), Prediction(logits.copy(), None, 0.3),
                               Prediction(-np.ones(self.shape, np.float32), None, 0.1)]
        return pred

    def polish(self, pred, clicks):
        pred.info["polished_with"] = len(clicks)
        return pred


def test_session_feeds_back_previous_logits_and_undoes():
    pred = _CountingPredictor()
    pred.set_image(np.zeros((20, 20, 3), np.uint8))
    s = InteractiveSession(pred)
    assert s.current_mask((20, 20)).sum() == 0
    p1 = s.add_click(Click(5, 5, True))
    assert pred.calls[0][1] is None
    s.add_click(Click(15, 15, True))
    assert pred.calls[1][1] is p1
    assert s.current_mask().sum() == 18
    assert s.undo() is p1 and s.current_mask().sum() == 9 and len(s.clicks) == 1
    s.reset()
    assert s.prediction is None and s.clicks == []
    no_feedback = InteractiveSession(pred, mask_feedback=False)
    no_feedback.add_click(Click(5, 5, True))
    no_feedback.add_click(Click(6, 6, False))
    assert pred.calls[-1][1] is None


def test_a_box_starts_the_object_clicks_refine_it_and_undo_takes_the_box_back():
    pred = _CountingPredictor()
    pred.set_image(np.zeros((30, 30, 3), np.uint8))
    s = InteractiveSession(pred)
    p0 = s.start_box(BoxPrompt.of(20, 18, 10, 8))  # dragged up and left: corners are ordered
    assert s.box == BoxPrompt(10, 8, 20, 18) and pred.calls[-1] == ([], None, s.box)
    assert s.current_mask().sum() == 100 and s.clicks == []
    with pytest.raises(ClickmaskError):
        s.start_box(BoxPrompt(0, 0, 5, 5))  # a box only starts an object
    s.add_click(Click(25, 25, True))
    assert pred.calls[-1][1:] == (p0, s.box)  # the box stays a prompt of every click
    assert s.undo() is p0 and s.box is not None
    assert s.undo() is None and s.box is None and s.prediction is None


def test_the_first_prompts_other_masks_can_be_chosen_smallest_first_until_the_next_click():
    pred = _CountingPredictor()
    pred.set_image(np.zeros((30, 30, 3), np.uint8))
    s = InteractiveSession(pred)
    assert s.choices == (0, 0)
    s.add_click(Click(10, 10, True))
    assert s.choices == (0, 2)  # the copy and the empty candidate are not offered
    bigger = s.choose(1)
    assert bigger.mask.sum() == 49 and s.current_mask().sum() == 49 and s.choices == (1, 2)
    assert bigger.info["polished_with"] == 1  # the image-space steps ran on the chosen mask
    assert s.choose(2).mask.sum() == 9 and s.choices == (0, 2)  # modulo: back to the first
    s.choose(-1)
    s.add_click(Click(20, 20, True))
    assert pred.calls[-1][1] is bigger  # the chosen mask is the next click's mask feedback
    assert s.choices == (0, 0)
    with pytest.raises(ClickmaskError):
        s.choose(0)
    s.undo()
    assert s.choices == (1, 2) and s.current_mask().sum() == 49  # undone back to one prompt: choose again


def test_session_keeps_old_predictions_compact_and_undo_gives_their_masks_back():
    from clickmask.engine.session import KEEP_WHOLE, _Compact

    pred = _CountingPredictor()
    pred.set_image(np.zeros((40, 40, 3), np.uint8))
    s = InteractiveSession(pred)
    masks = [s.add_click(Click(2 + k, 2 + k, k % 4 != 3)).mask.copy() for k in range(30)]
    compact = [isinstance(p, _Compact) for p in s._history]
    assert not compact[0] and not any(compact[-KEEP_WHOLE:]) and all(compact[1:-KEEP_WHOLE])
    for k in range(29, 0, -1):
        back = s.undo()
        assert np.array_equal(back.mask, masks[k - 1]) and len(s.clicks) == k
        assert back.low_res_logits.dtype == np.float32 and np.array_equal(back.low_res_logits > 0,
                                                                          back.mask[::2, ::2])
    assert s.undo() is None and s.clicks == []


def test_session_started_from_a_known_first_mask():
    """An accepted proposal: the first click's mask is given, no predict call; the next click feeds it back."""
    pred = _CountingPredictor()
    pred.set_image(np.zeros((20, 20, 3), np.uint8))
    s = InteractiveSession(pred)
    known = Prediction(np.where(np.arange(20)[None, :] < 10, 1.0, -1.0) * np.ones((20, 1)), np.zeros((10, 10)), 0.9)
    assert s.start_from(Click(5, 5, True), known) is known
    assert pred.calls == [] and s.first_prediction is known and s.current_mask().sum() == 200
    s.add_click(Click(15, 15, False))
    assert pred.calls[0] == ([Click(5, 5, True), Click(15, 15, False)], known, None)
    assert s.undo() is known and s.clicks == [Click(5, 5, True)]
    with pytest.raises(ClickmaskError, match="without clicks"):
        s.start_from(Click(1, 1, True), known)


def _disk_scene(seed=0):
    rng = np.random.default_rng(seed)
    h, w = 240, 320
    yy, xx = np.mgrid[:h, :w]
    gt = (yy - 120) ** 2 + (xx - 170) ** 2 < 60**2
    img = rng.integers(0, 60, size=(h, w, 3)).astype(np.uint8)
    img[gt] = np.clip(img[gt].astype(int) + [180, 120, 20], 0, 255).astype(np.uint8)
    return img, gt


def test_grabcut_fallback_segments_a_distinct_object():
    img, gt = _disk_scene()
    pred = GrabCutPredictor()
    pred.set_image(img)
    s = InteractiveSession(pred)
    out = s.add_click(Click(170, 120, True))
    assert pred.is_fallback and out.logits.shape == gt.shape
    assert iou(gt, out.mask) > 0.9
    out = s.add_click(Click(10, 10, False))
    assert iou(gt, out.mask) > 0.9


def test_an_undone_click_or_box_comes_back_with_redo_until_a_new_click():
    pred = _CountingPredictor()
    pred.set_image(np.zeros((30, 30, 3), np.uint8))
    s = InteractiveSession(pred)
    p0 = s.start_box(BoxPrompt(2, 2, 8, 8))
    p1 = s.add_click(Click(20, 20, True))
    calls = len(pred.calls)
    s.undo()
    s.undo()
    assert s.prediction is None and s.redo_count == 2
    assert s.redo() is p0 and s.box == BoxPrompt(2, 2, 8, 8)
    assert s.redo() is p1 and s.clicks == [Click(20, 20, True)] and s.redo_count == 0
    assert len(pred.calls) == calls  # the exact masks come back, without predicting again
    s.undo()
    s.add_click(Click(25, 25, False))
    assert s.redo_count == 0 and s.redo() is s.prediction  # a new click forgets what was undone


def test_embedding_cache_on_disk_is_bounded_least_recently_used_first(tmp_path):
    """Beyond its bound, the disk cache deletes the entries used longest ago (a read counts as a use)."""
    import os as _os

    from clickmask.engine.embedding_cache import EmbeddingCache

    arrays = {f"{k:02d}" + "ab" * 15: np.full((1, 4, 8, 8), k, np.float32) for k in range(10)}
    cache = EmbeddingCache(tmp_path, max_items=1, max_disk_bytes=10**9)
    for t, (key, array) in enumerate(arrays.items()):
        cache.put(key, array)
        _os.utime(cache._path(key), (1000 + t, 1000 + t))
    size = cache._path(next(iter(arrays))).stat().st_size
    first = next(iter(arrays))
    assert cache.get(first) is not None  # read now: the most recently used
    cache.max_disk_bytes = 5 * size
    assert cache.trim() == 6  # down to 90% of 5 entries: 4 kept
    kept = {p.stem for p in tmp_path.glob("*/*.emb")}
    assert first in kept and kept == {first, *list(arrays)[7:]}
