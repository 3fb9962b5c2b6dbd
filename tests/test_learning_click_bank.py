"""ICP click bank: grid mapping, bilinear sampling, proposals, ignore mask, JSON round trip."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.engine.clicks import Click
from clickmask.errors import ClickmaskError
from clickmask.learning.click_bank import (
    CategoryClickBanks,
    ClickBank,
    feature_at,
    mask_feature,
    pixel_to_grid,
)

G = 64


def _embedding(blobs: dict[tuple[int, int, int, int], np.ndarray], seed: int = 0) -> np.ndarray:
    """1x8xGxG embedding: weak random background, ``blobs`` = {(r0, r1, c0, c1) in cells: 8-d feature}."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(0, 0.05, size=(8, G, G)).astype(np.float32)
    emb[0] += 1.0  # background direction
    for (r0, r1, c0, c1), feat in blobs.items():
        emb[:, r0:r1, c0:c1] = feat[:, None, None]
    return emb[None]


A = np.array([0, 1, 0, 0, 0, 0, 0, 0], np.float32)  # "object" feature
B = np.array([0, 0, 0, 1, 0, 0, 0, 0], np.float32)  # another category


def _cell_to_pixel(cell: float, long_side: int) -> float:
    """Pixel coordinate whose grid coordinate is ``cell`` (inverse of pixel_to_grid)."""
    return (cell + 0.5) * 16 * long_side / 1024 - 0.5


def test_pixel_to_grid_maps_cell_centres():
    # 1024x1024 image: pixel 7.5 is the centre of cell 0; 1016 - 0.5 of cell 63
    assert pixel_to_grid(7.5, 7.5, (1024, 1024), G) == pytest.approx((0.0, 0.0))
    assert pixel_to_grid(1015.5, 7.5, (1024, 1024), G) == pytest.approx((63.0, 0.0))
    # 512 wide, 256 high: scale 2, pixel x=3.5 -> encoder 8 -> cell centre 0 (x+0.5)*2/16-0.5
    gx, gy = pixel_to_grid(3.5, 3.5, (256, 512), G)
    assert gx == pytest.approx(0.0) and gy == pytest.approx(0.0)


def test_feature_at_is_bilinear_between_cells():
    emb = np.zeros((1, 2, G, G), np.float32)
    emb[0, 0] = np.arange(G, dtype=np.float32)[None, :]  # channel 0 = column index
    emb[0, 1] = np.arange(G, dtype=np.float32)[:, None]  # channel 1 = row index
    h = w = 1024
    f = feature_at(emb, x=_cell_to_pixel(10.25, w), y=_cell_to_pixel(20.5, h), image_hw=(h, w))
    assert f == pytest.approx([10.25, 20.5], abs=1e-4)
    # clamped at the border
    f = feature_at(emb, x=0, y=0, image_hw=(h, w))
    assert f == pytest.approx([0.0, 0.0])
    with pytest.raises(ClickmaskError, match="outside the 1024x1024 image"):
        feature_at(emb, x=1024, y=3, image_hw=(h, w))


def test_empty_bank_proposes_nothing():
    emb = _embedding({})
    assert ClickBank().propose(emb, (480, 640)) is None


def test_proposal_lands_on_the_most_similar_object():
    h, w = 512, 1024  # long side 1024 -> one cell = 16 px, rows 0..31 valid
    emb_first = _embedding({(4, 10, 4, 10): A, (20, 26, 40, 48): B})
    bank = ClickBank()
    bank.add_click(emb_first, Click(x=_cell_to_pixel(6, w), y=_cell_to_pixel(6, w), positive=True), (h, w))
    # new image: the A-like object is elsewhere
    emb_new = _embedding({(18, 28, 30, 40): A * 0.9 + B * 0.1, (2, 8, 50, 60): B}, seed=1)
    click = bank.propose(emb_new, (h, w))
    assert click is not None and click.positive
    col, row = click.as_int()
    assert 18 * 16 <= row < 28 * 16 and 30 * 16 <= col < 40 * 16


def test_ignore_mask_moves_the_proposal_to_the_next_instance():
    h, w = 512, 1024
    emb = _embedding({(4, 10, 4, 10): A, (20, 28, 40, 50): A * 0.95 + B * 0.05})
    bank = ClickBank()
    bank.add_feature(A)
    first = bank.propose(emb, (h, w))
    col, row = first.as_int()
    assert 4 * 16 <= row < 10 * 16 and 4 * 16 <= col < 10 * 16
    ignore = np.zeros((h, w), bool)
    ignore[4 * 16 : 10 * 16, 4 * 16 : 10 * 16] = True
    second = bank.propose(emb, (h, w), ignore)
    col, row = second.as_int()
    assert 20 * 16 <= row < 28 * 16 and 40 * 16 <= col < 50 * 16
    assert bank.propose(emb, (h, w), np.ones((h, w), bool)) is None


