"""Reports of the sequential benchmark: JSON summary, terminal table, comparison.

NoC here counts only the clicks the user makes: an accepted ICP proposal is
free, so an object whose proposal alone reaches the threshold has NoC 0.
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.evaluation.metrics import threshold_key
from clickmask.evaluation.sequential.runner import InstanceResult

THRESHOLDS = (0.85, 0.90)


def _noc_block(results: Sequence[InstanceResult], max_clicks: int) -> dict:
    """NoC means, failure counts and ICP counts of a group of objects."""
    noc: dict[str, float] = {}
    failures: dict[str, int] = {}
    for t in THRESHOLDS:
        key = threshold_key(t)
        values = [r.noc(t, max_clicks) for r in results]
        noc[key] = float(np.mean(values))
        failures[key] = sum(1 for r in results if not any(v >= t for v in r.ious))
    proposals = sum(1 for r in results if r.proposal is not None)
    hits = sum(1 for r in results if r.hit)
    return {
        "n": len(results),
        "noc": noc,
        "failures": failures,
        "icp": _icp_counts(proposals, hits, sum(1 for r in results if r.sibling)),
    }


def _icp_counts(proposals: int, hits: int, siblings: int) -> dict:
    """The ICP block: proposals, hits, their rate, and the misses inside another object of the category.

    ``siblings``: proposals inside another object of the sequence on the same
    image that was not annotated yet.
    """
    return {"proposals": proposals, "hits": hits, "hit_rate": hits / proposals if proposals else 0.0,
            "siblings": siblings}


def build_report(
    results: Sequence[InstanceResult], dataset: str, model: str, options: dict, max_clicks: int, stop_iou: float
) -> dict:
    """The machine-readable summary (``--json``): overall, per category and per object."""
    if not results:
        raise ClickmaskError(f"dataset {dataset}: no objects were annotated")
    if stop_iou < max(THRESHOLDS):
        raise ClickmaskError(f"stop IoU {stop_iou} is below the highest reported threshold {max(THRESHOLDS)}")
    categories: dict[str, list[InstanceResult]] = {}
    for r in results:
        categories.setdefault(r.category, []).append(r)
    click_ms = np.array([t for r in results for t in r.click_ms], dtype=np.float64)
    propose_ms = np.array([r.propose_ms for r in results if r.proposal is not None], dtype=np.float64)
    overall = _noc_block(results, max_clicks)
    return {
        "dataset": dataset,
        "model": model,
        "options": dict(options),
        "max_clicks": max_clicks,
        "stop_iou": stop_iou,
        "n": overall["n"],
        "sequences": len(categories),
        "noc": overall["noc"],
        "failures": overall["failures"],
        "icp": overall["icp"],
        "latency_ms": {
            "click_median": float(np.median(click_ms)) if click_ms.size else 0.0,
            "propose_median": float(np.median(propose_ms)) if propose_ms.size else 0.0,
        },
        "per_category": {name: _noc_block(group, max_clicks) for name, group in categories.items()},
        "per_object": {
            r.name: {
                "category": r.category,
                "ious": [round(v, 5) for v in r.ious],
                "free_first": r.free_first,
                "proposal": list(r.proposal) if r.proposal is not None else None,
                "hit": r.hit,
                "sibling": r.sibling,
                "noc": {threshold_key(t): r.noc(t, max_clicks) for t in THRESHOLDS},
            }
            for r in results
        },
    }


def merge_reports(parts: Sequence[dict]) -> dict:
    """One report from runs of the same configuration on disjoint sequences (``--categories``).

    Each sequence's results do not depend on the others, so the merged NoC,
    failures and ICP counts are those of a single run over all of them. The
    click and proposal latencies are the parts' medians averaged by object
    count (not a true median); ``merged_from`` lists each part's sequences.
    """
    if not parts:
        raise ClickmaskError("nothing to merge")
    first = parts[0]
    def same(key: str, a, b) -> bool:  # a switch that is off equals one the older code did not write
        if key == "options":
            a, b = ({k: v for k, v in o.items() if v is not False} for o in (a or {}, b or {}))
        return a == b

    for rep in parts[1:]:
        for key in ("dataset", "model", "options", "max_clicks", "stop_iou"):
            if not same(key, rep.get(key), first.get(key)):
                raise ClickmaskError(f"cannot merge reports with different {key}: {first.get(key)} vs {rep.get(key)}")
    per_category: dict[str, dict] = {}
    per_object: dict[str, dict] = {}
    for rep in parts:
        overlap = set(rep["per_category"]) & set(per_category)
        if overlap:
            raise ClickmaskError(f"cannot merge: sequence {sorted(overlap)[0]} is in two reports")
        per_category.update(rep["per_category"])
        per_object.update(rep["per_object"])
    n = sum(b["n"] for b in per_category.values())
    keys = list(first["noc"])
    proposals = sum(b["icp"]["proposals"] for b in per_category.values())
    hits = sum(b["icp"]["hits"] for b in per_category.values())
    siblings = sum(b["icp"].get("siblings", 0) for b in per_category.values())
    latency = {k: float(sum(r["latency_ms"][k] * r["n"] for r in parts) / n) for k in first["latency_ms"]}
    return {
        **{k: first[k] for k in ("dataset", "model", "options", "max_clicks", "stop_iou")},
        "n": n,
        "sequences": len(per_category),
        "noc": {k: float(sum(b["noc"][k] * b["n"] for b in per_category.values()) / n) for k in keys},
        "failures": {k: int(sum(b["failures"][k] for b in per_category.values())) for k in keys},
        "icp": _icp_counts(proposals, hits, siblings),
        "latency_ms": latency,
        "per_category": per_category,
        "per_object": per_object,
        "merged_from": [list(rep["per_category"]) for rep in parts],
        **({"opo_gate": gates} if (gates := {k: v for rep in parts for k, v in rep.get("opo_gate", {}).items()}) else {}),
    }


def format_table(report: dict) -> str:
    """Plain-text table: the overall NoC and ICP hit rate, then one line per category."""
    noc, fail, icp = report["noc"], report["failures"], report["icp"]
    lines = [
        f"dataset {report['dataset']} (sequential)  model {report['model']}  "
        f"sequences {report['sequences']}  objects {report['n']}  options {json.dumps(report['options'], sort_keys=True)}",
        "  NoC@85  NoC@90   >=20@85 >=20@90   ICP hits/proposals",
        f"  {noc['85']:6.2f}  {noc['90']:6.2f}   {fail['85']:7d} {fail['90']:7d}   "
        f"{icp['hits']}/{icp['proposals']} ({icp['hit_rate']:.0%})"
        + (f", {icp['siblings']} misses inside another object of the category" if icp.get("siblings") else ""),
        f"  {'category':<20} {'n':>4}  NoC@85  NoC@90  ICP hits",
    ]
    for name, block in report["per_category"].items():
        lines.append(
            f"  {name:<20} {block['n']:4d}  {block['noc']['85']:6.2f}  {block['noc']['90']:6.2f}  "
            f"{block['icp']['hits']}/{block['icp']['proposals']}"
        )
    lines.append(f"  latency ms: click median {report['latency_ms']['click_median']:.1f}, "
                 f"proposal median {report['latency_ms']['propose_median']:.1f}")
    return "\n".join(lines)


def compare(base: dict, other: dict, threshold: str = "85") -> dict:
    """NoC change of ``other`` against ``base`` (same dataset): overall and per category.

    Returns ``{"overall": {"base", "other", "change"}, "per_category": {name: {...}},
    "worst_category": name}``; ``change`` is relative (-0.12 = 12% fewer clicks;
    0 when both are 0).
    """
    if base.get("dataset") != other.get("dataset"):
        raise ClickmaskError(f"cannot compare reports of {base.get('dataset')} and {other.get('dataset')}")

    def change(a: float, b: float) -> float:
        return (b - a) / a if a > 0 else (0.0 if b == 0 else float("inf"))

    per = {}
    for name, block in base["per_category"].items():
        if name in other["per_category"]:
            a, b = block["noc"][threshold], other["per_category"][name]["noc"][threshold]
            per[name] = {"base": a, "other": b, "change": change(a, b)}
    a, b = base["noc"][threshold], other["noc"][threshold]
    worst = max(per, key=lambda n: per[n]["change"]) if per else None
    return {"threshold": threshold, "overall": {"base": a, "other": b, "change": change(a, b)},
            "per_category": per, "worst_category": worst}


def paired_difference(base: dict, other: dict, threshold: str = "85", draws: int = 10000, seed: int = 0,
                      categories: Sequence[str] | None = None) -> dict:
    """Per-object NoC difference of ``other`` minus ``base`` on the objects both annotated, with a 95% interval.

    The interval is a bootstrap over objects (``draws`` resamples, fixed
    ``seed``): how much the total could move from which objects happen to be
    in the set. It does not cover the run-to-run spread of a sequential run
    (one changed object changes later banks and adapters), so a difference
    inside it is no evidence either way. ``categories`` restricts the objects.
    Returns ``{"objects", "total", "mean", "ci": [low, high] (of the mean),
    "better", "worse"}`` (better = fewer clicks in ``other``).
    """
    if base.get("dataset") != other.get("dataset"):
        raise ClickmaskError(f"cannot compare reports of {base.get('dataset')} and {other.get('dataset')}")
    keep = None if categories is None else set(categories)
    names = [n for n, o in base["per_object"].items()
             if n in other["per_object"] and (keep is None or o["category"] in keep)]
    if not names:
        raise ClickmaskError("the two reports share no object")
    diff = np.array([other["per_object"][n]["noc"][threshold] - base["per_object"][n]["noc"][threshold]
                     for n in names], dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(draws, len(diff)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return {"threshold": threshold, "objects": len(diff), "total": float(diff.sum()), "mean": float(diff.mean()),
            "ci": [float(low), float(high)], "better": int((diff < 0).sum()), "worse": int((diff > 0).sum())}


def format_paired(result: dict) -> str:
    """One line for :func:`paired_difference`."""
    low, high = result["ci"]
    return (f"  paired NoC@{result['threshold']}: {result['total']:+.0f} clicks on {result['objects']} objects "
            f"({result['mean']:+.3f} per object, 95% interval {low:+.3f} .. {high:+.3f}); "
            f"{result['better']} better, {result['worse']} worse")


if __name__ == "__main__":  # python -m clickmask.evaluation.sequential.report [--merge OUT.json | --paired] A.json B.json ...
    import sys
    from pathlib import Path

    from clickmask.evaluation.report import write_json as _write

    args = sys.argv[1:]
    if args[:1] == ["--paired"] and len(args) == 3:
        reports = [json.loads(Path(p).read_text(encoding="utf-8")) for p in args[1:]]
        for key in ("85", "90"):
            print(format_paired(paired_difference(reports[0], reports[1], key)))
    elif args[:1] == ["--merge"] and len(args) >= 3:
        merged = merge_reports([json.loads(Path(p).read_text(encoding="utf-8")) for p in args[2:]])
        _write(merged, Path(args[1]))
        print(format_table(merged))
    else:
        print("usage: python -m clickmask.evaluation.sequential.report --paired A.json B.json | --merge OUT.json A.json B.json ...")
        sys.exit(2)
