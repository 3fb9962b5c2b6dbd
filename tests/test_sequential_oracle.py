"""The oracle adapter: a per-category adapter fitted beforehand to the sequence's own ground truths."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.sequential.opo import OPOConfig
from synthetic import embedding_and_mask


def test_fitting_lowers_the_loss_on_the_samples_it_was_fitted_to(frozen_decoder):
    """The oracle's adapter is fitted to the answers: on those samples it beats the plain decoder."""
    from clickmask.sequential.oracle import fit_oracle_affine
    from clickmask.training.adapter import EmbeddingAdapter
    from clickmask.training.loop import TrainSample, evaluate_loss
    from clickmask.sequential.opo import opo_click_config

    import torch

    samples = []
    for seed in (0, 1):
        emb, mask = embedding_and_mask(seed)
        samples.append(TrainSample(emb, mask, mask.shape))
    config = OPOConfig(batch_size=2, lr=1e-3)
    (a, b), losses = fit_oracle_affine(frozen_decoder, samples, 12, config, "disk")
    assert len(losses) == 12 and a.shape == (256, 256) and b.shape == (256,)
    fitted = EmbeddingAdapter()
    with torch.no_grad():
        fitted.weight.copy_(torch.from_numpy(a - np.eye(256, dtype=np.float32)))
        fitted.bias.copy_(torch.from_numpy(b))
    clicks = opo_click_config(config)
    plain = evaluate_loss(frozen_decoder, None, samples, clicks, seed=3)["loss"]
    after = evaluate_loss(frozen_decoder, fitted, samples, clicks, seed=3)["loss"]
    assert after < plain
    with pytest.raises(ClickmaskError, match="at least 1 step"):
        fit_oracle_affine(frozen_decoder, samples, 0, config, "disk")


def test_oracle_adapter_trains_once_per_category_and_never_learns_during_the_run(sam_predictor, data_root):
    """Real model, DAVIS blackswan: fitted on the sequence's ground truths when its first object is asked for."""
    from clickmask.engine.clicks import Click
    from clickmask.evaluation.runner import load_sample
    from clickmask.sequential.oracle import OracleAdapter
    from clickmask.sequential.sequences import ObjectSequence, SequenceOptions, build_sequences

    seqs = build_sequences(data_root, "DAVIS2016_dev", SequenceOptions(frame_step=20, min_instances=2))
    swan = next(s for s in seqs if s.category == "blackswan")
    seq = ObjectSequence("blackswan", swan.samples[:2])
    oracle = OracleAdapter(sam_predictor, [seq], steps=2, config=OPOConfig(batch_size=2))
    with pytest.raises(ClickmaskError, match="no sequence 'cows'"):
        oracle.predictor_for("cows", 0)
    active = oracle.predictor_for("blackswan", 0)
    fitted = oracle.affines["blackswan"]
    assert oracle.predictor_for("blackswan", 1) is active and oracle.affines["blackswan"] is fitted
    assert len(oracle.losses["blackswan"]) == 2 and not np.allclose(fitted[0], np.eye(256))
    image, gt, _ = load_sample(seq.samples[1])
    active.set_image(image)
    sam_predictor.set_image(image)
    rows, cols = np.nonzero(gt)
    click = [Click(float(cols[len(cols) // 2]), float(rows[len(rows) // 2]), True)]
    assert not np.array_equal(active.predict(click).logits, sam_predictor.predict(click).logits)
    oracle.finished("blackswan", 1, image, sam_predictor.embedding, gt)
    assert oracle.affines["blackswan"] is fitted and oracle.describe()["oracle_steps"] == 2