def test_padding_is_never_proposed():
    h, w = 256, 1024  # rows 16..63 of the grid are padding
    emb = _embedding({(30, 40, 10, 20): A, (2, 6, 50, 56): A * 0.6 + B * 0.4})
    bank = ClickBank()
    bank.add_feature(A)
    col, row = bank.propose(emb, (h, w)).as_int()
    assert 0 <= row < h and 50 * 16 <= col < 56 * 16


def test_mean_over_the_bank_and_smoothing_beat_a_single_outlier_cell():
    h = w = 1024
    # a single-cell spike exactly like the bank vs a broad region slightly less similar
    emb = _embedding({(10, 11, 10, 11): A, (40, 50, 40, 50): A * 0.6 + B * 0.4})
    smoothed = ClickBank(smooth=3)
    smoothed.add_feature(A)
    col, row = smoothed.propose(emb, (h, w)).as_int()
    assert 40 * 16 <= row < 50 * 16 and 40 * 16 <= col < 50 * 16
    raw = ClickBank(smooth=1)
    raw.add_feature(A)
    col, row = raw.propose(emb, (h, w)).as_int()
    assert 10 * 16 <= row < 11 * 16 and 10 * 16 <= col < 11 * 16


def test_bank_checks_dimensions_and_shapes():
    bank = ClickBank()
    bank.add_feature(A)
    with pytest.raises(ClickmaskError, match="8-d features, got a 3-d"):
        bank.add_feature(np.ones(3))
    with pytest.raises(ClickmaskError, match="not all zero"):
        bank.add_feature(np.zeros(8))
    with pytest.raises(ClickmaskError, match="embedding has 4 channels"):
        bank.propose(np.ones((1, 4, G, G), np.float32), (100, 100))
    with pytest.raises(ClickmaskError, match="square grid"):
        bank.propose(np.ones((1, 8, 32, 64), np.float32), (100, 100))
    with pytest.raises(ClickmaskError, match="ignore mask is 5x5 but the image is 100x100"):
        bank.propose(_embedding({}), (100, 100), np.zeros((5, 5), bool))


def test_max_items_keeps_the_most_recent():
    bank = ClickBank(max_items=2)
    for k in range(1, 4):
        bank.add_feature(np.full(8, float(k)))
    assert len(bank) == 2 and bank.features[0][0] == 2.0 and bank.features[1][0] == 3.0


def test_json_round_trip_gives_the_same_proposal(tmp_path):
    banks = CategoryClickBanks(smooth=5)
    banks.bank("cat").add_feature(A + 0.01)
    banks.bank("dog").add_feature(B)
    path = tmp_path / "banks.json"
    path.write_text(banks.to_json())
    loaded = CategoryClickBanks.from_json(path.read_text(), source=str(path))
    assert set(loaded.banks) == {"cat", "dog"} and loaded.bank("cat").smooth == 5
    emb = _embedding({(4, 10, 4, 10): A, (20, 26, 40, 48): B})
    for name in ("cat", "dog"):
        assert loaded.bank(name).propose(emb, (512, 1024)) == banks.bank(name).propose(emb, (512, 1024))


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{", "not valid JSON"),
        ('{"format": "other"}', "not a click bank file"),
        ('{"format": "clickmask-click-bank/1", "categories": []}', "'categories' must be an object"),
        ('{"format": "clickmask-click-bank/1", "categories": {"a": {"features": [["x"]]}}}', "feature 0"),
        ('{"format": "clickmask-click-bank/1", "categories": {"a": {"features": [[1, 2], [1]]}}}',
         "2-d features, got a 1-d"),
    ],
)
def test_bad_json_gives_one_line_error_naming_the_source(text, problem):
    with pytest.raises(ClickmaskError, match=problem) as info:
        CategoryClickBanks.from_json(text, source="proj/banks.json")
    assert "proj/banks.json" in str(info.value) and "\n" not in str(info.value)


def test_proposals_walk_through_the_instances_of_a_real_image(sam_predictor, data_root):
    """COCO128 image 143 (8 birds): a bank from one bird's centre, then each proposal
    with the birds found so far ignored lands on a new bird."""
    from clickmask.geometry.masks import distance_to_boundary
    from clickmask.io.datasets import load_dataset
    from clickmask.io.images import load_image

    birds = [s for s in load_dataset(data_root, "COCO128") if s.name.startswith("000000000143_")]
    image = load_image(birds[0].image_path)
    gts = [s.load_gt() for s in birds]
    sam_predictor.set_image(image)
    emb, hw = sam_predictor.embedding, image.shape[:2]
    row, col = np.unravel_index(int(np.argmax(distance_to_boundary(gts[0]))), hw)
    bank = ClickBank()
    bank.add_click(emb, Click(float(col), float(row), True), hw)
    ignore = gts[0].copy()
    found = {0}
    for _ in range(4):
        x, y = bank.propose(emb, hw, ignore).as_int()
        hit = [i for i, gt in enumerate(gts) if gt[y, x]]
        assert hit and hit[0] not in found, f"proposal ({x}, {y}) hit {hit}, already found {found}"
        found.add(hit[0])
        ignore |= gts[hit[0]]


