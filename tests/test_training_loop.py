"""Training with the real model: the loss goes down, checkpoints load, the adapter reaches inference."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from clickmask.cli import main
from clickmask.engine.clicks import Click
from clickmask.errors import ClickmaskError
from clickmask.models.registry import ModelSpec
from clickmask.samples import load_samples
from clickmask.learning.adapted import AdaptedPredictor
from clickmask.learning.adapter import EmbeddingAdapter
from clickmask.training.checkpoint import load_checkpoint, save_checkpoint
from clickmask.training.loop import ClickConfig, TrainSample, evaluate_loss, sequence_loss, train_steps
from clickmask.training.torch_decoder import TorchSamDecoder

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def decoder(model_spec):
    torch.set_num_threads(1)
    return TorchSamDecoder.from_onnx(model_spec.decoder)


@pytest.fixture(scope="module")
def rocket(sam_predictor):
    sample = load_samples(["rocket"])[0]
    sam_predictor.set_image(sample.image)
    return TrainSample(sam_predictor.embedding.copy(), sample.mask, sample.mask.shape, "rocket")


def test_sequence_loss_runs_the_click_loop(decoder, rocket):
    config = ClickConfig(max_pos=2, max_neg=2, iterative_clicks=2)
    loss, ious = sequence_loss(decoder, EmbeddingAdapter(), rocket, np.random.default_rng(0), config)
    assert loss.requires_grad and float(loss.detach()) > 0
    assert 1 <= len(ious) <= 3 and all(0.5 < v <= 1 for v in ious)


def test_training_steps_reduce_the_loss(decoder, rocket):
    """A few Adam steps on one real image lower the (fixed-click) validation loss of that image."""
    config = ClickConfig(max_pos=1, max_neg=1, iterative_clicks=1, batch_size=2, loss="bce")
    adapter = EmbeddingAdapter()
    before = evaluate_loss(decoder, adapter, [rocket], config, seed=1)
    losses = train_steps(decoder, adapter, [rocket], 6, torch.optim.Adam(adapter.parameters(), lr=2e-3),
                         np.random.default_rng(0), config)
    after = evaluate_loss(decoder, adapter, [rocket], config, seed=1)
    assert len(losses) == 6 and all(np.isfinite(losses))
    assert after["loss"] < 0.8 * before["loss"], (before, after)
    # the decoder stayed frozen: only the adapter was trained
    assert not any(p.requires_grad for p in decoder.parameters())
    assert float(adapter.weight.detach().abs().sum()) > 0


def test_online_style_sgd_call(decoder, rocket):
    """The OPO-style call (SGD, 1-5 / 0-5 clicks, no iterative clicks) runs and trains only the adapter."""
    adapter = EmbeddingAdapter(rank=16)
    config = ClickConfig(max_pos=5, max_neg=5, iterative_clicks=0, loss="bce", batch_size=2)
    losses = train_steps(decoder, adapter, [rocket], 2, torch.optim.SGD(adapter.parameters(), lr=5e-3),
                         np.random.default_rng(0), config)
    assert len(losses) == 2 and float(adapter.up.detach().abs().sum()) > 0


def test_checkpoint_round_trip_and_model_check(model_spec, tmp_path):
    adapter = EmbeddingAdapter()
    with torch.no_grad():
        adapter.bias.add_(0.5)
    path = tmp_path / "a.npz"
    save_checkpoint(path, adapter, model_spec, {"steps": 3})
    back, meta = load_checkpoint(path, model_spec)
    assert meta["model_id"] == model_spec.id and meta["training"] == {"steps": 3}
    assert meta["sha256"]["decoder"] == model_spec.sha256["decoder"]
    assert torch.equal(back.bias, adapter.bias)
    other = ModelSpec(id="other", encoder=model_spec.encoder, decoder=model_spec.decoder, sha256=model_spec.sha256)
    with pytest.raises(ClickmaskError, match="trained for model"):
        load_checkpoint(path, other)
    changed = ModelSpec(id=model_spec.id, encoder=model_spec.encoder, decoder=model_spec.decoder,
                        sha256={**model_spec.sha256, "decoder": "0" * 64})
    with pytest.raises(ClickmaskError, match="decoder file differs"):
        load_checkpoint(path, changed)
    (tmp_path / "bad.npz").write_bytes(b"nope")
    with pytest.raises(ClickmaskError, match="bad.npz"):
        load_checkpoint(tmp_path / "bad.npz")


def test_adapted_predictor_uses_the_adapter(model_spec, sam_predictor):
    sample = load_samples(["coffee"])[0]
    clicks = [Click(300, 200, True)]
    sam_predictor.set_image(sample.image)
    plain = sam_predictor.predict(clicks)
    adapted = AdaptedPredictor.sharing(sam_predictor, "adapter")
    adapted.set_adapter(EmbeddingAdapter().affine())
    same = adapted.predict(clicks)  # the view shares the current image
    assert np.allclose(same.logits, plain.logits, atol=1e-4)  # identity adapter = plain model
    assert adapted.model_id == f"{model_spec.id}+adapter" and sam_predictor.model_id == model_spec.id
    shifted = EmbeddingAdapter()
    with torch.no_grad():
        shifted.weight.copy_(-0.5 * torch.eye(256))  # halves the embedding
    adapted.set_adapter(shifted.affine())  # applies at once, to the current image too
    assert np.allclose(adapted.embedding, 0.5 * sam_predictor.embedding, atol=1e-5)
    assert adapted.raw_embedding is sam_predictor.embedding
    assert not np.allclose(adapted.predict(clicks).logits, plain.logits, atol=1e-2)
    # zoom-in crops are adapted too; the shared cache keeps raw embeddings
    crop = np.ascontiguousarray(sample.image[50:250, 100:400])
    crop_raw, _ = sam_predictor.image_embedding(crop)
    crop_adapted, cached = adapted.image_embedding(crop)
    assert cached and np.allclose(crop_adapted, 0.5 * crop_raw, atol=1e-5) and np.abs(crop_raw).max() > 0.1
    adapted.set_adapter(None)
    assert adapted.embedding is sam_predictor.embedding


def _tiny_dataset(root):
    for sub in ("images", "masks"):
        (root / "Tiny" / sub).mkdir(parents=True)
    for i in range(3):
        rng = np.random.default_rng(i)
        yy, xx = np.mgrid[:120, :160]
        gt = (yy - 60) ** 2 + (xx - 70 - 8 * i) ** 2 < 35**2
        img = rng.integers(0, 50, size=(120, 160, 3)).astype(np.uint8)
        img[gt] += np.array([190, 140 - 40 * i, 30 + 50 * i], np.uint8)
        Image.fromarray(img).save(root / "Tiny" / "images" / f"s{i}.png")
        Image.fromarray((gt * 255).astype(np.uint8)).save(root / "Tiny" / "masks" / f"s{i}.png")


def test_train_command_writes_outputs(tmp_path, capsys):
    _tiny_dataset(tmp_path)
    out = tmp_path / "run"
    code = main(["train", "--data-root", str(tmp_path), "--dataset", "Tiny", "--out", str(out), "--steps", "2",
                 "--batch", "1", "--suem", "2", "--iterative-clicks", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert {"adapter.npz", "loss.png", "train.log", "summary.json"} <= {p.name for p in out.iterdir()}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_train"] == 3 and summary["n_suem"] == 2 and len(summary["losses"]) == 2
    assert Image.open(out / "loss.png").format == "PNG"
    assert "step 2/2" in (out / "train.log").read_text()
    adapter, meta = load_checkpoint(out / "adapter.npz")
    assert meta["training"]["steps"] == 2 and adapter.rank is None
    assert main(["train", "--data-root", str(tmp_path), "--dataset", "Tiny", "--out", str(out), "--steps", "0"]) == 2
    assert "--steps" in capsys.readouterr().err


@pytest.mark.data
def test_eval_with_identity_adapter_equals_plain_model(model_spec, data_root, tmp_path, capsys):
    from clickmask.cli import main as cli_main

    def eval_main(argv: list[str]) -> int:
        return cli_main(["eval", "--infer", "raw", *argv])

    save_checkpoint(tmp_path / "id.npz", EmbeddingAdapter(), model_spec)
    common = ["--dataset", "GrabCut", "--data-root", str(data_root), "--limit", "1", "--max-clicks", "3"]
    assert eval_main(common + ["--json", str(tmp_path / "plain.json")]) == 0
    assert eval_main(common + ["--adapter", str(tmp_path / "id.npz"), "--json", str(tmp_path / "ad.json")]) == 0
    plain = json.loads((tmp_path / "plain.json").read_text())
    adapted = json.loads((tmp_path / "ad.json").read_text())
    assert adapted["model"] == f"{model_spec.id}+id" and adapted["options"]["adapter"].endswith("id.npz")
    assert np.allclose(adapted["miou"], plain["miou"], atol=1e-4)
    assert eval_main(common + ["--adapter", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
