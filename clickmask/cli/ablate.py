"""``clickmask ablate``: inference configurations side by side on one dataset (one embedding per image)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from clickmask.cli.options import add_data_root, add_model
from clickmask.engine.embedding_cache import EmbeddingCache
from clickmask.engine.refine import InferenceOptions
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.errors import ClickmaskError
from clickmask.evaluation.ablation import run_ablation
from clickmask.evaluation.report import format_table, write_json
from clickmask.evaluation.runner import EvalOptions
from clickmask.io.datasets import default_data_root, load_dataset
from clickmask.models.registry import resolve_model
from clickmask.paths import embeddings_dir


def add_parser(sub) -> None:
    ab = sub.add_parser("ablate", help="compare inference configurations on one dataset")
    ab.set_defaults(run=run)
    add_data_root(ab)
    ab.add_argument("--dataset", required=True)
    add_model(ab)
    ab.add_argument("--configs", required=True, metavar="NAME:OPTS;...",
                    help="';'-separated configurations NAME:OPTS, e.g. 'raw:;cfr1:cfr=1;zoom:zoom'")
    ab.add_argument("--limit", type=int, default=None)
    ab.add_argument("--max-clicks", type=int, default=20)
    ab.add_argument("--out", type=Path, required=True, help="folder for one JSON report per configuration")


def parse_configs(text: str) -> dict[str, InferenceOptions]:
    """``NAME:OPTS;NAME:OPTS`` -> {name: options}."""
    configs = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, sep, opts = part.partition(":")
        if not sep:
            raise ClickmaskError(f"invalid --configs entry {part!r}: use NAME:OPTS, e.g. 'cfr1:cfr=1'")
        configs[name.strip()] = InferenceOptions.parse(opts)
    return configs


def run(args: argparse.Namespace) -> int:
    configs = parse_configs(args.configs)
    samples = load_dataset(args.data_root or default_data_root(), args.dataset, limit=args.limit)
    spec = resolve_model(args.model)
    # crops of the zoom-in recur across configurations and runs: keep them on disk
    base = SamOnnxPredictor(spec, EmbeddingCache(embeddings_dir() / spec.fingerprint, max_items=64))
    with tqdm(total=len(samples), desc=args.dataset, unit="img", mininterval=20) as bar:
        reports = run_ablation(base, samples, configs, args.dataset,
                               EvalOptions(max_clicks=args.max_clicks), on_sample=lambda: bar.update(1))
    for name, rep in reports.items():
        print(f"[{name}] zoom encodes/object {rep['zoom']['encodes_per_object']:.2f}")
        print(format_table(rep))
        write_json(rep, args.out / f"{args.dataset}_{name}.json")
    return 0
