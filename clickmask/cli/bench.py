"""``clickmask bench``: encoder, cache and per-click latency on the bundled samples."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clickmask.cli.options import add_infer, add_model
from clickmask.engine.refine import InferenceOptions
from clickmask.evaluation.latency import format_latency, measure_latency
from clickmask.io.atomic import atomic_write_text
from clickmask.models.registry import resolve_model


def add_parser(sub) -> None:
    bench = sub.add_parser("bench", help="latency benchmark on the bundled samples")
    bench.set_defaults(run=run)
    add_model(bench)
    bench.add_argument("--megapixels", type=float, default=0.5, help="resize the samples to this size")
    bench.add_argument("--clicks", type=int, default=10, help="robot clicks per object")
    bench.add_argument("--repeats", type=int, default=2)
    bench.add_argument("--json", dest="json_path", type=Path, help="write the result JSON here")
    add_infer(bench, default="raw", what="raw, the model alone")


def run(args: argparse.Namespace) -> int:
    result = measure_latency(resolve_model(args.model), args.megapixels, args.clicks, args.repeats,
                             InferenceOptions.parse(args.infer))
    print(format_latency(result))
    if args.json_path:
        atomic_write_text(args.json_path, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_path}")
    return 0
