"""Tests for clickmask.evaluation.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from clickmask.errors import ClickmaskError
from clickmask.evaluation.metrics import noc, reached, summarize
from clickmask.geometry.masks import iou


def test_iou_basic() -> None:
    gt = np.zeros((10, 10), dtype=bool)
    gt[0:4, 0:5] = True  # 20 px
    pred = np.zeros((10, 10), dtype=bool)
    pred[2:6, 0:5] = True  # 20 px, overlap 10 px
    assert iou(gt, pred) == pytest.approx(10 / 30)
    assert iou(gt, gt) == 1.0
    assert iou(gt, np.zeros_like(gt)) == 0.0


def test_iou_both_empty_is_one() -> None:
    empty = np.zeros((4, 6), dtype=bool)
    assert iou(empty, empty) == 1.0
    full = np.ones((4, 6), dtype=bool)
    assert iou(empty, empty, ignore=full) == 1.0
    # everything ignored: nothing left to compare
    assert iou(full, empty, ignore=full) == 1.0


def test_iou_with_ignore() -> None:
    gt = np.zeros((10, 10), dtype=bool)
    gt[0:4, 0:5] = True
    pred = np.zeros((10, 10), dtype=bool)
    pred[2:6, 0:5] = True
    ignore = np.zeros((10, 10), dtype=bool)
    ignore[4:6, :] = True  # removes the 10 FP pixels
    assert iou(gt, pred, ignore) == pytest.approx(10 / 20)
    ignore[0:2, :] = True  # also removes the 10 FN pixels
    assert iou(gt, pred, ignore) == 1.0


def test_iou_shape_mismatch() -> None:
    with pytest.raises(ClickmaskError, match=r"\(3, 3\).*\(3, 4\)"):
        iou(np.zeros((3, 3), bool), np.zeros((3, 4), bool))
    with pytest.raises(ClickmaskError, match="ignore"):
        iou(np.zeros((3, 3), bool), np.zeros((3, 3), bool), np.zeros((2, 3), bool))


def test_noc_first_reaching_click() -> None:
    ious = [0.5, 0.8, 0.86, 0.91, 0.97]
    assert noc(ious, 0.85) == 3
    assert noc(ious, 0.9) == 4
    assert noc(ious, 0.95) == 5
    assert noc([0.99], 0.85) == 1
    # dropping below afterwards does not matter
    assert noc([0.2, 0.9, 0.4], 0.85) == 2


def test_noc_exactly_at_threshold_counts() -> None:
    assert noc([0.5, 0.85, 0.86], 0.85) == 2
    assert reached([0.5, 0.9], 0.9)


def test_noc_never_reaching_is_max_clicks() -> None:
    ious = [0.1 + 0.01 * k for k in range(20)]
    assert noc(ious, 0.85) == 20
    assert not reached(ious, 0.85)
    assert noc(ious, 0.85, max_clicks=5) == 5
    assert noc([], 0.85) == 20
    # IoUs after max_clicks do not count
    late = [0.5] * 20 + [0.99]
    assert noc(late, 0.85) == 20
    assert reached(late, 0.85)
    assert not reached(late, 0.85, max_clicks=20)


def test_summarize_keys_and_values() -> None:
    runs = [
        [0.5, 0.86, 0.91, 0.96] + [0.96] * 16,  # noc 2, 3, 4
        [0.9, 1.0],  # stopped early after a perfect prediction: noc 1, 1, 2
        [0.3] * 19 + [0.95],  # reaches every threshold exactly at click 20: no failure
        [0.2] * 20,  # never: 20 and a failure at every threshold
    ]
    summary = summarize(runs)
    assert set(summary) == {"noc", "failures", "miou", "unstable", "n"}
    assert summary["unstable"] == {"10": 0, "40": 0}
    assert summary["n"] == 4
    assert set(summary["noc"]) == {"85", "90", "95"}
    assert summary["noc"]["85"] == pytest.approx((2 + 1 + 20 + 20) / 4)
    assert summary["noc"]["90"] == pytest.approx((3 + 1 + 20 + 20) / 4)
    assert summary["noc"]["95"] == pytest.approx((4 + 2 + 20 + 20) / 4)
    assert summary["failures"] == {"85": 1, "90": 1, "95": 1}
    miou = summary["miou"]
    assert len(miou) == 20
    assert miou[0] == pytest.approx((0.5 + 0.9 + 0.3 + 0.2) / 4)
    assert miou[1] == pytest.approx((0.86 + 1.0 + 0.3 + 0.2) / 4)
    assert miou[5] == pytest.approx((0.96 + 1.0 + 0.3 + 0.2) / 4)  # run 2 padded with 1.0
    assert miou[19] == pytest.approx((0.96 + 1.0 + 0.95 + 0.2) / 4)
    assert all(isinstance(v, float) for v in miou)


def test_summarize_custom_thresholds_and_max_clicks() -> None:
    runs = [[0.7, 0.8, 0.99], [0.75]]
    summary = summarize(runs, thresholds=(0.8, 0.99), max_clicks=3)
    assert summary["noc"] == {"80": pytest.approx(2.5), "99": pytest.approx(3.0)}
    assert summary["failures"] == {"80": 1, "99": 1}
    assert summary["miou"] == pytest.approx([0.725, 0.775, 0.87])
    assert np.isclose(summary["miou"][2], (0.99 + 0.75) / 2)


def test_summarize_rejects_empty_input() -> None:
    with pytest.raises(ClickmaskError):
        summarize([])
    with pytest.raises(ClickmaskError):
        summarize([[0.5], []])


def test_unstable_counts_objects_with_a_click_that_throws_iou_away():
    from clickmask.evaluation.metrics import unstable

    runs = [[0.5, 0.9, 0.95], [0.9, 0.75, 0.95], [0.97, 0.5, 0.9], [0.8, 0.71, 0.9]]
    assert unstable(runs, 0.1) == 2 and unstable(runs, 0.4) == 1
    assert summarize(runs, max_clicks=3)["unstable"] == {"10": 2, "40": 1}
