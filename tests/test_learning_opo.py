"""OPO: the one per-category trainer (gate, memory, steps), versions with delta, the benchmark's wiring."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.evaluation.sequential.online import OnlineAdapter
from clickmask.learning.opo import OPOConfig, PrequentialGate
from clickmask.learning.trainer import CategoryTrainer
from synthetic import embedding_and_mask

pytest.importorskip("torch")


def test_config_is_checked():
    with pytest.raises(ClickmaskError, match="delta must be at least 1"):
        OPOConfig(delta=0)
    with pytest.raises(ClickmaskError, match="memory >= 1"):
        OPOConfig(memory=0)
    with pytest.raises(ClickmaskError, match="gate window must be at least 0"):
        OPOConfig(gate=-1)


def learn(trainer: CategoryTrainer, decoder, embedding, mask) -> None:
    trainer.add(decoder, embedding, mask)
    assert trainer.train(decoder)


def test_trainer_learns_with_sgd_and_keeps_float16_memory(frozen_decoder):
    import torch

    trainer = CategoryTrainer(OPOConfig(steps=1, batch_size=1, gate=0), key=7)
    assert isinstance(trainer.optimizer, torch.optim.SGD) and trainer.optimizer.defaults["momentum"] == 0.9
    assert np.allclose(trainer.published()[0], np.eye(256))  # untrained: the identity
    for k in range(3):
        learn(trainer, frozen_decoder, *embedding_and_mask(k))
    a, b = trainer.published()
    assert a.shape == (256, 256) and b.shape == (256,) and not np.allclose(a, np.eye(256))
    assert len(trainer.memory) == 3 and trainer.memory[0].embedding.dtype == np.float16
    assert trainer.seen == 3 and len(trainer.losses) == 3


def test_empty_mask_adds_nothing_but_counts(frozen_decoder):
    trainer = CategoryTrainer(OPOConfig(steps=1, batch_size=1, gate=0), key=0)
    emb, _ = embedding_and_mask(0)
    assert trainer.add(frozen_decoder, emb, np.zeros((96, 128), bool)) is False
    assert trainer.train(frozen_decoder) and not trainer.trained and trainer.seen == 1 and not trainer.memory


def test_interrupted_training_stops_before_the_next_step(frozen_decoder):
    trainer = CategoryTrainer(OPOConfig(steps=4, batch_size=1, gate=0), key=0)
    trainer.add(frozen_decoder, *embedding_and_mask(0))
    asked = []

    def interrupted() -> bool:
        asked.append(1)
        return len(asked) > 2  # two steps, then stop

    assert trainer.train(frozen_decoder, interrupted) is False
    assert len(trainer.losses) == 2 and not trainer.trained
    trainer.forget_last(1)
    assert not trainer.memory


def test_prequential_gate_opens_only_on_recent_held_out_gains():
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


def test_gated_trainer_serves_the_plain_model_until_it_has_helped(frozen_decoder, monkeypatch):
    import clickmask.learning.trainer as trainer_module

    gains = iter([-0.1, 0.3, -0.5])
    seeds = []

    def fake_gain(decoder, adapter, sample, seed):
        seeds.append(seed)
        return next(gains)

    monkeypatch.setattr(trainer_module, "held_out_gain", fake_gain)
    trainer = CategoryTrainer(OPOConfig(steps=1, batch_size=1, gate=1), key=0)
    served = []
    for k in range(4):
        learn(trainer, frozen_decoder, *embedding_and_mask(k))
        served.append(trainer.published() is not None)
    # object 0: not tested (nothing trained yet); objects 1, 2, 3 tested before joining the memory
    assert seeds == [2, 3, 4] and len(trainer.memory) == 4
    assert served == [False, False, True, False]
    assert trainer.gate.gains == [-0.1, 0.3, -0.5]


def test_restored_adapter_is_tested_by_the_next_object(frozen_decoder, monkeypatch):
    import clickmask.learning.trainer as trainer_module
    from clickmask.learning.adapter import EmbeddingAdapter

    monkeypatch.setattr(trainer_module, "held_out_gain", lambda *args, **kw: 0.5)
    trainer = CategoryTrainer(OPOConfig(steps=1, batch_size=1, gate=3), key=0, adapter=EmbeddingAdapter())
    assert trainer.trained and trainer.published() is None  # restored, but no evidence yet
    trainer.add(frozen_decoder, *embedding_and_mask(0))
    assert trainer.gate.gains == [0.5] and trainer.published() is not None


def test_held_out_gain_is_zero_for_identity_and_negative_for_a_broken_adapter(frozen_decoder, sam_predictor, data_root):
    """Real model and image: the gate's test tells a useless adapter from the plain model."""
    import torch

    from clickmask.evaluation.runner import load_sample
    from clickmask.io.datasets import load_dataset
    from clickmask.learning.adapter import EmbeddingAdapter
    from clickmask.learning.trainer import held_out_gain
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


