"""The ``eval-video`` summary: J, F and J&F per round averaged over sequences, R-AUC-J&F, clicks, times."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from clickmask.evaluation.video.metrics import r_auc
from clickmask.evaluation.video.protocol import SequenceResult


def summarize_runs(results: Sequence[SequenceResult]) -> dict:
    """Means over sequences (one object each) per round, R-AUC-J&F of the mean curve, times."""
    jf = np.mean([r.jf for r in results], axis=0)
    ms = np.array([t for r in results for t in r.propagate_ms], np.float64)
    ranks = [[r.confidence_rank[k] for r in results if r.confidence_rank[k] is not None]
             for k in range(len(results[0].jf))]
    return {
        "n": len(results),
        "frames": int(sum(r.frames for r in results)),
        "jf": [float(v) for v in jf],
        "j": [float(v) for v in np.mean([r.j for r in results], axis=0)],
        "f": [float(v) for v in np.mean([r.f for r in results], axis=0)],
        "r_auc_jf": r_auc(jf),
        "clicks_per_round": [float(v) for v in np.mean([r.clicks for r in results], axis=0)],
        "clicks_total": float(np.mean([sum(r.clicks) for r in results])),
        "seconds_per_round": [float(v) for v in np.mean([r.seconds for r in results], axis=0)],
        "propagate_ms": {"median": float(np.median(ms)) if ms.size else None,
                         "p90": float(np.percentile(ms, 90)) if ms.size else None, "frames": int(ms.size)},
        "confidence_spearman_j": [float(np.mean(v)) if v else None for v in ranks],
        "sequences": [r.as_dict() for r in results],
    }


def format_table(report: dict) -> str:
    """The terminal table: J&F per round, R-AUC-J&F, clicks and times (and the pointer run's)."""
    runs = [("ground truth", report["gt"])] + ([("pointer", report["pointer"])] if report.get("pointer") else [])
    rounds = len(report["gt"]["jf"])
    lines = [f"{report['dataset']}: {report['gt']['n']} sequences, {report['gt']['frames']} frames, "
             f"model {report['model']}, encoder {report['encoder_fps']:.2f} frames/s",
             f"{'frame chosen by':<14} " + " ".join(f"{f'r{k + 1}':>6}" for k in range(rounds))
             + f" {'R-AUC':>6} {'clicks':>6} {'s/round':>8} {'prop ms':>8}"]
    for label, run in runs:
        lines.append(f"{label:<14} " + " ".join(f"{v:6.3f}" for v in run["jf"])
                     + f" {run['r_auc_jf']:6.3f} {run['clicks_total']:6.1f} {np.mean(run['seconds_per_round']):8.1f}"
                     f" {run['propagate_ms']['median'] or 0:8.0f}")
    return "\n".join(lines)
