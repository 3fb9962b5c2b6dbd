"""OPO: per-category adapter versions with delta, background training that never blocks, benchmark wiring."""

from __future__ import annotations

import time

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.learning.trainer import CategoryAdapter, OnlineAdapter, OPOConfig
from synthetic import embedding_and_mask


def test_config_is_checked():
    with pytest.raises(ClickmaskError, match="delta must be at least 1"):
        OPOConfig(delta=0)
    with pytest.raises(ClickmaskError, match="memory >= 1"):
        OPOConfig(memory=0)


def test_versions_follow_delta(frozen_decoder):
    state = CategoryAdapter("cat", frozen_decoder, OPOConfig(delta=2, steps=1, batch_size=1, gate=0))
    for k in range(3):
        state.learn(*embedding_and_mask(k))
    assert len(state.versions) == 4 and state.versions[0] is None
    # object 0 and 1 use the untrained model; object 3 uses the one trained on objects 0..1
    assert state.version_for(0) is None and state.version_for(1) is None
    assert state.version_for(3) is state.versions[2]
    assert state.version_for(10) is state.versions[-1]
    a, b = state.versions[1]
    assert a.shape == (256, 256) and b.shape == (256,)
    assert not np.allclose(a, np.eye(256))  # one SGD step moved it off the identity
    assert len(state.memory) == 3 and state.memory[0].embedding.dtype == np.float16


def test_iterative_clicks_reach_the_training_step(frozen_decoder):
    """--opo-iterative K: K robot clicks with mask feedback are simulated and scored (ICL) in each OPO step."""
    from clickmask.learning.trainer import opo_click_config

    with pytest.raises(ClickmaskError, match="iterative clicks must be at least 0"):
        OPOConfig(iterative=-1)
    assert opo_click_config(OPOConfig()).iterative_clicks == 0
    assert opo_click_config(OPOConfig(iterative=2)).iterative_clicks == 2
    moved = {}
    for k in (0, 1):
        state = CategoryAdapter("cat", frozen_decoder, OPOConfig(steps=1, batch_size=1, iterative=k, gate=0))
        state.learn(*embedding_and_mask(0))
        moved[k] = state.versions[1][0]
    # same seed and initial clicks: the extra scored step changes the gradient
    assert not np.allclose(moved[0], moved[1])


def test_empty_mask_publishes_a_version_without_training(frozen_decoder):
    state = CategoryAdapter("cat", frozen_decoder, OPOConfig(steps=1, batch_size=1, gate=0))
    emb, _ = embedding_and_mask(0)
    state.learn(emb, np.zeros((96, 128), bool))
    assert len(state.versions) == 2 and state.versions[1] is not None and len(state.memory) == 0
    assert np.allclose(state.versions[1][0], np.eye(256))


