"""NoC benchmark with an adapter checkpoint (until ``clickmask eval --adapter`` is wired).

``python -m clickmask.training.eval_adapter --adapter runs/x/adapter.npz --dataset GrabCut --json out.json``
runs the same protocol as ``clickmask eval`` (same runner, report and JSON
schema) with :func:`clickmask.training.adapted.load_adapted_predictor`;
without ``--adapter`` it evaluates the plain model the same way.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clickmask.errors import ClickmaskError


def run(args: argparse.Namespace) -> dict:
    """Evaluate and return the report (also printed, and written to ``--json``)."""
    from tqdm import tqdm

    from clickmask.engine.loader import load_predictor
    from clickmask.evaluation.datasets import default_data_root, load_dataset
    from clickmask.evaluation.report import build_report, format_table, write_json
    from clickmask.evaluation.runner import EvalOptions, evaluate_samples, peak_rss_mb
    from clickmask.training.adapted import load_adapted_predictor

    samples = load_dataset(args.data_root or default_data_root(), args.dataset, limit=args.limit)
    if args.adapter is not None:
        predictor = load_adapted_predictor(args.adapter, args.model)
    else:
        predictor = load_predictor(args.model)
    options = EvalOptions(max_clicks=args.max_clicks)
    with tqdm(total=len(samples), desc=args.dataset, unit="obj", disable=None) as bar:
        results = evaluate_samples(predictor, samples, options, on_result=lambda r: bar.update(1))
    extra = {"mask_feedback": True, "adapter": str(args.adapter) if args.adapter else None}
    report = build_report(results, args.dataset, predictor.model_id, extra, options.max_clicks, peak_rss_mb())
    print(format_table(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clickmask.training.eval_adapter", description=__doc__.split("\n")[0])
    parser.add_argument("--adapter", type=Path, default=None, help="adapter checkpoint (adapter.npz)")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--max-clicks", type=int, default=20)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    try:
        run(args)
    except ClickmaskError as exc:
        print(f"clickmask: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
