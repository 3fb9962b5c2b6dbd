"""The per-category object map (linear discriminant on the embedding grid) and its proposals."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.engine.clicks import Click
from clickmask.errors import ClickmaskError
from clickmask.learning.object_map import ObjectMap, map_proposal, prior_logits


def _embedding(object_cells: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1x8x16x16: object cells lean on channel 0, the rest on channel 1, plus noise."""
    emb = rng.normal(0, 0.3, size=(8, 16, 16)).astype(np.float32)
    emb[0][object_cells] += 2.0
    emb[1][~object_cells] += 2.0
    return emb[None]


def _square(g: int, r0: int, c0: int, size: int) -> np.ndarray:
    cells = np.zeros((g, g), bool)
    cells[r0:r0 + size, c0:c0 + size] = True
    return cells


def test_map_learns_the_object_look_and_proposes_inside_the_new_object():
    rng = np.random.default_rng(0)
    side, hw = 256, (256, 256)  # one grid cell = 16 px
    omap = ObjectMap()
    assert not omap.ready and omap.scores(_embedding(_square(16, 2, 2, 4), rng)) is None
    seen = _square(16, 2, 2, 4)
    assert omap.add(_embedding(seen, rng), np.kron(seen, np.ones((16, 16), bool)), hw, side=side)
    assert omap.ready and omap.objects == 1
    target = _square(16, 9, 8, 5)
    emb = _embedding(target, rng)
    scores = omap.scores(emb)
    assert scores.shape == (16, 16)
    assert (scores[target] > 0).mean() > 0.9 and (scores[~target] < 0).mean() > 0.9
    click = map_proposal(scores, hw, side=side)
    assert target[int(click.y) // 16, int(click.x) // 16]
    # the proposal walks off annotated objects
    ignore = np.kron(target, np.ones((16, 16), bool))
    elsewhere = map_proposal(scores, hw, ignore, side=side)
    assert not ignore[int(elsewhere.y), int(elsewhere.x)]
    assert map_proposal(scores, hw, np.ones(hw, bool), side=side) is None


def test_prior_keeps_only_the_region_connected_to_the_click():
    rng = np.random.default_rng(1)
    side, hw = 256, (256, 256)
    omap = ObjectMap()
    seen = _square(16, 2, 2, 4)
    omap.add(_embedding(seen, rng), np.kron(seen, np.ones((16, 16), bool)), hw, side=side)
    two = _square(16, 1, 1, 4) | _square(16, 10, 10, 4)  # two instances
    scores = omap.scores(_embedding(two, rng))
    prior = prior_logits(scores, Click(40.0, 40.0, True), hw, side=side)
    assert prior.shape == (256, 256) and prior.dtype == np.float32
    assert prior[40, 40] > 0  # 256 low-res = the 256 px encoder frame here
    assert prior[190, 190] < 0  # the other instance is not part of this object's prior


def test_map_rejects_mismatched_shapes():
    rng = np.random.default_rng(2)
    omap = ObjectMap()
    seen = _square(16, 2, 2, 4)
    with pytest.raises(ClickmaskError, match="mask is 10x10 but the image is 256x256"):
        omap.add(_embedding(seen, rng), np.zeros((10, 10), bool), (256, 256), side=256)
    assert not omap.add(_embedding(seen, rng), np.zeros((256, 256), bool), (256, 256), side=256)
    omap.add(_embedding(seen, rng), np.kron(seen, np.ones((16, 16), bool)), (256, 256), side=256)
    with pytest.raises(ClickmaskError, match="8-d features"):
        omap.add(np.ones((1, 4, 16, 16), np.float32), np.kron(seen, np.ones((16, 16), bool)), (256, 256), side=256)


def test_map_round_trips_through_bytes_and_rejects_garbage():
    rng = np.random.default_rng(3)
    omap = ObjectMap(shrink=0.2)
    seen = _square(16, 2, 2, 4)
    omap.add(_embedding(seen, rng), np.kron(seen, np.ones((16, 16), bool)), (256, 256), side=256)
    back = ObjectMap.from_bytes(omap.to_bytes())
    emb = _embedding(_square(16, 8, 8, 4), rng)
    assert back.objects == 1 and back.shrink == 0.2
    np.testing.assert_array_equal(back.scores(emb), omap.scores(emb))
    # learning goes on from the stored sums exactly as from the original
    omap.add(emb, np.kron(_square(16, 8, 8, 4), np.ones((16, 16), bool)), (256, 256), side=256)
    back.add(emb, np.kron(_square(16, 8, 8, 4), np.ones((16, 16), bool)), (256, 256), side=256)
    np.testing.assert_allclose(back.scores(emb), omap.scores(emb), rtol=1e-6)
    empty = ObjectMap.from_bytes(ObjectMap().to_bytes())
    assert empty.objects == 0 and not empty.ready
    # a snapshot does not follow later learning
    snap = omap.snapshot()
    omap.add(emb, np.kron(_square(16, 1, 9, 3), np.ones((16, 16), bool)), (256, 256), side=256)
    assert snap.objects == 2 and omap.objects == 3
    with pytest.raises(ClickmaskError, match="^category 7: not a valid object map"):
        ObjectMap.from_bytes(b"not an npz", source="category 7")