def test_online_adapter_follows_delta_and_serves_identity_before_it(sam_predictor, data_root):
    """Real model: versions follow delta; with no training yet the adapted predictor predicts like the plain one."""
    from clickmask.engine.clicks import Click
    from clickmask.evaluation.runner import load_sample
    from clickmask.io.datasets import load_dataset

    online = OnlineAdapter(sam_predictor, OPOConfig(delta=2, steps=1, batch_size=1, gate=0))
    image, gt, _ = load_sample(load_dataset(data_root, "GrabCut", limit=1)[0])
    active = online.predictor_for("x", 0)
    active.set_image(image)
    sam_predictor.set_image(image)
    rows, cols = np.nonzero(gt)
    click = [Click(float(cols[len(cols) // 2]), float(rows[len(rows) // 2]), True)]
    assert np.array_equal(active.predict(click).logits, sam_predictor.predict(click).logits)
    for index in range(3):
        online.finished("x", index, sam_predictor.embedding, gt)
    versions = online.versions["x"]
    assert len(versions) == 4 and versions[0] is None
    # objects 0 and 1 use the untrained model; object 3 the one trained on objects 0..1
    assert online.affine_for("x", 1) is None and online.affine_for("x", 3) is versions[2]
    assert online.affine_for("x", 10) is versions[-1]
    with pytest.raises(ClickmaskError, match="in order"):
        online.finished("x", 5, sam_predictor.embedding, gt)


def test_the_apps_worker_and_the_benchmark_run_one_trainer_and_one_adapted_predictor(frozen_decoder, sam_predictor,
                                                                                    monkeypatch):
    """The app's background worker and ``eval --sequential`` train with the same class, and click with the same
    adapted predictor class (the benchmark measures what the app runs)."""
    from clickmask.learning.adapted import AdaptedPredictor, adapted_base
    from clickmask.server.adaptation import adaptable_predictor
    from clickmask.server.opo_worker import OpoWorker

    trained = []
    real_train = CategoryTrainer.train

    def spy(self, decoder, *args, **kwargs):
        trained.append(type(self))
        return real_train(self, decoder, *args, **kwargs)

    monkeypatch.setattr(CategoryTrainer, "train", spy)
    config = OPOConfig(steps=1, batch_size=1, gate=0)
    worker = OpoWorker(lambda: frozen_decoder, config)  # the app's worker (thread mode: same process)
    try:
        worker.submit(1, *embedding_and_mask(0))
        assert worker.wait_idle(600) and worker.latest(1).version == 1
    finally:
        worker.close()
    online = OnlineAdapter(sam_predictor, config)  # the sequential benchmark's OPO
    online.finished("x", 0, *embedding_and_mask(0))
    assert trained == [CategoryTrainer, CategoryTrainer]
    assert type(adapted_base(adaptable_predictor(sam_predictor))) is AdaptedPredictor
    assert type(adapted_base(online.predictor_for("x", 0))) is AdaptedPredictor
