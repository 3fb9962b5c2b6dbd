"""``clickmask train-reference``: learned reference prompts (RefCut's dual prompt encoder), decoder frozen.

Needs PyTorch (``clickmask[learn]``). The output (``reference_prompts.npz``) is a build
output: keep it under ``runs/`` or the cache folder, and pass it explicitly to
``clickmask eval --reference --reference-prompts``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tqdm import tqdm

from clickmask.cli.options import add_data_root, add_model
from clickmask.errors import ClickmaskError

SOURCES = ("PascalPart", "COCO128", "DAVIS2016_dev")


def add_parser(sub) -> None:
    tr = sub.add_parser("train-reference",
                        help="train learned reference prompts (dual prompt encoder) on part, combination and video pairs")
    tr.set_defaults(run=run)
    add_data_root(tr)
    tr.add_argument("--out", type=Path, required=True,
                    help="folder for reference_prompts.npz, summary.json, train.log")
    add_model(tr)
    tr.add_argument("--steps", type=int, default=150, help="optimizer steps")
    tr.add_argument("--batch", type=int, default=6, help="pairs (click sequences) per step")
    tr.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    tr.add_argument("--hidden", type=int, default=64, help="hidden units of each MLP")
    tr.add_argument("--iterative-clicks", type=int, default=1, help="robot clicks after the first (ICL)")
    tr.add_argument("--first-loss", choices=["central", "expected", "mean", "best"], default="central",
                    help="the first click's candidates: the soft choice by predicted IoU x click centrality, as the "
                         "engine chooses (central, default; decision 0022), by predicted IoU alone (expected), all "
                         "scored (mean) or the best one (best, as SAM trains)")
    tr.add_argument("--sources", default=",".join(SOURCES),
                    help=f"comma-separated training sources (default {','.join(SOURCES)})")
    tr.add_argument("--weights", default="PascalPart=0.7,COCO128=0.2,DAVIS2016_dev=0.1", metavar="SRC=W,...",
                    help="how often each source is drawn for a batch (default PascalPart=0.7,COCO128=0.2,"
                         "DAVIS2016_dev=0.1)")
    tr.add_argument("--fold", default="0/2", metavar="K/N",
                    help="train on PascalPart fold K of N (images in sorted order, every N-th); "
                         "'none': no PascalPart (default 0/2; evaluate on the other folds)")
    tr.add_argument("--seed", type=int, default=0)


def parse_fold(text: str) -> tuple[int | None, int]:
    if text.strip().lower() == "none":
        return None, 2
    k, sep, n = text.partition("/")
    try:
        fold, folds = int(k), int(n)
    except ValueError:
        raise ClickmaskError(f"--fold {text!r}: use K/N, e.g. 0/2, or none") from None
    if not sep or folds < 2 or not 0 <= fold < folds:
        raise ClickmaskError(f"--fold {text!r}: use K/N with 0 <= K < N and N >= 2")
    return fold, folds


def parse_weights(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (i.strip() for i in text.split(",") if i.strip()):
        name, sep, value = item.partition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or name.strip() not in SOURCES or weight < 0:
            raise ClickmaskError(f"--weights: {item!r} is not SOURCE=WEIGHT (sources: {', '.join(SOURCES)})")
        out[name.strip()] = weight
    return out


def command(args: argparse.Namespace) -> str:
    """The run's command line with every option spelled out (kept in summary.json)."""
    threads = os.environ.get("CLICKMASK_THREADS")
    return ((f"CLICKMASK_THREADS={threads} " if threads else "")
            + f"clickmask train-reference --out {args.out} --fold {args.fold} --steps {args.steps} "
              f"--batch {args.batch} --lr {args.lr} --hidden {args.hidden} --iterative-clicks {args.iterative_clicks} "
              f"--first-loss {args.first_loss} --sources {args.sources} --weights {args.weights} --seed {args.seed}"
            + (f" --data-root {args.data_root}" if args.data_root else "")
            + (f" --model {args.model}" if args.model else ""))


def run(args: argparse.Namespace) -> int:
    for name in ("steps", "batch", "hidden"):
        if getattr(args, name) < 1:
            raise ClickmaskError(f"--{name} must be at least 1")
    sources = tuple(s.strip() for s in args.sources.split(",") if s.strip())
    unknown = [s for s in sources if s not in SOURCES]
    if unknown or not sources:
        raise ClickmaskError(f"--sources: unknown {unknown[0]!r}" if unknown else "--sources: none given")
    fold, folds = parse_fold(args.fold)
    weights = parse_weights(args.weights)
    try:
        from clickmask.training.loop import ClickConfig
        from clickmask.training.reference_prompts import ReferenceTrainConfig, run_train_reference
    except ImportError as exc:
        raise ClickmaskError(f"training needs PyTorch: pip install 'clickmask[learn]' ({exc})") from None

    clicks = ClickConfig(max_pos=1, max_neg=0, iterative_clicks=args.iterative_clicks, batch_size=args.batch,
                         first_loss=args.first_loss)
    config = ReferenceTrainConfig(out=args.out, data_root=args.data_root, model=args.model, steps=args.steps,
                                  lr=args.lr, hidden=args.hidden, fold=fold, folds=folds, sources=sources,
                                  seed=args.seed, clicks=clicks, weights=weights, command=command(args))
    with tqdm(total=args.steps, desc="training", disable=None) as bar:
        def progress(i: int, loss: float) -> None:
            bar.update()
            bar.set_postfix_str(f"loss {loss:.4f}")

        summary = run_train_reference(config, progress)
    print(f"validation pairs ({summary['n_val']}): ICL loss {summary['val_without']['loss']:.4f} without prompts, "
          f"{summary['val_with']['loss']:.4f} with; IoU per click step {summary['val_without']['iou_per_step']} -> "
          f"{summary['val_with']['iou_per_step']}")
    print(f"wrote {args.out / 'reference_prompts.npz'}, summary.json, train.log")
    return 0