def _box_mask(h: int, w: int, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """HxW bool mask of grid cells rows r0..r1-1, cols c0..c1-1 (16-px cells, 1024 long side)."""
    mask = np.zeros((h, w), bool)
    mask[r0 * 16 : r1 * 16, c0 * 16 : c1 * 16] = True
    return mask


def test_old_banks_with_an_aggregate_key_still_load():
    bank = ClickBank()
    bank.add_feature(A)
    stored = {**bank.to_dict(), "aggregate": "mean"}  # written by earlier versions
    assert ClickBank.from_dict(stored).features[0] == pytest.approx(bank.features[0])


def test_mask_feature_is_the_unit_mean_over_the_mask():
    h, w = 512, 1024
    emb = _embedding({(4, 10, 4, 10): A, (20, 26, 40, 48): B})
    feat = mask_feature(emb, _box_mask(h, w, 4, 10, 4, 10), (h, w))
    assert feat == pytest.approx(A, abs=1e-5)
    half = mask_feature(emb, _box_mask(h, w, 4, 10, 4, 10) | _box_mask(h, w, 20, 26, 40, 46), (h, w))
    assert half == pytest.approx((A + B) / np.sqrt(2), abs=1e-5)
    assert mask_feature(emb, np.zeros((h, w), bool), (h, w)) is None
    with pytest.raises(ClickmaskError, match="mask is 5x5 but the image is 1024x512"):
        mask_feature(emb, np.zeros((5, 5), bool), (h, w))


def test_object_similarity_is_the_nearest_finished_object():
    h, w = 512, 1024
    emb = _embedding({(4, 10, 4, 10): A, (20, 26, 40, 48): B})
    bank = ClickBank(max_items=2)
    assert bank.object_similarity(A) is None
    assert bank.add_object(emb, _box_mask(h, w, 4, 10, 4, 10), (h, w))
    assert not bank.add_object(emb, np.zeros((h, w), bool), (h, w))  # covers no cell: nothing stored
    assert bank.object_similarity(A) == pytest.approx(1.0, abs=1e-5)
    assert bank.object_similarity(B) == pytest.approx(0.0, abs=1e-5)
    bank.add_object(emb, _box_mask(h, w, 20, 26, 40, 48), (h, w))
    bank.add_object(emb, _box_mask(h, w, 20, 26, 40, 48), (h, w))
    assert len(bank.objects) == 2 and bank.object_similarity(A) == pytest.approx(0.0, abs=1e-5)


def test_peaks_are_spaced_best_first_and_skip_ignored_objects():
    h, w = 512, 1024
    emb = _embedding({(4, 10, 4, 10): A, (20, 28, 40, 50): A * 0.9 + B * 0.1, (2, 8, 50, 60): B})
    bank = ClickBank()
    bank.add_feature(A)
    peaks = bank.peaks(emb, (h, w), count=3)
    assert len(peaks) == 3 and peaks[0] == bank.propose(emb, (h, w))
    col, row = peaks[1].as_int()
    assert 20 * 16 <= row < 28 * 16 and 40 * 16 <= col < 50 * 16
    for a, b in zip(peaks, peaks[1:]):
        assert max(abs(a.x - b.x), abs(a.y - b.y)) > 3 * 16
    ignore = _box_mask(h, w, 4, 10, 4, 10)
    for click in bank.peaks(emb, (h, w), ignore, count=4):
        assert not ignore[click.as_int()[::-1]]
    assert ClickBank().peaks(emb, (h, w)) == []


def test_object_features_survive_json_and_old_banks_load_without_them():
    h, w = 512, 1024
    emb = _embedding({(4, 10, 4, 10): A})
    banks = CategoryClickBanks()
    banks.bank("cat").add_feature(A)
    banks.bank("cat").add_object(emb, _box_mask(h, w, 4, 10, 4, 10), (h, w))
    loaded = CategoryClickBanks.from_json(banks.to_json())
    assert loaded.bank("cat").object_similarity(A) == pytest.approx(1.0, abs=1e-4)
    old = '{"format": "clickmask-click-bank/1", "categories": {"cat": {"features": [[0, 1, 0]]}}}'
    assert CategoryClickBanks.from_json(old).bank("cat").objects == []
    bad = '{"format": "clickmask-click-bank/1", "categories": {"cat": {"features": [[1]], "objects": [[0, 0]]}}}'
    with pytest.raises(ClickmaskError, match="proj.json: category 'cat': object 0 must be finite and not all zero"):
        CategoryClickBanks.from_json(bad, source="proj.json")


def test_snapshot_does_not_see_later_additions():
    bank = ClickBank(smooth=1, max_items=2)
    bank.add_feature(np.ones(4, np.float32))
    snap = bank.snapshot()
    bank.add_feature(np.arange(1, 5, dtype=np.float32))
    bank.add_feature(np.full(4, 2.0, np.float32))
    assert len(snap) == 1 and len(bank) == 2
    assert snap.smooth == 1 and snap.max_items == 2 and snap.objects == []
