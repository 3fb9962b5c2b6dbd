"""``clickmask demo``: segment the bundled sample images with the robot user.

Writes, into the output folder: one overlay PNG per sample and click count
(clicks 1, 3 and the first click reaching 90% IoU), ``report.json`` (the same
schema as ``clickmask eval --json``), ``report.md`` and ``miou.png``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from clickmask.cli.options import add_model
from clickmask.engine.loader import load_predictor
from clickmask.errors import ClickmaskError
from clickmask.evaluation.metrics import noc
from clickmask.evaluation.report import build_report, format_table, plot_miou, write_json
from clickmask.evaluation.runner import EvalOptions, evaluate_object, peak_rss_mb
from clickmask.io.atomic import atomic_write_text
from clickmask.io.images import save_png
from clickmask.samples import load_samples
from clickmask.visualize import overlay

logger = logging.getLogger(__name__)


def add_parser(sub) -> None:
    demo = sub.add_parser("demo", help="segment the bundled samples with simulated clicks")
    demo.set_defaults(run=run)
    demo.add_argument("--out", type=Path, default=Path("clickmask-demo"))
    add_model(demo)
    demo.add_argument("--max-clicks", type=int, default=5)


def run(args: argparse.Namespace) -> int:
    run_demo(args.out, model=args.model, max_clicks=args.max_clicks)
    return 0


def run_demo(out: Path, model: str | None = None, max_clicks: int = 20) -> dict:
    """Run the robot user on every bundled sample and write overlays + a NoC report."""
    out = Path(out)
    try:
        predictor = load_predictor(model)
    except ClickmaskError as exc:
        logger.warning("%s", exc)
        print(f"clickmask: model unavailable ({exc}); the demo uses the weight-free GrabCut fallback")
        predictor = load_predictor("grabcut")
    options = EvalOptions(max_clicks=max_clicks)
    results = []
    for sample in load_samples():
        predictor.set_image(sample.image)
        result = evaluate_object(predictor, sample.mask, None, options, name=sample.name, keep_masks=True)
        results.append(result)
        shown = sorted({1, min(3, len(result.masks)), noc(result.ious, 0.90, max_clicks)})
        for k in shown:
            if k <= len(result.masks):
                path = out / f"{sample.name}_click{k:02d}.png"
                save_png(path, overlay(sample.image, result.masks[k - 1], result.clicks[:k], gt=sample.mask))
        print(
            f"{sample.name:12s} IoU after 1 click {result.ious[0]:.3f}, after 3 {result.ious[2]:.3f}; "
            f"NoC@90 {noc(result.ious, 0.90, max_clicks)}"
        )
    report = build_report(results, "clickmask-samples", predictor.model_id,
                          {"mask_feedback": True}, max_clicks, peak_rss_mb())
    table = format_table(report)
    print(table)
    write_json(report, out / "report.json")
    plot_miou([report], out / "miou.png", title="bundled samples: mIoU vs clicks")
    atomic_write_text(
        out / "report.md",
        "# clickmask demo\n\n```\n" + table + "\n```\n\n"
        + ("**Fallback backend (GrabCut): install the model with `clickmask models pull`.**\n\n"
           if predictor.is_fallback else "")
        + "Overlays: blue = predicted mask, white = ground-truth outline, "
        "green/red dots = positive/negative clicks.\n\n![mIoU](miou.png)\n",
    )
    print(f"wrote overlays and report to {out}/")
    return report
