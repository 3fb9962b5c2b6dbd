"""``clickmask train``: an embedding adapter trained on a dataset (ICL + SUEM); needs PyTorch (``clickmask[learn]``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from clickmask.cli.options import add_data_root, add_model
from clickmask.errors import ClickmaskError


def add_parser(sub) -> None:
    tr = sub.add_parser("train", help="train an embedding adapter on a dataset (ICL + SUEM)")
    tr.set_defaults(run=run)
    tr.add_argument("--dataset", default="COCO128", help="dataset folder name (default COCO128)")
    add_data_root(tr)
    tr.add_argument("--out", type=Path, required=True, help="folder for adapter.npz, loss.png, train.log, summary.json")
    add_model(tr)
    tr.add_argument("--steps", type=int, default=100, help="optimizer steps")
    tr.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    tr.add_argument("--batch", type=int, default=4, help="click sequences per step")
    tr.add_argument("--limit", type=int, default=None, help="use only the first N objects")
    tr.add_argument("--suem", type=int, default=16, help="number of SUEM copy-paste samples to add")
    tr.add_argument("--iterative-clicks", type=int, default=3, help="robot clicks after the initial ones (ICL)")
    tr.add_argument("--loss", choices=["bce", "nfl"], default="bce",
                    help="per-step loss: binary cross-entropy (default) or normalized focal loss")
    tr.add_argument("--icl", choices=["linear", "uniform", "last"], default="linear", help="ICL step weights")
    tr.add_argument("--rank", type=int, default=None, help="low-rank adapter (default: full 1x1 conv)")
    tr.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    for name in ("steps", "batch", "suem", "iterative_clicks"):
        if getattr(args, name) < (1 if name in ("steps", "batch") else 0):
            raise ClickmaskError(f"--{name.replace('_', '-')} must not be {getattr(args, name)}")
    try:
        from clickmask.training.loop import ClickConfig
        from clickmask.training.offline import OfflineConfig, run_offline
    except ImportError as exc:
        raise ClickmaskError(f"training needs PyTorch: pip install 'clickmask[learn]' ({exc})") from None

    clicks = ClickConfig(iterative_clicks=args.iterative_clicks, loss=args.loss, icl=args.icl, batch_size=args.batch)
    config = OfflineConfig(out=args.out, dataset=args.dataset, data_root=args.data_root, model=args.model,
                           steps=args.steps, lr=args.lr, limit=args.limit, suem=args.suem, rank=args.rank,
                           seed=args.seed, clicks=clicks)
    summary = run_offline(config, lambda total, desc: tqdm(total=total, desc=desc, disable=None))
    before, after = summary["val_before"], summary["val_after"]
    if before and after:
        print(f"validation ICL loss {before['loss']:.4f} -> {after['loss']:.4f}; "
              f"IoU per click step {before['iou_per_step']} -> {after['iou_per_step']}")
    print(f"wrote {args.out / 'adapter.npz'}, loss.png, train.log, summary.json")
    return 0
