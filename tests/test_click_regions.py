"""Growing the regions of ignored clicks (clickmask.engine.click_regions)."""

import numpy as np

from clickmask.engine.click_regions import click_region, honor_clicks, lab_image
from clickmask.engine.clicks import Click


def _line_image() -> np.ndarray:
    """120x120 RGB: textured light background, a 3 px dark horizontal bar at rows 59-61."""
    rng = np.random.default_rng(0)
    img = np.full((120, 120, 3), 200, np.uint8)
    img += rng.integers(0, 12, img.shape, dtype=np.uint8)
    img[59:62, 10:110] = (40, 30, 30)
    return img


def test_region_follows_a_thin_bar_and_stays_out_of_the_background():
    lab = lab_image(_line_image())
    found = click_region(lab, 60, 60, radius=20)
    assert found is not None
    region, (x0, y0) = found
    assert (x0, y0) == (40, 40)
    rows = np.nonzero(region.any(axis=1))[0] + y0
    assert rows.min() >= 59 and rows.max() <= 61
    assert region.sum() >= 3 * 35  # most of the bar inside the 41 px window


def test_flat_image_has_no_region():
    lab = lab_image(np.full((50, 50, 3), 128, np.uint8))
    assert click_region(lab, 25, 25, radius=10) is None


def test_region_that_leaks_everywhere_is_refused():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)  # noise: no structure
    img[:] = np.clip(img.astype(int) // 16 + 120, 0, 255).astype(np.uint8)  # low contrast noise
    found = click_region(lab_image(img), 40, 40, radius=15, max_area=0.05, max_border=0.01)
    if found is not None:  # a tiny local blob is acceptable, a leak is not
        region, _ = found
        assert region.sum() <= 0.05 * 31 * 31


def test_ignored_positive_click_adds_the_bar():
    lab = lab_image(_line_image())
    logits = np.full((120, 120), -5.0, np.float32)
    out, fixed = honor_clicks(lab, logits, [Click(60, 60, True)], radius=20)
    assert fixed == 1
    assert out[60, 45:75].min() > 0
    assert (out > 0).sum() < 41 * 41 * 0.3
    assert logits.max() < 0  # input untouched


def test_satisfied_click_changes_nothing():
    lab = lab_image(_line_image())
    logits = np.full((120, 120), -5.0, np.float32)
    logits[60, 60] = 2.0
    out, fixed = honor_clicks(lab, logits, [Click(60, 60, True)], radius=20)
    assert fixed == 0 and out is logits


def test_region_holding_a_click_of_the_other_sign_is_not_used():
    lab = lab_image(_line_image())
    logits = np.full((120, 120), -5.0, np.float32)
    clicks = [Click(70, 60, False), Click(60, 60, True)]
    out, fixed = honor_clicks(lab, logits, clicks, radius=20)
    assert fixed == 0 and out.max() < 0


def test_ignored_negative_click_removes_the_bar_from_the_mask():
    lab = lab_image(_line_image())
    logits = np.full((120, 120), 3.0, np.float32)
    out, fixed = honor_clicks(lab, logits, [Click(60, 60, False)], radius=20)
    assert fixed == 1
    assert out[60, 50:70].max() < 0
    assert out[30, 60] > 0 and out[90, 60] > 0
