"""The app benchmark's click-by-click comparison of trainer conditions (pure statistics)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from app_latency import _bootstrap_median, _paired  # noqa: E402 - the benchmark scripts are not a package


def test_paired_ratios_compare_each_click_with_its_idle_twin():
    idle = [100.0, 80.0, 120.0, 90.0, 110.0]
    out = _paired({"idle": idle, "busy": [2 * t for t in idle], "idle_again": list(idle)})
    assert out["busy_vs_idle"]["median"] == 2.0 and out["busy_vs_idle"]["ci95"] == [2.0, 2.0]
    assert out["idle_again_vs_idle"]["median"] == 1.0
    assert out["busy_vs_idle"]["n"] == 5


def test_bootstrap_interval_holds_the_median_and_is_reproducible():
    values = np.random.default_rng(1).lognormal(0.0, 0.2, size=64)
    a, b = _bootstrap_median(values), _bootstrap_median(values)
    assert a == b
    low, high = a["ci95"]
    assert low < a["median"] < high
    assert high - low < 0.3