def test_online_adapter_serves_identity_before_delta(sam_predictor, data_root):
    """Real model: with no training yet, the adapted predictor predicts exactly like the plain one."""
    from clickmask.engine.clicks import Click
    from clickmask.io.datasets import load_dataset
    from clickmask.evaluation.runner import load_sample

    online = OnlineAdapter(sam_predictor, OPOConfig(delta=2, steps=0))
    image, gt, _ = load_sample(load_dataset(data_root, "GrabCut", limit=1)[0])
    active = online.predictor_for("x", 0)
    active.set_image(image)
    sam_predictor.set_image(image)
    rows, cols = np.nonzero(gt)
    click = [Click(float(cols[len(cols) // 2]), float(rows[len(rows) // 2]), True)]
    assert np.array_equal(active.predict(click).logits, sam_predictor.predict(click).logits)
    online.finished("x", 0, image, sam_predictor.embedding, gt)
    with pytest.raises(ClickmaskError, match="in order"):
        online.finished("x", 5, image, sam_predictor.embedding, gt)


def test_prequential_gate_opens_only_on_recent_held_out_gains():
    from clickmask.learning.trainer import PrequentialGate

    with pytest.raises(ClickmaskError, match="gate window must be at least 0"):
        OPOConfig(gate=-1)
    gate = PrequentialGate(window=2)
    assert not gate.is_open()  # no evidence yet: the plain model
    gate.record(0.02)
    assert gate.is_open()
    gate.record(-0.05)
    assert not gate.is_open()  # mean of the last two is negative
    gate.record(0.06)
    assert gate.is_open()  # the window is -0.05, 0.06
    gate.record(-0.07)
    assert not gate.is_open()  # 0.06, -0.07


def test_gated_adapter_serves_the_plain_model_until_it_has_helped(frozen_decoder, monkeypatch):
    import clickmask.learning.trainer as opo

    gains = iter([-0.1, 0.3, -0.5])
    seen = []

    def fake_gain(decoder, adapter, sample, seed):
        seen.append(len(sample.gt.nonzero()[0]))
        return next(gains)

    monkeypatch.setattr(opo, "held_out_gain", fake_gain)
    state = CategoryAdapter("cat", frozen_decoder, OPOConfig(steps=1, batch_size=1, gate=1))
    for k in range(4):
        state.learn(*embedding_and_mask(k))
    # object 0: not tested (nothing trained yet); objects 1, 2, 3 tested before joining the memory
    assert len(seen) == 3 and len(state.memory) == 4
    served = [v is not None for v in state.versions[1:]]
    assert served == [False, False, True, False]
    assert state.gate.gains == [-0.1, 0.3, -0.5]


def test_held_out_gain_is_zero_for_identity_and_negative_for_a_broken_adapter(frozen_decoder, sam_predictor, data_root):
    """Real model and image: the gate's test tells a useless adapter from the plain model."""
    import torch

    from clickmask.io.datasets import load_dataset
    from clickmask.evaluation.runner import load_sample
    from clickmask.learning.trainer import held_out_gain
    from clickmask.learning.adapter import EmbeddingAdapter
    from clickmask.training.loop import TrainSample

    image, gt, _ = load_sample(load_dataset(data_root, "GrabCut", limit=1)[0])
    sam_predictor.set_image(image)
    sample = TrainSample(sam_predictor.embedding, gt, gt.shape, name="grabcut")
    identity = EmbeddingAdapter()
    assert held_out_gain(frozen_decoder, identity, sample, seed=0) == 0.0
    broken = EmbeddingAdapter()
    with torch.no_grad():
        broken.weight.copy_(-torch.eye(256))  # every pixel's feature becomes the bias (zero): no image left
    assert held_out_gain(frozen_decoder, broken, sample, seed=0) < -0.2


def test_object_views_add_the_crop_only_when_it_has_the_object():
    from clickmask.learning.trainer import object_views

    emb, mask = embedding_and_mask(0)
    crop_emb, _ = embedding_and_mask(1)
    assert object_views(emb, np.zeros_like(mask), (crop_emb, mask[10:70, 20:100])) == []
    only_full = object_views(emb, mask, None, name="cat#0")
    assert [s.hw for s in only_full] == [(96, 128)]
    views = object_views(emb, mask, (crop_emb, mask[10:70, 20:100]), name="cat#0")
    assert [s.hw for s in views] == [(96, 128), (60, 80)]
    assert views[1].name == "cat#0 crop" and views[1].embedding.dtype == np.float16
    assert np.array_equal(views[1].gt, mask[10:70, 20:100])
    assert len(object_views(emb, mask, (crop_emb, np.zeros((60, 80), bool)))) == 1  # the crop missed the object


def test_crop_views_are_trained_on_and_gate_tested_only_when_asked(frozen_decoder, monkeypatch):
    """--opo-crop-views: the crop joins the memory, and the gate's gain is the mean over both views."""
    import clickmask.learning.trainer as opo

    tested = []

    def fake_gain(decoder, adapter, sample, seed):
        tested.append(sample.hw)
        return 0.1 if sample.hw == (96, 128) else -0.4

    monkeypatch.setattr(opo, "held_out_gain", fake_gain)
    crop_emb, _ = embedding_and_mask(5)
    for crop_views in (False, True):
        tested.clear()
        state = CategoryAdapter("cat", frozen_decoder, OPOConfig(steps=1, batch_size=1, gate=1, crop_views=crop_views))
        for k in range(2):
            emb, mask = embedding_and_mask(k)
            state.learn(emb, mask, crop=(crop_emb, mask[10:70, 20:100]))
        if crop_views:
            assert len(state.memory) == 4 and tested == [(96, 128), (60, 80)]
            assert state.gate.gains == [pytest.approx(-0.15)] and state.versions[2] is None  # the crop view lost
        else:
            assert len(state.memory) == 2 and tested == [(96, 128)]
            assert state.gate.gains == [pytest.approx(0.1)] and state.versions[2] is not None


def test_robot_replay_gain_is_zero_for_identity_and_negative_for_a_broken_adapter(sam_predictor, data_root):
    """Real model and inference (zoom-in from click 3): the robot test tells a broken adapter apart."""
    from clickmask.engine.inference import InferenceOptions, RefinedPredictor
    from clickmask.io.datasets import load_dataset
    from clickmask.evaluation.runner import load_sample
    from clickmask.sequential.gate_replay import REPLAY_CLICKS, replay_gain, replay_ious
    from clickmask.learning.adapted import AdaptedSamPredictor

    image, gt, _ = load_sample(load_dataset(data_root, "GrabCut", limit=1)[0])
    adapted = AdaptedSamPredictor(sam_predictor.spec, None, sam_predictor.cache)
    active = RefinedPredictor(adapted, InferenceOptions.parse("default"))
    identity = (np.eye(256, dtype=np.float32), np.zeros(256, np.float32))
    assert replay_gain(adapted, active, image, gt, identity, seed=0) == 0.0
    broken = (np.zeros((256, 256), np.float32), np.zeros(256, np.float32))  # no image left
    assert replay_gain(adapted, active, image, gt, broken, seed=0) < -0.2
    assert adapted._affine is None  # left on the plain model
    active.set_image(image)
    rows, cols = np.nonzero(gt)
    from clickmask.engine.clicks import Click

    ious = replay_ious(active, gt, Click(float(cols.mean()), float(rows.mean()), True))
    assert len(ious) == REPLAY_CLICKS and ious[-1] > 0.85


def test_gate_test_choice_is_checked():
    with pytest.raises(ClickmaskError, match="gate test must be"):
        OPOConfig(gate_test="oracle")


def test_optimizer_choice_is_checked_and_shared_with_the_apps_trainer(frozen_decoder):
    """--opo-optimizer: SGD with momentum (SIIS) by default, Adam on request, the same helper in the app's trainer."""
    import torch

    from clickmask.learning.trainer import make_optimizer

    with pytest.raises(ClickmaskError, match="optimizer must be 'sgd' or 'adam'"):
        OPOConfig(optimizer="lbfgs")
    params = [torch.nn.Parameter(torch.zeros(2))]
    sgd = make_optimizer(params, OPOConfig())
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    assert isinstance(make_optimizer(params, OPOConfig(optimizer="adam", lr=1e-3)), torch.optim.Adam)
    state = CategoryAdapter("cat", frozen_decoder, OPOConfig(optimizer="adam", lr=1e-3, steps=1, batch_size=1, gate=0))
    assert isinstance(state.optimizer, torch.optim.Adam)
    state.learn(*embedding_and_mask(0))
    assert not np.allclose(state.versions[1][0], np.eye(256))
