"""Tests for the robot user (clickmask.evaluation.clicker)."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.evaluation.clicker import Clicker
from clickmask.geometry.masks import distance_to_boundary, next_click
from clickmask.engine.clicks import Click


def _empty(h: int = 40, w: int = 50) -> np.ndarray:
    return np.zeros((h, w), dtype=bool)


def test_click_as_int_and_convention() -> None:
    click = Click(x=3.0, y=7.0, positive=True)
    assert click.as_int() == (3, 7)
    assert Click(x=2.5, y=-0.4, positive=False).as_int() == (3, 0)
    with pytest.raises(AttributeError):
        click.x = 1.0  # type: ignore[misc]  # frozen


def test_first_click_on_odd_square_is_its_centre() -> None:
    gt = _empty()
    gt[10:21, 20:31] = True  # 11x11 square, centre row 15, col 25
    click = next_click(gt, _empty(), None, [])
    assert click == Click(x=25.0, y=15.0, positive=True)


def test_first_click_on_even_square_is_first_central_pixel() -> None:
    gt = _empty()
    gt[10:20, 20:30] = True  # 10x10: four central pixels, first in row-major order wins
    click = next_click(gt, _empty(), None, [])
    assert click == Click(x=24.0, y=14.0, positive=True)


def test_border_counts_as_boundary() -> None:
    gt = _empty(30, 40)
    gt[0:9, 0:40] = True  # 9 rows touching the top, left and right borders
    click = next_click(gt, _empty(30, 40), None, [])
    assert click is not None and click.positive
    assert click.y == 4.0  # the middle row of the band, not row 0
    assert 4 <= click.x <= 35  # away from the left/right borders


def test_whole_image_object_clicks_centre() -> None:
    gt = np.ones((9, 9), dtype=bool)
    assert next_click(gt, _empty(9, 9), None, []) == Click(x=4.0, y=4.0, positive=True)


def test_larger_prediction_gives_negative_click_in_fp_region() -> None:
    gt = _empty(40, 60)
    gt[10:30, 5:25] = True
    pred = gt.copy()
    pred[10:30, 5:55] = True  # extends 30 columns to the right of gt: FP = rows 10..29, cols 25..54
    click = next_click(gt, pred, None, [])
    assert click is not None and not click.positive
    fp = ~gt & pred
    col, row = click.as_int()
    assert fp[row, col]
    dist = distance_to_boundary(fp)
    assert dist[row, col] == dist.max()
    assert (row, col) == tuple(np.argwhere(dist == dist.max())[0])


def test_ignore_pixels_are_never_errors() -> None:
    gt = _empty()
    gt[5:35, 5:45] = True
    ignore = _empty()
    ignore[5:35, 5:45] = True
    assert next_click(gt, _empty(), ignore, []) is None

    # A big object mostly ignored and a small one not: the click must avoid the ignored part.
    gt2 = _empty()
    gt2[0:40, 0:30] = True
    gt2[15:20, 40:45] = True
    ignore2 = _empty()
    ignore2[0:40, 0:30] = True
    click = next_click(gt2, _empty(), ignore2, [])
    assert click == Click(x=42.0, y=17.0, positive=True)


def test_ignore_band_shrinks_error_region() -> None:
    gt = _empty()
    gt[10:30, 10:40] = True
    ignore = _empty()
    ignore[10:30, 10:20] = True  # left third ignored: FN region is rows 10..29, cols 20..39
    click = next_click(gt, _empty(), ignore, [])
    assert click is not None and click.positive
    assert 25 <= click.x <= 34 and 14 <= click.y <= 25


def test_clicked_pixels_are_zeroed() -> None:
    gt = _empty()
    gt[10:21, 20:31] = True
    pred = _empty()
    first = next_click(gt, pred, None, [])
    assert first == Click(x=25.0, y=15.0, positive=True)
    second = next_click(gt, pred, None, [first])
    assert second is not None and second.positive
    assert second.as_int() != first.as_int()
    assert gt[int(second.y), int(second.x)]

    # A previous click of the other sign at the same pixel also zeroes it.
    other_sign = Click(x=25.0, y=15.0, positive=False)
    assert next_click(gt, pred, None, [other_sign]) == second


def test_all_error_pixels_clicked_gives_none() -> None:
    gt = _empty(5, 5)
    gt[2, 2] = True
    clicks = [Click(x=2.0, y=2.0, positive=True)]
    assert next_click(gt, _empty(5, 5), None, clicks) is None


def test_out_of_image_clicks_are_disregarded() -> None:
    gt = _empty()
    gt[10:21, 20:31] = True
    far = [Click(x=-5.0, y=3.0, positive=True), Click(x=100.0, y=100.0, positive=False)]
    assert next_click(gt, _empty(), None, far) == Click(x=25.0, y=15.0, positive=True)


def test_tie_gives_negative_click() -> None:
    gt = _empty(20, 40)
    gt[5:10, 5:10] = True  # 5x5 FN square
    pred = _empty(20, 40)
    pred[5:10, 25:30] = True  # 5x5 FP square, same depth
    click = next_click(gt, pred, None, [])
    assert click == Click(x=27.0, y=7.0, positive=False)


def test_perfect_prediction_gives_none() -> None:
    gt = _empty()
    gt[3:17, 8:30] = True
    assert next_click(gt, gt.copy(), None, []) is None
    assert next_click(_empty(), _empty(), None, []) is None


def test_shape_mismatch_raises_naming_shapes() -> None:
    with pytest.raises(ClickmaskError, match=r"\(40, 50\).*\(40, 51\)"):
        next_click(_empty(), _empty(40, 51), None, [])
    with pytest.raises(ClickmaskError, match="ignore"):
        next_click(_empty(), _empty(), _empty(41, 50), [])
    with pytest.raises(ClickmaskError):
        Clicker(_empty(), ignore=_empty(10, 10))
    with pytest.raises(ClickmaskError):
        next_click(np.zeros((4, 4, 3), dtype=bool), _empty(4, 4), None, [])


def test_cv2_and_scipy_distances_agree() -> None:
    rng = np.random.default_rng(0)
    masks = [rng.random((37, 53)) < p for p in (0.3, 0.7, 0.95)]
    yy, xx = np.mgrid[0:64, 0:80]
    masks.append((yy - 30) ** 2 + (xx - 45) ** 2 < 25**2)  # disc clipped by the border
    masks.append(np.ones((15, 21), dtype=bool))
    masks.append(np.zeros((15, 21), dtype=bool))
    for mask in masks:
        d_scipy = distance_to_boundary(mask, "scipy")
        d_cv2 = distance_to_boundary(mask, "cv2")
        assert d_scipy.shape == mask.shape
        np.testing.assert_allclose(d_cv2, d_scipy, rtol=0, atol=1e-4)
        # exact: squared distances are integers
        np.testing.assert_allclose(d_scipy**2, np.round(d_scipy**2), atol=1e-9)

    gt = masks[3]
    pred = np.zeros_like(gt)
    pred[0:20, 0:20] = True
    clicks: list[Click] = []
    for _ in range(5):
        a = next_click(gt, pred, None, clicks, method="scipy")
        b = next_click(gt, pred, None, clicks, method="cv2")
        assert a == b
        assert a is not None
        clicks.append(a)


def test_clicker_class_records_and_resets() -> None:
    gt = _empty()
    gt[10:21, 20:31] = True
    clicker = Clicker(gt)
    assert clicker.clicks == []
    first = clicker.make_next_click(_empty())
    assert first == Click(x=25.0, y=15.0, positive=True)
    second = clicker.make_next_click(_empty())
    assert second is not None and second != first
    assert clicker.clicks == [first, second]
    clicker.clicks.append(first)  # a copy: does not change the clicker
    assert len(clicker.clicks) == 2
    assert clicker.make_next_click(gt.copy()) is None
    assert len(clicker.clicks) == 2
    clicker.reset()
    assert clicker.clicks == []
    assert clicker.make_next_click(_empty()) == first


def test_clicker_simulated_session_converges() -> None:
    gt = _empty(30, 30)
    gt[5:25, 8:22] = True
    ignore = _empty(30, 30)
    ignore[5, 8:22] = True
    clicker = Clicker(gt, ignore)
    pred = _empty(30, 30)
    pred[0:10, 0:10] = True
    for _ in range(20):
        click = clicker.make_next_click(pred)
        if click is None:
            break
        col, row = click.as_int()
        assert gt[row, col] == click.positive
        assert not ignore[row, col]
        pred = gt.copy() if click.positive else pred & gt
    assert clicker.make_next_click(pred) is None
