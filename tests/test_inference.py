"""Inference refinements: option parsing, boundary refinement, and the real model."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.engine.boundary import fast_guided_filter, guided_filter, refine_boundary
from clickmask.engine.clicks import Click
from clickmask.engine.refine import InferenceOptions, InferenceStats, RefinedPredictor
from clickmask.engine.predictor import Prediction
from clickmask.errors import ClickmaskError
from clickmask.geometry.masks import iou
from clickmask.evaluation.runner import EvalOptions, evaluate_object
from clickmask.samples import load_samples


def test_parse_options():
    opts = InferenceOptions.parse("cfr=4, acfr=20,zoom_expand=1.6,first=central")
    assert opts.cfr == 4 and opts.acfr == 20 and opts.zoom_expand == 1.6
    assert opts.changed() == {"cfr": 4, "acfr": 20, "zoom_expand": 1.6, "first": "central"}
    assert InferenceOptions.parse("zoom=off").zoom is False
    assert InferenceOptions.parse("").changed() == {}
    with pytest.raises(ClickmaskError, match="unknown inference option 'cfx'"):
        InferenceOptions.parse("cfx=1")
    with pytest.raises(ClickmaskError, match="expected a int"):
        InferenceOptions.parse("cfr=many")
    with pytest.raises(ClickmaskError, match="first="):
        InferenceOptions.parse("first=all")  # a rejected rule (docs/decisions/0001), no longer an option
    with pytest.raises(ClickmaskError, match="unknown inference option 'consistency'"):
        InferenceOptions.parse("consistency")


def test_guided_filter_keeps_constant_and_follows_edges():
    guide = np.zeros((40, 40), np.float32)
    guide[:, 20:] = 1.0
    flat = np.full((40, 40), 0.3, np.float32)
    assert np.allclose(guided_filter(guide, flat, 3, 1e-3), 0.3, atol=1e-4)
    # a soft mask whose edge is 3 px off the image edge is pulled onto it
    yy, xx = np.mgrid[:40, :40]
    image = np.repeat((guide * 255).astype(np.uint8)[..., None], 3, axis=2)
    logits = ((xx - 16.5) * 0.6).astype(np.float32)  # boundary at x = 16.5, true edge at 20
    refined = refine_boundary(image, logits, radius=4, eps=1e-3, band=6)
    before = np.mean(np.abs(np.argmax(logits > 0, axis=1) - 20))
    after = np.mean(np.abs(np.argmax(refined > 0, axis=1) - 20))
    assert after < before




@pytest.fixture(scope="module")
def base(sam_predictor):
    sample = load_samples(["rocket"])[0]
    sam_predictor.set_image(sample.image)
    return sam_predictor, sample


@pytest.mark.model
def test_default_options_equal_the_base_predictor(base):
    sam, sample = base
    refined = RefinedPredictor(sam, InferenceOptions())
    refined.set_image(sample.image)
    clicks = [Click(320, 200, True), Click(100, 100, False)]
    a, b = sam.predict(clicks[:1]), refined.predict(clicks[:1])
    assert np.allclose(a.logits, b.logits) and len(b.candidates) == 3
    a2, b2 = sam.predict(clicks, previous=a), refined.predict(clicks, previous=b)
    assert np.allclose(a2.logits, b2.logits)


@pytest.mark.model
def test_first_finest_takes_the_finest_token_for_a_lone_click_only(base):
    sam, sample = base
    finest = RefinedPredictor(sam, InferenceOptions.parse("first=finest"))
    finest.set_image(sample.image)
    click = Click(320, 200, True)
    pred = finest.predict([click])
    assert pred.info["first_token"] == 1
    assert np.allclose(pred.low_res_logits, pred.info["first_low_res"][1])
    two = finest.predict([click, Click(100, 100, False)], previous=pred)
    assert "first_token" not in two.info


@pytest.mark.model
def test_cfr_runs_extra_passes_and_acfr_stops_early(base):
    sam, sample = base
    fixed = RefinedPredictor(sam, InferenceOptions(cfr=3))
    fixed.set_image(sample.image)
    first = fixed.predict([Click(320, 200, True)])
    assert first.info["cfr_steps"] == 0  # a lone click is not refined
    two = [Click(320, 200, True), Click(100, 100, False)]
    assert fixed.predict(two, first).info["cfr_steps"] == 3
    adaptive = RefinedPredictor(sam, InferenceOptions(cfr=3, acfr=10**9))
    adaptive.set_image(sample.image)
    assert adaptive.predict(two, first).info["cfr_steps"] == 1


@pytest.mark.model
def test_zoom_in_crops_small_objects_and_reuses_the_crop(base):
    sam, sample = base
    zoom = RefinedPredictor(sam, InferenceOptions(zoom=True, zoom_from=2))
    zoom.stats = InferenceStats()
    zoom.set_image(sample.image)
    result = evaluate_object(zoom, sample.mask, None, EvalOptions(max_clicks=4), keep_masks=True)
    assert zoom.stats.zoom_encodes == 1  # one crop for the whole object
    assert result.ious[-1] >= 0.9
    assert all(m.shape == sample.mask.shape for m in result.masks)


@pytest.mark.model
def test_app_uses_the_inference_options(model_spec, tmp_path):
    from clickmask.server.run import build_state

    state = build_state(tmp_path / "sample", sample=True, infer="zoom,cfr=1")
    assert isinstance(state.predictor, RefinedPredictor)
    assert state.predictor.options.changed() == {"zoom": True, "cfr": 1}
    with pytest.raises(ClickmaskError, match="unknown inference option"):
        build_state(tmp_path / "sample", sample=True, infer="turbo")


def _disk(h: int, w: int, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_click_centrality_is_one_at_the_centre_and_zero_outside():
    from clickmask.engine.refine.first_click import click_centrality

    disk = _disk(64, 64, 32, 32, 20)
    assert click_centrality(disk, 32, 32) == pytest.approx(1.0)
    assert 0 < click_centrality(disk, 50, 32) < 0.2
    assert click_centrality(disk, 2, 2) == 0.0


def test_pick_central_prefers_the_candidate_the_click_is_inside_of():
    from clickmask.engine.refine.first_click import pick_central

    low_res = np.full((4, 256, 256), -5.0, np.float32)
    low_res[1][_disk(256, 256, 60, 60, 30)] = 5.0     # click at its border, best predicted IoU
    low_res[2][_disk(256, 256, 100, 60, 30)] = 5.0    # click at its centre
    scores = np.array([0.5, 0.95, 0.8, 0.1], np.float32)
    assert pick_central(low_res, scores, np.array([100.0, 60.0])) == 2


def test_keep_local_undoes_a_collapse_but_not_a_local_correction():
    from clickmask.engine.refine.local import keep_local

    prev = np.where(_disk(200, 200, 100, 100, 60), 5.0, -5.0).astype(np.float32)
    click = Click(x=150, y=100, positive=False)  # near the border: a small error
    corrected = prev.copy()
    corrected[_disk(200, 200, 155, 100, 8)] = -5.0
    assert keep_local(prev, corrected, click) is None
    collapsed = np.full_like(prev, -5.0)
    collapsed[_disk(200, 200, 40, 100, 5)] = 5.0
    fused, (x0, y0, x1, y1) = keep_local(prev, collapsed, click)
    assert x0 <= 150 < x1 and y0 <= 100 < y1
    assert (fused[y0:y1, x0:x1] == collapsed[y0:y1, x0:x1]).all()
    assert (fused[:, :x0] == prev[:, :x0]).all() and (fused[100, 100] > 0)


@pytest.mark.model
def test_honor_adds_ignored_positive_click_regions_and_times_the_step(base):
    sam, sample = base
    plain = RefinedPredictor(sam, InferenceOptions())
    honor = RefinedPredictor(sam, InferenceOptions(honor=True))
    for p in (plain, honor):
        p.stats = InferenceStats()
        p.set_image(sample.image)
    clicks = [Click(320, 200, True)]
    a, b = plain.predict(clicks), honor.predict(clicks)
    assert np.array_equal(a.mask, b.mask)  # a satisfied click changes nothing
    assert len(honor.stats.step_ms["honor"]) == 1 and not plain.stats.step_ms["honor"]
    # the decoder's answer ignores a positive click on a thin dark bar: the bar is added
    image = np.full((200, 300, 3), 210, np.uint8)
    image[99:102, 40:260] = (30, 30, 40)
    honor._image, honor._lab = image, None
    ignored = Prediction(logits=np.full((200, 300), -4.0, np.float32), low_res_logits=b.low_res_logits, score=0.5)
    fixed = honor._honor(ignored, [Click(150, 100, True)])
    assert fixed.info["honored"] == 1
    assert fixed.mask[100, 130:170].all() and fixed.mask.sum() < 3 * 200


@pytest.mark.model
def test_latency_bench_reports_inference_steps(model_spec):
    from clickmask.evaluation.latency import format_latency, measure_latency

    result = measure_latency(model_spec, megapixels=0.05, clicks=2, repeats=1,
                             options=InferenceOptions(boundary=True))
    assert result["inference"] == {"boundary": True}
    assert result["steps_ms"]["boundary"]["n"] == result["click_ms"]["n"]
    assert "of which boundary" in format_latency(result)


@pytest.mark.model
def test_flip_averages_with_the_mirrored_image(base):
    sam, sample = base
    flip = RefinedPredictor(sam, InferenceOptions(flip=True))
    flip.set_image(sample.image)
    plain = RefinedPredictor(sam, InferenceOptions())
    plain.set_image(sample.image)
    clicks = [Click(320, 200, True)]
    a = flip.predict(clicks)
    assert a.info["flip_low_res"].shape == a.low_res_logits.shape
    assert not np.allclose(a.logits, plain.predict(clicks).logits)  # the mirrored view counts
    b = flip.predict(clicks + [Click(100, 100, False)], a)
    assert iou(sample.mask, b.mask) >= 0.8


def test_fast_guided_filter_matches_the_full_resolution_one():
    rng = np.random.default_rng(0)
    guide = np.zeros((300, 400), np.float32)
    guide[:, 200:] = 1.0
    guide += rng.normal(0, 0.02, guide.shape).astype(np.float32)
    src = np.clip((np.mgrid[:300, :400][1] - 190) / 20.0, 0, 1).astype(np.float32)
    full = guided_filter(guide, src, 4, 1e-3)
    fast = fast_guided_filter(guide, src, 4, 1e-3, 2)
    assert fast.shape == full.shape
    assert np.array_equal(fast > 0.5, full > 0.5) or np.mean((fast > 0.5) != (full > 0.5)) < 0.002
    assert np.abs(fast - full).mean() < 0.02


def test_refine_boundary_subsamples_large_work_areas(monkeypatch):
    import clickmask.engine.boundary as boundary

    image = np.zeros((200, 200, 3), np.uint8)
    image[:, 100:] = 255
    xx = np.mgrid[:200, :200][1]
    logits = ((xx - 96.5) * 0.6).astype(np.float32)
    exact = refine_boundary(image, logits)
    monkeypatch.setattr(boundary, "FULL_RES_AREA", 15_000)  # scale 2
    fast = refine_boundary(image, logits)
    assert np.mean((exact > 0) != (fast > 0)) < 0.01
    assert abs(np.argmax(fast[100] > 0) - 100) <= abs(np.argmax(logits[100] > 0) - 100)


@pytest.mark.model
def test_flip_prefetch_caches_the_mirrored_embedding(model_spec):
    from clickmask.engine.embedding_cache import EmbeddingCache
    from clickmask.engine.sam_onnx import SamOnnxPredictor

    sam = SamOnnxPredictor(model_spec, EmbeddingCache(None, max_items=4))
    flip = RefinedPredictor(sam, InferenceOptions(flip=True))
    image = load_samples(["coffee"])[0].image
    assert flip.prefetch(image)
    _, cached = sam.image_embedding(np.ascontiguousarray(image[:, ::-1]))
    assert cached


def test_a_crop_mask_spilling_over_an_inner_edge_fills_the_crop():
    from clickmask.engine.refine.zoom import fills_crop

    inside = np.zeros((100, 80), bool)
    inside[30:70, 20:60] = True  # clear of every edge: the object, with its margin
    assert not fills_crop(inside, (100, 50, 180, 150), (400, 400))
    leak = inside.copy()
    leak[20:100, 0:30] = True  # runs along the left edge for 80 of 100 rows
    assert fills_crop(leak, (100, 50, 180, 150), (400, 400))
    assert not fills_crop(leak, (0, 50, 80, 150), (400, 400))  # that edge is the image's: allowed
