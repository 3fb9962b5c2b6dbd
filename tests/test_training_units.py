"""Training building blocks that need no model: ICL weights, losses, SUEM, click simulation, adapter."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clickmask.engine.clicks import Click
from clickmask.engine.embedding_affine import apply_affine
from clickmask.errors import ClickmaskError
from clickmask.learning.adapter import (
    EmbeddingAdapter,
    adapter_from_bytes,
    adapter_to_bytes,
)
from clickmask.training.losses import (
    bce_loss,
    icl_weights,
    iterative_click_loss,
    normalized_focal_loss,
)
from clickmask.training.simulate import (
    initial_clicks,
    low_res_target,
    next_click,
    prompts,
    random_click_counts,
    upsample_logits,
)
from clickmask.training.suem import (
    MODES,
    exclusion_paste,
    image_mixing,
    paste,
    simple_paste,
    suem_augment,
    union_paste,
)

# -- ICL ---------------------------------------------------------------------------


def test_icl_weights_grow_with_clicks_and_sum_to_one():
    w = icl_weights(4)
    assert w == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert all(a < b for a, b in zip(w, w[1:]))
    assert icl_weights(3, "uniform") == pytest.approx([1 / 3] * 3)
    assert icl_weights(3, "last") == [0.0, 0.0, 1.0]
    assert icl_weights(3, "linear", normalize=False) == [1.0, 2.0, 3.0]
    with pytest.raises(ClickmaskError):
        icl_weights(0)
    with pytest.raises(ClickmaskError, match="scheme"):
        icl_weights(2, "quadratic")


def test_iterative_click_loss_weights_later_steps_more():
    losses = [torch.tensor(1.0), torch.tensor(2.0), torch.tensor(3.0)]
    w = icl_weights(3)
    assert float(iterative_click_loss(losses, w)) == pytest.approx((1 * 1 + 2 * 2 + 3 * 3) / 6)
    # a lower loss late in the sequence counts more than the same gain early on
    early = iterative_click_loss([torch.tensor(0.5), torch.tensor(2.0), torch.tensor(3.0)], w)
    late = iterative_click_loss([torch.tensor(1.0), torch.tensor(2.0), torch.tensor(2.5)], w)
    assert float(late) < float(early)
    # a sequence that stopped early is rescaled to the same total weight
    assert float(iterative_click_loss(losses[:2], w)) == pytest.approx((1 * 1 + 2 * 2) / 3)
    assert float(iterative_click_loss(losses[:2], icl_weights(3, "last"))) == pytest.approx(2.0)


# -- losses -----------------------------------------------------------------------


def test_losses_prefer_the_right_answer_and_respect_valid():
    target = torch.zeros(8, 8)
    target[2:6, 2:6] = 1
    good = (target * 2 - 1) * 5
    bad = -good
    for fn in (bce_loss, normalized_focal_loss):
        assert float(fn(good, target)) < float(fn(bad, target))
        assert float(fn(good, target)) >= 0
    valid = torch.zeros(8, 8)
    valid[:4] = 1
    mixed = good.clone()
    mixed[4:] = bad[4:]  # wrong only where not valid
    assert float(bce_loss(mixed, target, valid)) == pytest.approx(float(bce_loss(good, target, valid)))


def test_normalized_focal_loss_focuses_on_hard_pixels():
    target = torch.ones(100)
    logits = torch.full((100,), 4.0)
    logits[0] = -2.0  # one hard pixel
    logits.requires_grad_(True)
    normalized_focal_loss(logits, target).backward()
    g = logits.grad.abs()
    # the hard pixel gets far more gradient than an easy one; BCE's ratio is much smaller
    logits2 = logits.detach().clone().requires_grad_(True)
    bce_loss(logits2, target).backward()
    g2 = logits2.grad.abs()
    assert g[0] / g[1] > 10 * (g2[0] / g2[1])


# -- SUEM ------------------------------------------------------------------------------


def _scene(h, w, box, colour, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 60, size=(h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), bool)
    r0, r1, c0, c1 = box
    mask[r0:r1, c0:c1] = True
    image[mask] = colour
    return image, mask


@pytest.fixture
def pair():
    src = _scene(80, 100, (20, 60, 30, 70), (250, 0, 0), 1)
    extra = _scene(90, 70, (10, 50, 10, 40), (0, 0, 250), 2)
    return src, extra


def test_paste_puts_pixels_and_reports_mask():
    bg = np.zeros((10, 10, 3), np.uint8)
    patch = np.full((3, 4, 3), 200, np.uint8)
    pmask = np.ones((3, 4), bool)
    pmask[0, 0] = False
    out, pasted = paste(bg, patch, pmask, 2, 5)
    assert pasted.sum() == 11 and pasted[2, 6] and not pasted[2, 5]
    assert (out[pasted] == 200).all() and (out[~pasted] == 0).all()
    assert (bg == 0).all()  # the input is not modified
    with pytest.raises(ClickmaskError, match="does not fit"):
        paste(bg, patch, pmask, 8, 0)


def test_simple_paste_gt_is_the_pasted_source(pair):
    (si, sm), (ei, em) = pair
    aug = simple_paste(si, sm, ei, np.random.default_rng(0))
    assert aug.image.shape == ei.shape and aug.gt.shape == em.shape and aug.mode == "simple"
    assert aug.gt.any()
    assert (aug.image[aug.gt] == (250, 0, 0)).all()  # the source object's colour, in the extra image
    assert (aug.image[~aug.gt] == ei[~aug.gt]).all()


def test_union_paste_gt_is_the_union(pair):
    (si, sm), (ei, em) = pair
    aug = union_paste(si, sm, ei, em, np.random.default_rng(0))
    pasted = (aug.image == (0, 0, 250)).all(-1)
    assert pasted.any()
    assert np.array_equal(aug.gt, sm | pasted)
    assert aug.gt.sum() > sm.sum()


def test_exclusion_paste_gt_removes_the_occluder(pair):
    (si, sm), (ei, em) = pair
    for seed in range(5):
        aug = exclusion_paste(si, sm, ei, em, np.random.default_rng(seed))
        occluder = (aug.image == (0, 0, 250)).all(-1)
        assert (occluder & sm).any()  # it really covers part of the source object
        assert np.array_equal(aug.gt, sm & ~occluder)
        assert aug.gt.sum() >= 0.4 * sm.sum()


def test_image_mixing_keeps_gt_and_blends(pair):
    (si, sm), (ei, em) = pair
    aug = image_mixing(si, sm, ei, np.random.default_rng(0))
    assert np.array_equal(aug.gt, sm) and aug.image.shape == si.shape
    red = aug.image[sm][:, 0].astype(int)
    assert (red < 250).all() and (red > 100).all()  # blended, not replaced


def test_suem_modes_and_errors(pair):
    (si, sm), (ei, em) = pair
    assert MODES == ("simple", "union", "exclusion", "mixing")
    rng = np.random.default_rng(3)
    assert [suem_augment(m, si, sm, ei, em, rng).mode for m in MODES] == list(MODES)
    a = suem_augment("union", si, sm, ei, em, np.random.default_rng(7))
    b = suem_augment("union", si, sm, ei, em, np.random.default_rng(7))
    assert np.array_equal(a.image, b.image)  # deterministic given the generator
    with pytest.raises(ClickmaskError, match="unknown SUEM mode"):
        suem_augment("cutmix", si, sm, ei, em, rng)
    with pytest.raises(ClickmaskError, match="empty"):
        simple_paste(si, np.zeros_like(sm), ei, rng)


# -- click simulation ------------------------------------------------------------------------


def test_initial_clicks_inside_and_outside():
    gt = np.zeros((120, 160), bool)
    gt[30:90, 40:120] = True
    for seed in range(10):
        rng = np.random.default_rng(seed)
        n_pos, n_neg = random_click_counts(rng, 5, 5)
        assert 1 <= n_pos <= 5 and 0 <= n_neg <= 5
        clicks = initial_clicks(gt, rng, n_pos, n_neg)
        pos = [c for c in clicks if c.positive]
        neg = [c for c in clicks if not c.positive]
        assert len(pos) == n_pos and len(neg) == n_neg
        assert all(gt[int(c.y), int(c.x)] for c in pos)
        # positives keep away from the border: at least 1/4 of the max inner distance (30 px)
        assert all(min(c.y - 30, 89 - c.y, c.x - 40, 119 - c.x) >= 6 for c in pos)
        assert not any(gt[int(c.y), int(c.x)] for c in neg)
        assert len({(c.x, c.y) for c in clicks}) == len(clicks)
    with pytest.raises(ClickmaskError):
        initial_clicks(np.zeros((5, 5), bool), np.random.default_rng(0), 1, 0)


def test_precomputed_click_regions_give_the_same_clicks():
    """A training sample computes the click regions once; the clicks drawn are the same as without them."""
    from clickmask.training.loop import TrainSample
    from clickmask.training.simulate import click_regions

    gt = np.zeros((120, 160), bool)
    gt[30:90, 40:120] = True
    gt[50:60, 120:150] = True
    sample = TrainSample(np.zeros((1, 256, 64, 64), np.float32), gt, gt.shape)
    inner, band = sample.regions()
    assert sample.regions()[0] is inner  # cached
    assert inner.dtype == bool and band.dtype == bool and not (band & gt).any() and (inner <= gt).all()
    assert band[28, 60] and not band[0, 0]  # the band hugs the object
    for seed in range(5):
        a = initial_clicks(gt, np.random.default_rng(seed), 4, 5)
        b = initial_clicks(gt, np.random.default_rng(seed), 4, 5, regions=click_regions(gt))
        assert a == b


def test_iterative_click_is_the_robot_users():
    gt = np.zeros((50, 50), bool)
    gt[10:40, 10:40] = True
    pred = np.zeros_like(gt)
    pred[10:40, 10:25] = True  # the right half is missed: positive click deep inside it
    click = next_click(gt, pred, None, [])
    assert click.positive and 31 <= click.x <= 33 and 17 <= click.y <= 32  # on the central line of the miss


def test_prompts_and_low_res_frames():
    coords, labels = prompts([Click(100, 50, True), Click(0, 0, False)], (200, 400))
    assert coords.tolist() == [[256.0, 128.0], [0.0, 0.0]] and labels.tolist() == [1.0, 0.0]
    gt = np.zeros((200, 400), bool)
    gt[:100, :200] = True
    target, valid = low_res_target(gt)
    assert target.shape == valid.shape == (256, 256)
    assert valid[:128].all() and not valid[128:].any()  # 200x400 -> 512x1024 -> 128x256
    assert target[:64, :128].all() and target.sum() == 64 * 128
    logits = np.where(target > 0, 5.0, -5.0).astype(np.float32)
    assert np.array_equal(upsample_logits(logits, (200, 400)) > 0, gt)


# -- adapter ---------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [None, 8])
def test_adapter_starts_as_identity_and_numpy_matches(rank):
    adapter = EmbeddingAdapter(rank=rank)
    x = torch.randn(1, 256, 8, 8)
    assert torch.equal(adapter(x), x)
    with torch.no_grad():
        for p in adapter.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    y = adapter(x).detach().numpy()
    assert not np.allclose(y, x.numpy())
    assert np.allclose(apply_affine(x.numpy(), adapter.affine()), y, atol=1e-4)
    n = sum(p.numel() for p in adapter.parameters())
    assert n == (256 * 256 + 256 if rank is None else 2 * 256 * rank + 256)


def test_adapter_bytes_round_trip_and_errors():
    adapter = EmbeddingAdapter(rank=4, seed=3)
    with torch.no_grad():
        adapter.up.add_(0.1)
    back, meta = adapter_from_bytes(adapter_to_bytes(adapter, {"category": "cat", "version": 2}))
    assert meta == {"category": "cat", "version": 2} and back.rank == 4
    x = torch.randn(1, 256, 4, 4)
    assert torch.allclose(back(x), adapter(x))
    with pytest.raises(ClickmaskError, match="not a valid adapter"):
        adapter_from_bytes(b"garbage", "x.npz")
    with pytest.raises(ClickmaskError, match="rank"):
        EmbeddingAdapter(rank=0)
    with pytest.raises(ClickmaskError, match="embedding must be"):
        apply_affine(np.zeros((256, 64, 64), np.float32), adapter.affine())
