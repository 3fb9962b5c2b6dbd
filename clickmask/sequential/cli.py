"""``clickmask eval --sequential``: options and command (wired into :mod:`clickmask.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from clickmask.errors import ClickmaskError


#: What ``--preset app`` stands for: proposals, adaptation and first-click memory as the app runs them.
APP_PRESET = ("--icp", "--icp-check 4", "--icp-mask", "--icp-map", "--opo", "--opo-accepted-only", "--opo-gate 10",
              "--granularity")


def apply_preset(args: argparse.Namespace) -> None:
    """Set the options a ``--preset`` stands for on parsed ``eval`` arguments (in place).

    ``app``: the app's proposals (the object map, the checked bank before it,
    an accepted proposal starting from its mask), its OPO (gate of
    :attr:`OPOConfig.gate` objects, learning only what the user accepted: for
    the robot, objects that reached the stopping IoU) and its first-click
    memory. The OPO options' defaults are the app's :class:`OPOConfig`. Kept
    in step with :mod:`clickmask.server` by a test.
    """
    if args.preset != "app":
        return
    from clickmask.sequential.proposal import DEFAULT_CANDIDATES

    args.icp = args.icp_mask = args.icp_map = args.opo = args.opo_accepted_only = args.granularity = True
    args.icp_check = args.icp_check or DEFAULT_CANDIDATES


def opo_config(args: argparse.Namespace):
    """The :class:`~clickmask.sequential.opo.OPOConfig` of parsed ``eval`` arguments."""
    from clickmask.sequential.opo import OPOConfig

    return OPOConfig(delta=args.opo_delta, steps=args.opo_steps, batch_size=args.opo_batch,
                     memory=args.opo_memory, lr=args.opo_lr,
                     iterative=args.opo_iterative, crops=not args.opo_full_image_only,
                     gate=args.opo_gate, crop_views=args.opo_crop_views, gate_test=args.opo_gate_test,
                     seed=args.opo_seed, optimizer=args.opo_optimizer)


def add_arguments(ev: argparse.ArgumentParser) -> None:
    """Add the sequential-benchmark options to the ``eval`` subcommand."""
    from clickmask.sequential.opo import OPOConfig

    opo_gate = OPOConfig.gate
    group = ev.add_argument_group("sequential benchmark (SIIS)")
    group.add_argument("--sequential", action="store_true",
                       help="annotate per-category sequences in order (COCO-style instances.json or per-video folders)")
    group.add_argument("--preset", choices=("app",), default=None,
                       help="with --sequential: 'app' = the annotation app's configuration (" + " ".join(APP_PRESET)
                       + "); other options still apply")
    group.add_argument("--icp", action="store_true", help="with --sequential: initial click proposals from a click bank")
    group.add_argument("--opo", action="store_true",
                       help="with --sequential: online per-category adaptation on the finished masks")
    group.add_argument("--granularity", action="store_true",
                       help="with --sequential: a per-category memory of which mask a first click should give "
                            "(needs the refined inference)")
    group.add_argument("--limit-sequences", type=int, default=None, metavar="N", help="only the first N sequences")
    group.add_argument("--categories", default=None, metavar="A,B",
                       help="only these sequences (comma-separated category / video names), for experiments")
    group.add_argument("--min-instances", type=int, default=5, metavar="N",
                       help="sequences need at least N objects (default 5)")
    group.add_argument("--min-area", type=int, default=1000, metavar="PX",
                       help="instances.json datasets: objects below PX pixels are left out (default 1000)")
    group.add_argument("--frame-step", type=int, default=5, metavar="K",
                       help="per-video datasets: every K-th frame is one object (default 5)")
    group.add_argument("--stop-iou", type=float, default=0.90,
                       help="the robot stops an object at this IoU (its mask is then the annotation; default 0.90)")
    group.add_argument("--icp-smooth", type=int, default=3, metavar="K",
                       help="mean filter size on the 64x64 similarity grid (default 3)")
    group.add_argument("--icp-aggregate", choices=("mean", "max"), default="mean",
                       help="similarity to the click bank: mean over its features (SIIS, default) or the max")
    group.add_argument("--icp-check", type=int, default=0, metavar="K",
                       help="with --icp: segment the K best similarity peaks and propose the centre of the mask most "
                            "like an object already finished (0 = the bank's plain proposal)")
    group.add_argument("--icp-mask", action="store_true",
                       help="with --icp-check: an accepted proposal starts from the mask the check found (as the "
                            "app does on Enter) instead of predicting its click afresh")
    group.add_argument("--icp-map", action="store_true",
                       help="with --icp: once a category has a finished object, propose the maximum of its object "
                            "map (a linear discriminant on the embedding, fit on the finished masks) and start an "
                            "accepted proposal from the decoder's mask shaped by that map")
    group.add_argument("--icp-follow", action="store_true",
                       help="with --icp: a proposal inside another not yet annotated object of the category on the "
                            "same image makes the robot annotate that object now, as a user following the proposals "
                            "would (not the fixed-order protocol: report such runs apart)")
    group.add_argument("--icp-adapted", action="store_true",
                       help="with --icp --opo: proposals compare the OPO-adapted features (SIIS's purified R4)")
    group.add_argument("--opo-delta", type=int, default=2, metavar="D",
                       help="object n uses the adapter trained on objects up to n - D (default 2)")
    group.add_argument("--opo-steps", type=int, default=4, help="SGD steps after each finished object (default 4)")
    group.add_argument("--opo-batch", type=int, default=8, help="samples per SGD step (default 8)")
    group.add_argument("--opo-memory", type=int, default=32, help="recent finished objects trained on (default 32)")
    group.add_argument("--opo-lr", type=float, default=5e-3, help="SGD learning rate (default 5e-3)")
    group.add_argument("--opo-optimizer", choices=("sgd", "adam"), default="sgd",
                       help="OPO's optimizer: 'sgd' (SIIS, with momentum 0.9; default) or 'adam' (set --opo-lr too)")
    group.add_argument("--opo-accepted-only", action="store_true",
                       help="OPO learns only objects that reached --stop-iou (a user fixes the others by hand first)")
    group.add_argument("--opo-iterative", type=int, default=0, metavar="K",
                       help="OPO: K robot clicks after the random ones, previous mask fed back, ICL loss (default 0)")
    group.add_argument("--opo-gate", type=int, default=opo_gate, metavar="W",
                       help="with --opo: serve a category's adapter only while it beat the plain model on the "
                            f"last W finished objects it had not been trained on (default {opo_gate}, as in the app; "
                            "0: always serve it)")
    group.add_argument("--opo-seed", type=int, default=0,
                       help="with --opo: seed of the clicks re-simulated for training (default 0); "
                            "another seed shows the run-to-run spread")
    group.add_argument("--opo-gate-test", choices=("proxy", "robot"), default="proxy",
                       help="with --opo: how the gate tests an adapter on a finished object: 'proxy' (low-res "
                            "PyTorch decoder on the whole image, default) or 'robot' (replay the robot with the "
                            "real inference, zoom-in included, with and without the adapter)")
    group.add_argument("--opo-crop-views", action="store_true",
                       help="with --opo: also train on, and gate-test on, each finished object's zoom-in crop "
                            "(the view the robot's later clicks use)")
    group.add_argument("--opo-full-image-only", action="store_true",
                       help="OPO: adapt only the full image's embedding, not zoom-in crops (trained on full images)")
    group.add_argument("--opo-oracle", type=int, default=0, metavar="STEPS",
                       help="a headroom measurement, not a method: each category's adapter is first trained for "
                            "STEPS Adam steps on the ground truths of all its objects (those it is then tested on), "
                            "then kept fixed; --opo-lr (Adam's rate here), --opo-batch and --opo-iterative apply")
    group.add_argument("--compare", type=Path, default=None, metavar="BASE.json",
                       help="also print the NoC change against a sequential report (e.g. the baseline)")


def run(args: argparse.Namespace) -> int:
    """Run the sequential benchmark from parsed ``eval`` arguments."""
    from tqdm import tqdm

    from clickmask.engine.inference import InferenceOptions
    from clickmask.engine.loader import load_predictor
    from clickmask.evaluation.datasets import default_data_root
    from clickmask.evaluation.report import write_json
    from clickmask.sequential.granularity import RULE as GRANULARITY_RULE
    from clickmask.sequential.report import build_report, compare, format_comparison, format_table
    from clickmask.sequential.runner import SequentialOptions, run_sequences
    from clickmask.sequential.sequences import SequenceOptions, build_sequences, select_sequences

    apply_preset(args)
    if args.max_clicks < 1:
        raise ClickmaskError(f"--max-clicks must be at least 1, got {args.max_clicks}")
    if args.icp_smooth < 1:
        raise ClickmaskError(f"--icp-smooth must be at least 1, got {args.icp_smooth}")
    if args.limit is not None:
        raise ClickmaskError("--limit does not apply to --sequential; use --limit-sequences")
    if args.icp_check < 0:
        raise ClickmaskError(f"--icp-check must be at least 0, got {args.icp_check}")
    if args.icp_check and (not args.icp or args.icp_adapted):
        raise ClickmaskError("--icp-check needs --icp and does not combine with --icp-adapted")
    if args.icp_mask and not args.icp_check:
        raise ClickmaskError("--icp-mask needs --icp-check")
    if args.icp_map and (not args.icp or args.icp_adapted):
        raise ClickmaskError("--icp-map needs --icp and does not combine with --icp-adapted")
    if args.icp_follow and not args.icp:
        raise ClickmaskError("--icp-follow needs --icp")
    if args.icp_adapted and not (args.icp and args.opo):
        raise ClickmaskError("--icp-adapted needs --icp and --opo")
    if args.opo_oracle < 0 or (args.opo_oracle and args.opo):
        raise ClickmaskError("--opo-oracle needs a positive number of steps and does not combine with --opo")
    base_report = None
    if args.compare is not None:
        try:
            base_report = json.loads(Path(args.compare).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ClickmaskError(f"{args.compare}: cannot read report ({exc})") from None
    root = args.data_root or default_data_root()
    seq_options = SequenceOptions(min_instances=args.min_instances, min_area=args.min_area, frame_step=args.frame_step)
    sequences = build_sequences(root, args.dataset, seq_options, limit=args.limit_sequences)
    if args.categories is not None:
        sequences = select_sequences(sequences, args.categories.split(","), args.dataset)
    infer = InferenceOptions.parse(args.infer)
    predictor = load_predictor(args.model, disk_cache=args.disk_cache, options=infer)
    options = SequentialOptions(
        max_clicks=args.max_clicks, mask_feedback=not args.no_mask_feedback, stop_iou=args.stop_iou,
        icp=args.icp, icp_smooth=args.icp_smooth, icp_aggregate=args.icp_aggregate, granularity=args.granularity,
        opo_accepted_only=args.opo_accepted_only, icp_adapted=args.icp_adapted, icp_check=args.icp_check,
        icp_mask=args.icp_mask, icp_follow=args.icp_follow, icp_map=args.icp_map,
    )
    adapter = None
    if args.opo:
        from clickmask.sequential.opo import OnlineAdapter

        adapter = OnlineAdapter.for_predictor(predictor, opo_config(args))
    elif args.opo_oracle:
        from clickmask.sequential.oracle import OracleAdapter

        adapter = OracleAdapter(predictor, sequences, args.opo_oracle, opo_config(args))
    total = sum(len(s.samples) for s in sequences)
    with tqdm(total=total, desc=f"{args.dataset} sequential", unit="obj", disable=None) as bar:
        results = run_sequences(predictor, sequences, options, adapter, on_result=lambda r: bar.update(1))
    described = {"mask_feedback": options.mask_feedback, "icp": options.icp, "opo": args.opo,
                 "granularity": options.granularity, **infer.changed()}
    if options.granularity:
        described["granularity_rule"] = GRANULARITY_RULE
    if options.icp:
        described["icp_smooth"] = options.icp_smooth
        described["icp_aggregate"] = options.icp_aggregate
        described["icp_adapted"] = options.icp_adapted and args.opo
        described["icp_check"] = options.icp_check
        if options.icp_mask:
            described["icp_mask"] = True
        if options.icp_map:
            described["icp_map"] = True
        if options.icp_follow:
            described["icp_follow"] = True
    if args.preset is not None:
        described["preset"] = args.preset
    if args.opo:
        described["opo_config"] = {**adapter.describe(), "accepted_only": options.opo_accepted_only}
    elif adapter is not None:
        described["opo_oracle"] = adapter.describe()
    report = build_report(results, args.dataset, predictor.model_id, described, options.max_clicks, options.stop_iou)
    if args.opo and adapter.config.gate:
        report["opo_gate"] = adapter.gate_log()
    print(format_table(report))
    if base_report is not None:
        for key in ("85", "90"):
            print(format_comparison(compare(base_report, report, key)))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    return 0
