"""Evaluation reports: the JSON summary, the terminal table and the mIoU plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from clickmask.evaluation.metrics import summarize
from clickmask.evaluation.runner import SampleResult
from clickmask.io.atomic import atomic_path, atomic_write_text

THRESHOLDS = (0.85, 0.90, 0.95)


def build_report(
    results: Sequence[SampleResult],
    dataset: str,
    model: str,
    options: dict,
    max_clicks: int,
    peak_rss_mb: float,
) -> dict:
    """The machine-readable summary (the ``--json`` schema).

    ``latency_ms.embed_median`` counts only images whose embedding was computed;
    cache hits are counted in ``embed_cache_hits`` and timed in
    ``latency_ms.embed_cache_hit_median``.
    """
    summary = summarize([r.ious for r in results], THRESHOLDS, max_clicks)
    click_ms = np.array([t for r in results for t in r.click_ms], dtype=np.float64)
    embed_ms = np.array([r.embed_ms for r in results if not r.embed_cached], dtype=np.float64)
    hit_ms = np.array([r.embed_ms for r in results if r.embed_cached], dtype=np.float64)
    return {
        "dataset": dataset,
        "model": model,
        "options": dict(options),
        "n": summary["n"],
        "noc": summary["noc"],
        "failures": summary["failures"],
        "unstable": summary["unstable"],
        "miou": summary["miou"],
        "latency_ms": {
            "click_median": float(np.median(click_ms)) if click_ms.size else 0.0,
            "click_p95": float(np.percentile(click_ms, 95)) if click_ms.size else 0.0,
            "embed_median": float(np.median(embed_ms)) if embed_ms.size else 0.0,
            "embed_p95": float(np.percentile(embed_ms, 95)) if embed_ms.size else 0.0,
            "embed_cache_hit_median": float(np.median(hit_ms)) if hit_ms.size else 0.0,
        },
        "embed_cache_hits": int(sum(r.embed_cached for r in results)),
        "peak_rss_mb": float(peak_rss_mb),
        "per_object": {r.name: [round(v, 5) for v in r.ious] for r in results},
    }


def format_table(report: dict) -> str:
    """A plain-text table of one report, for the terminal."""
    noc, fail, miou = report["noc"], report["failures"], report["miou"]
    lat = report["latency_ms"]
    at = {k: miou[k - 1] for k in (1, 3, 5, 10, 20) if k <= len(miou)}
    lines = [
        f"dataset {report['dataset']}  model {report['model']}  objects {report['n']}  "
        f"options {json.dumps(report['options'], sort_keys=True)}",
        "  NoC@85  NoC@90  NoC@95   >=20@85 >=20@90 >=20@95",
        f"  {noc['85']:6.2f}  {noc['90']:6.2f}  {noc['95']:6.2f}   "
        f"{fail['85']:7d} {fail['90']:7d} {fail['95']:7d}",
        "  mIoU@" + "  mIoU@".join(f"{k}={v:.4f}" for k, v in at.items()),
        f"  objects with a click that lowers IoU by more than 0.1: {report['unstable']['10']} "
        f"(by more than 0.4: {report['unstable']['40']})",
        f"  latency ms: click median {lat['click_median']:.1f}, p95 {lat['click_p95']:.1f}; "
        f"embedding median {lat['embed_median']:.0f} ({report['n'] - report['embed_cache_hits']} computed), "
        f"cache hit median {lat['embed_cache_hit_median']:.0f} ({report['embed_cache_hits']} hits); "
        f"peak RSS {report['peak_rss_mb']:.0f} MB",
    ]
    return "\n".join(lines)


def write_json(report: dict, path: Path) -> None:
    """Write the report atomically as indented JSON."""
    atomic_write_text(Path(path), json.dumps(report, indent=2) + "\n")


def plot_miou(reports: Sequence[dict], path: Path, title: str = "") -> None:
    """Save the mIoU-vs-clicks curve(s) of one or more reports as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for rep in reports:
        miou = rep["miou"]
        label = f"{rep['dataset']} / {rep['model']}"
        if rep.get("options"):
            label += " " + ",".join(f"{k}={v}" for k, v in sorted(rep["options"].items()))
        ax.plot(range(1, len(miou) + 1), miou, marker="o", markersize=3, label=label)
    ax.set_xlabel("number of clicks")
    ax.set_ylabel("mIoU")
    ax.set_xticks(range(1, max(len(r["miou"]) for r in reports) + 1, 2))
    ax.grid(True, alpha=0.3)
    ax.set_title(title or "mIoU vs clicks")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
