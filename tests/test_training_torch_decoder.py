"""The PyTorch decoder against the ONNX decoder it loads its weights from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clickmask.engine.preprocess import map_coords
from clickmask.training.torch_decoder import (
    LayerNorm2d,
    TorchSamDecoder,
    decode,
    fourier_features,
    onnx_state_dict,
)


def test_shapes_without_model():
    torch.manual_seed(0)
    dec = TorchSamDecoder()
    for p in dec.parameters():
        torch.nn.init.normal_(p, std=0.02)
    emb = torch.randn(1, 256, 64, 64)
    coords = torch.tensor([[[100.0, 200.0], [0.0, 0.0]], [[5.0, 6.0], [0.0, 0.0]]])
    labels = torch.tensor([[1.0, -1.0], [0.0, -1.0]])
    masks, ious = dec(emb, coords, labels, torch.zeros(2, 1, 256, 256), torch.zeros(2))
    assert masks.shape == (2, 4, 256, 256) and ious.shape == (2, 4)
    m, s = decode(dec, emb, coords[0, :1], labels[0, :1])
    assert m.shape == (4, 256, 256) and s.shape == (4,)
    # decode appends the padding point itself: same result as the explicit batch row
    assert torch.allclose(m, masks[0], atol=1e-5)


def test_padding_point_has_no_positional_encoding():
    torch.manual_seed(0)
    dec = TorchSamDecoder()
    torch.nn.init.normal_(dec.prompt_encoder.gaussian)
    torch.nn.init.normal_(dec.prompt_encoder.not_a_point_embed)
    pe = dec.prompt_encoder
    a = pe.embed_points(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[-1.0]]))
    b = pe.embed_points(torch.tensor([[[900.0, 10.0]]]), torch.tensor([[-1.0]]))
    assert torch.equal(a, b)
    assert torch.allclose(a[0, 0], pe.not_a_point_embed)
    c = pe.embed_points(torch.tensor([[[3.0, 4.0]]]), torch.tensor([[1.0]]))
    assert not torch.allclose(a, c)


def test_fourier_features_and_layernorm2d():
    gauss = torch.randn(2, 8)
    f = fourier_features(torch.rand(5, 2), gauss)
    assert f.shape == (5, 16)
    assert torch.allclose(f[:, :8] ** 2 + f[:, 8:] ** 2, torch.ones(5, 8), atol=1e-5)
    ln = LayerNorm2d(3)
    y = ln(torch.randn(2, 3, 4, 4) * 5 + 2)
    assert torch.allclose(y.mean(1), torch.zeros(2, 4, 4), atol=1e-5)


# -- against the real ONNX decoder ---------------------------------------------------

@pytest.fixture(scope="module")
def torch_decoder(model_spec):
    torch.set_num_threads(1)
    return TorchSamDecoder.from_onnx(model_spec.decoder)


def _embeddings(sam_predictor):
    from clickmask.samples import load_samples

    out = []
    for sample in load_samples(["coffee", "astronaut", "rocket"]):
        sam_predictor.set_image(sample.image)
        out.append((sample, sam_predictor.embedding.copy(), sam_predictor.image_size))
    return out


@pytest.mark.model
def test_every_weight_is_mapped(model_spec):
    import onnx

    state = onnx_state_dict(model_spec.decoder)
    dec = TorchSamDecoder()
    assert set(state) >= set(dec.state_dict())
    graph = onnx.load(str(model_spec.decoder)).graph
    # the MatMul weights are stored transposed: q_proj of layer 0 is 256 -> 256, token-to-image q 256 -> 128
    assert state["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape == (128, 256)
    n_inits = sum(int(np.prod(t.dims)) for t in graph.initializer)
    n_params = sum(p.numel() for p in dec.parameters())
    # only the dense positional grid is a Constant node instead of an initializer
    assert n_params == n_inits


@pytest.mark.model
def test_matches_onnx_decoder(sam_predictor, torch_decoder):
    """Max abs low-res logit difference <= 1e-3 for all 4 tokens, with and without mask input."""
    rng = np.random.default_rng(0)
    worst = 0.0
    for sample, emb, (h, w) in _embeddings(sam_predictor):
        sam_predictor.set_image(sample.image)
        ys, xs = np.nonzero(sample.mask)
        bys, bxs = np.nonzero(~sample.mask)
        for n_pos, n_neg in [(1, 0), (2, 1), (3, 3)]:
            ip, ineg = rng.integers(len(xs), size=n_pos), rng.integers(len(bxs), size=n_neg)
            xy = np.concatenate([np.stack([xs[ip], ys[ip]], 1), np.stack([bxs[ineg], bys[ineg]], 1)]).astype(np.float32)
            labels = np.array([1.0] * n_pos + [0.0] * n_neg, np.float32)
            coords = map_coords(xy, h, w, 1024)
            prev = None
            for _ in range(2):  # without, then with the previous best mask fed back
                ref_m, ref_s = sam_predictor.decode_candidates(coords, labels, prev)
                with torch.no_grad():
                    m, s = decode(
                        torch_decoder, torch.from_numpy(emb), torch.from_numpy(coords), torch.from_numpy(labels),
                        None if prev is None else torch.from_numpy(prev),
                    )
                assert m.shape == ref_m.shape == (4, 256, 256)
                diff = float(np.abs(m.numpy() - ref_m).max())
                worst = max(worst, diff)
                assert diff <= 1e-3, (sample.name, n_pos, n_neg, prev is not None, diff)
                assert np.abs(s.numpy() - ref_s).max() <= 1e-4
                prev = ref_m[int(np.argmax(ref_s))]
    assert worst > 0.0  # two different implementations: exact equality would mean a shortcut


@pytest.mark.model
def test_gradients_flow(sam_predictor, torch_decoder):
    from clickmask.samples import load_samples

    sample = load_samples(["coffee"])[0]
    sam_predictor.set_image(sample.image)
    emb = torch.from_numpy(sam_predictor.embedding.copy()).requires_grad_(True)
    torch_decoder.zero_grad()
    masks, ious = decode(torch_decoder, emb, torch.tensor([[500.0, 300.0]]), torch.tensor([1.0]))
    (masks[0].sigmoid().mean() + ious.sum()).backward()
    assert emb.grad is not None and float(emb.grad.abs().sum()) > 0
    for name in ["mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
                 "mask_decoder.output_hypernetworks_mlps.0.layers.2.weight",
                 "mask_decoder.iou_prediction_head.layers.0.weight",
                 "prompt_encoder.point_embeddings"]:
        grad = dict(torch_decoder.named_parameters())[name].grad
        assert grad is not None and float(grad.abs().sum()) > 0, name
    torch_decoder.zero_grad()


def test_bad_onnx_file_is_one_line_error(tmp_path):
    from clickmask.errors import ModelError

    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="broken.onnx") as info:
        TorchSamDecoder.from_onnx(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ModelError, match="missing.onnx"):
        TorchSamDecoder.from_onnx(tmp_path / "missing.onnx")
