"""``clickmask eval``: the NoC benchmark with the standard robot user, and ``--sequential``.

The standard run annotates every object of a dataset on its own. With
``--sequential`` the objects of each category (COCO128: categories with at
least 5 instances of 1000 px or more; a video dataset: every 5th frame) are
annotated in a row with what the app learns from finished objects switched on
(``--learn``: initial click proposals, OPO, the first-click memory).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm import tqdm

from clickmask.cli.options import add_data_root, add_infer, add_model
from clickmask.engine.refine import InferenceOptions, InferenceStats, RefinedPredictor
from clickmask.engine.loader import load_predictor
from clickmask.errors import ClickmaskError
from clickmask.evaluation.report import build_report, format_table, plot_miou, write_json
from clickmask.evaluation.runner import EvalOptions, evaluate_samples, peak_rss_mb
from clickmask.io.datasets import LAYOUTS, MIN_INSTANCE_AREA, default_data_root, load_dataset

#: What ``--sequential`` can switch on; the default is all of it, the app's configuration.
LEARN_PARTS = ("icp", "opo", "granularity")


def add_parser(sub) -> None:
    ev = sub.add_parser("eval", help="NoC benchmark with the standard robot user (or --sequential)")
    ev.set_defaults(run=run)
    ev.add_argument("--dataset", required=True, help="dataset folder name, e.g. GrabCut, Berkeley, COCO128")
    add_data_root(ev)
    ev.add_argument("--layout", choices=LAYOUTS, default="auto",
                    help="dataset layout (default auto: instances.json, else instances/ maps, else images/+masks/)")
    ev.add_argument("--min-area", type=int, default=MIN_INSTANCE_AREA, metavar="PX",
                    help=f"with instance maps: the smallest object counted (default {MIN_INSTANCE_AREA} px)")
    add_model(ev)
    add_infer(ev)
    ev.add_argument("--max-clicks", type=int, default=20, help="clicks per object (default 20)")
    ev.add_argument("--limit", type=int, default=None,
                    help="only the first N objects (with --sequential: the first N sequences)")
    ev.add_argument("--no-mask-feedback", action="store_true",
                    help="do not feed the previous low-res logits back to the decoder (ablation)")
    ev.add_argument("--adapter", type=Path, default=None, metavar="CKPT",
                    help="apply an embedding adapter trained by 'clickmask train' (adapter.npz)")
    ev.add_argument("--disk-cache", action="store_true",
                    help="use the on-disk embedding cache (embedding times then include hits)")
    ev.add_argument("--json", dest="json_path", type=Path, help="write the report JSON here")
    ev.add_argument("--plot", type=Path, help="write the mIoU-vs-clicks PNG here")
    seq = ev.add_argument_group("sequential benchmark (SIIS): --sequential and its options")
    seq.add_argument("--sequential", action="store_true",
                    help="annotate each category's objects in a row, learning from the finished ones as the app does")
    seq.add_argument("--learn", default=",".join(LEARN_PARTS), metavar="PARTS",
                    help="with --sequential: what is learned, a comma-separated subset of "
                         f"{','.join(LEARN_PARTS)} (default: all, the app's configuration) or 'none' (the baseline)")
    seq.add_argument("--categories", default=None, metavar="A,B",
                    help="with --sequential: only these sequences (category or video names)")
    ref = ev.add_argument_group("reference-guided segmentation (RefCut): --reference and its options")
    ref.add_argument("--reference", action="store_true",
                    help="reference-guided segmentation (RefCut's protocol). A part dataset (PascalPart): every "
                         "part, touching pair of parts and whole object, the next object of its category as the "
                         "reference; an instance dataset (COCO128): touching pairs of instances, the next pair of "
                         "the same categories on another image; a video dataset (DAVIS2016_dev): every 10th "
                         "frame, the video's first frame as the reference")
    ref.add_argument("--configs", default=None, metavar="SPEC",
                    help="with --reference: 'name:uses;...' or known names (default: none, choose_positive_only, "
                         "choose, prior, points, all); uses from choose, prior, points, "
                         "learned or learned_first (with --reference-prompts), positive_only, or 'none'")
    ref.add_argument("--reference-prompts", default=None, metavar="NPZ[,NPZ...]",
                    help="with --reference: trained learned-prompt files (clickmask train-reference) for "
                         "configurations with the 'learned' use; each target uses one not trained on its image")
    ref.add_argument("--reference-prompts-fit", action="store_true",
                    help="with --reference-prompts: use the file that WAS trained on each target's image "
                         "(fit to the test: the learned prompts' headroom, never a result)")
    ref.add_argument("--every", type=int, default=1, metavar="N",
                    help="with --reference: every N-th target only (a quick, spread-out subset; default 1 = all)")
    ref.add_argument("--noc-every", type=int, default=1, metavar="N",
                    help="with --reference: click up to --max-clicks on every N-th target only, once on the "
                         "others (IoU after the first click on all, NoC on those; default 1 = all)")
    ref.add_argument("--local", type=int, default=0, metavar="K",
                    help="with --reference: K local positive prototypes (k-means) besides the mean (default 0)")


def parse_learn(text: str) -> set[str]:
    """``--learn`` -> the set of parts (empty for 'none')."""
    parts = {p.strip() for p in text.split(",") if p.strip()}
    if parts == {"none"}:
        return set()
    unknown = parts - set(LEARN_PARTS)
    if unknown or not parts:
        raise ClickmaskError(f"--learn: unknown part {sorted(unknown)[0] if unknown else text!r} "
                             f"(use a comma-separated subset of {','.join(LEARN_PARTS)}, or 'none')")
    return parts


def load_eval_predictor(args: argparse.Namespace):
    """The predictor an ``eval`` run clicks with: the model, its inference options and ``--adapter``."""
    infer = InferenceOptions.parse(args.infer)
    predictor = load_predictor(args.model, disk_cache=args.disk_cache, options=infer)
    if args.adapter is not None:
        from clickmask.learning.adapted import make_adapted
        from clickmask.training.checkpoint import load_checkpoint  # PyTorch: only with --adapter

        predictor, view = make_adapted(predictor, Path(args.adapter).stem)
        adapter, _ = load_checkpoint(args.adapter, view.spec)
        view.set_adapter(adapter.affine())
    return predictor, infer


def run(args: argparse.Namespace) -> int:
    if args.max_clicks < 1:
        raise ClickmaskError(f"--max-clicks must be at least 1, got {args.max_clicks}")
    if args.sequential and args.reference:
        raise ClickmaskError("--sequential and --reference are separate benchmarks: choose one")
    if args.sequential:
        return run_sequential(args)
    if args.reference:
        return run_reference(args)
    if (args.configs is not None or args.local or args.every != 1 or args.noc_every != 1
            or args.reference_prompts is not None or args.reference_prompts_fit):
        raise ClickmaskError("--configs, --every, --noc-every, --local and --reference-prompts need --reference")
    if args.categories is not None:
        raise ClickmaskError("--categories needs --sequential")
    root = args.data_root or default_data_root()
    samples = load_dataset(root, args.dataset, limit=args.limit, layout=args.layout, min_area=args.min_area)
    layout = {"layout": args.layout, "min_area": args.min_area} if args.layout != "auto" else {}
    predictor, infer = load_eval_predictor(args)
    if isinstance(predictor, RefinedPredictor):
        predictor.stats = InferenceStats()  # zoom-in crop counts for the report
    options = EvalOptions(max_clicks=args.max_clicks, mask_feedback=not args.no_mask_feedback)
    with tqdm(total=len(samples), desc=f"{args.dataset}", unit="obj", disable=None) as bar:
        results = evaluate_samples(predictor, samples, options, on_result=lambda r: bar.update(1))
    report = build_report(
        results, args.dataset, predictor.model_id,
        {"mask_feedback": options.mask_feedback, **infer.changed(), **layout,
         **({"adapter": str(args.adapter)} if args.adapter is not None else {})},
        options.max_clicks, peak_rss_mb(),
    )
    stats = predictor.stats if isinstance(predictor, RefinedPredictor) else None
    if stats is not None and stats.zoom_encodes:
        report["zoom"] = {"encodes": stats.zoom_encodes, "encodes_per_object": stats.zoom_encodes / report["n"],
                          "encode_median_ms": float(np.median(stats.zoom_encode_ms)) if stats.zoom_encode_ms else 0.0}
    print(format_table(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    if args.plot:
        plot_miou([report], args.plot, title=f"{args.dataset}: mIoU vs clicks")
        print(f"wrote {args.plot}")
    return 0


def run_sequential(args: argparse.Namespace) -> int:
    from clickmask.evaluation.sequential.benchmark import run_benchmark
    from clickmask.evaluation.sequential.report import format_table as format_sequential

    if args.adapter is not None or args.plot is not None:
        raise ClickmaskError("--adapter and --plot do not apply to --sequential")
    learn = parse_learn(args.learn)
    predictor, infer = load_eval_predictor(args)
    categories = args.categories.split(",") if args.categories else None
    report = run_benchmark(predictor, args.dataset, args.data_root or default_data_root(), learn,
                           max_clicks=args.max_clicks, mask_feedback=not args.no_mask_feedback,
                           limit=args.limit, categories=categories, described=infer.changed())
    print(format_sequential(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    return 0


def run_reference(args: argparse.Namespace) -> int:
    from clickmask.evaluation.reference.benchmark import format_table as format_reference
    from clickmask.evaluation.reference.benchmark import parse_configs
    from clickmask.evaluation.reference.benchmark import run_benchmark as run_reference_benchmark

    if args.adapter is not None or args.plot is not None or args.categories is not None:
        raise ClickmaskError("--adapter, --plot and --categories do not apply to --reference")
    configs = parse_configs(args.configs)
    prompts = None
    if args.reference_prompts:
        from clickmask.learning.reference_prompts import ReferencePrompts

        prompts = [ReferencePrompts.load(p.strip()) for p in args.reference_prompts.split(",") if p.strip()]
    infer = InferenceOptions.parse(args.infer)
    # references and zoom crops are re-read many times: keep more embeddings in memory
    predictor = load_predictor(args.model, disk_cache=args.disk_cache, options=infer, memory_items=48)
    if not isinstance(predictor, RefinedPredictor):
        predictor = RefinedPredictor(predictor, infer) if hasattr(predictor, "decode_candidates") else None
        if predictor is None:
            raise ClickmaskError("--reference needs a SAM model (not the GrabCut fallback)")
    root = (args.data_root or default_data_root()) / args.dataset

    files = {} if prompts is None else {"reference_prompts": args.reference_prompts,
                                        "reference_prompts_fit": args.reference_prompts_fit}

    def partial(report: dict) -> None:  # a long run leaves its numbers so far
        write_json({**report, "options": {**report["options"], **files}, "dataset": args.dataset,
                    "model": predictor.model_id, "infer": infer.changed()}, args.json_path)

    with tqdm(desc=f"{args.dataset} reference", unit="target", disable=None) as bar:
        report = run_reference_benchmark(predictor, root, configs, max_clicks=args.max_clicks, limit=args.limit,
                                         every=args.every, noc_every=args.noc_every,
                                         local=args.local, prompts=prompts, fit=args.reference_prompts_fit,
                                         on_result=lambda: bar.update(1),
                                         on_partial=partial if args.json_path else None)
    report["options"].update(files)
    report["dataset"] = args.dataset
    report["model"] = predictor.model_id
    report["infer"] = infer.changed()
    print(format_reference(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    return 0
