"""``clickmask eval-video``: the DAVIS interactive benchmark with clicks (CiVOS's protocol), videos and volumes.

8 rounds per sequence: a click on the frame where the object is largest,
then up to 3 corrective clicks on the worst frame, each round propagated
through the video and fused (:mod:`clickmask.evaluation.video.protocol`).
Reports J&F per round, R-AUC-J&F, clicks, seconds per round, per-frame
propagation time and the encoder's frames per second; ``--pointer`` adds the
same run with the propagation's confidence choosing each round's frame.
Frame embeddings go to the disk cache, so a repeated run only decodes. The
``--json`` report is rewritten after every sequence (``"complete"`` says
whether all sequences are in it). A volume dataset (``labels/`` with
``volumes/`` or ``dicom/``) runs the same rounds along each volume's slices per
structure instead (:mod:`clickmask.evaluation.video.volumes`).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from tqdm import tqdm

from clickmask.cli.options import add_data_root, add_infer, add_model
from clickmask.engine.loader import load_predictor
from clickmask.engine.refine import InferenceOptions
from clickmask.engine.refine.predictor import sam_model
from clickmask.errors import ClickmaskError
from clickmask.evaluation.report import write_json
from clickmask.evaluation.runner import peak_rss_mb
from clickmask.evaluation.video.data import load_video_dataset
from clickmask.evaluation.video.protocol import ProtocolOptions, run_sequence
from clickmask.evaluation.video.report import format_table, summarize_runs
from clickmask.evaluation.video.volumes import (MAX_ROUNDS, MIN_VOXELS, SLICE_MAX_CLICKS, SliceFrames, format_structures,
                                                is_volume_dataset, load_volume_dataset, min_error_area,
                                                run_structure, structures, summarize_structures)
from clickmask.io.datasets import default_data_root
from clickmask.propagation.decode import DecodeOptions
from clickmask.propagation.propagator import PropagationOptions


def add_parser(sub) -> None:
    ev = sub.add_parser("eval-video", help="DAVIS interactive benchmark with clicks (propagation, fusion), "
                                           "for videos and volumes")
    ev.set_defaults(run=run)
    ev.add_argument("--dataset", required=True,
                    help="dataset folder name: videos in the DAVIS layout (e.g. DAVIS2016_dev) or volumes "
                         "(labels/ with volumes/ or dicom/, e.g. Medical3D), told apart by the layout")
    add_data_root(ev)
    add_model(ev)
    add_infer(ev, what="the recommended set; for volumes with first=finest")
    ev.add_argument("--rounds", type=int, default=8, help="interaction rounds (default 8)")
    ev.add_argument("--fusion", choices=("fuse", "overwrite"), default="fuse",
                    help="a new round's masks on frames an earlier round produced: fuse (default) or overwrite")
    ev.add_argument("--fresh-session", action="store_true",
                    help="correct a frame from its clicks alone, not starting from its propagated mask")
    ev.add_argument("--propagation", default="", metavar="OPTS",
                    help="propagation parameters, e.g. 'k=20,dims=64,every=5,box=0' "
                         "(fields of PropagationOptions and DecodeOptions)")
    ev.add_argument("--json", dest="json_path", type=Path, help="write the report JSON here")
    video = ev.add_argument_group("videos (DAVIS layout)")
    video.add_argument("--limit", type=int, default=None, help="only the first N sequences")
    video.add_argument("--frames", type=int, default=None, help="only the first N frames of each sequence")
    video.add_argument("--pointer", action="store_true",
                       help="also run with the worst-frame pointer (the propagation's confidence) choosing each frame")
    vol = ev.add_argument_group("volumes (slices along z are the frames; 3D Dice, clicks against slice-by-slice)")
    vol.add_argument("--min-voxels", type=int, default=MIN_VOXELS,
                     help=f"structures of at least this many voxels (default {MIN_VOXELS})")
    vol.add_argument("--structures", type=int, default=None, metavar="N",
                     help="only the first N structures of each volume, by label value (default: all)")
    vol.add_argument("--max-rounds", type=int, default=MAX_ROUNDS,
                     help=f"after --rounds, go on until Dice 0.85, at most this many rounds (default {MAX_ROUNDS})")
    vol.add_argument("--slice-max-clicks", type=int, default=SLICE_MAX_CLICKS,
                     help=f"slice-by-slice baseline: clicks per slice at most (default {SLICE_MAX_CLICKS})")


def parse_propagation(text: str, fusion: str) -> PropagationOptions:
    """``k=20,box=0,...`` -> PropagationOptions (DecodeOptions fields go to ``decode``)."""
    prop = {f.name: f.type for f in dataclasses.fields(PropagationOptions) if f.name != "decode"}
    dec = {f.name: f.type for f in dataclasses.fields(DecodeOptions)}
    values: dict = {"fusion": fusion}
    decode: dict = {}
    for item in (p.strip() for p in text.split(",") if p.strip()):
        name, _, raw = item.partition("=")
        kind = prop.get(name) or dec.get(name)
        if kind is None:
            raise ClickmaskError(f"unknown propagation option {name!r}; known: {', '.join(sorted({**prop, **dec}))}")
        try:
            if kind in ("bool", bool):
                value = raw.strip().lower() not in ("0", "false", "off", "no") if raw else True
            elif kind in ("int", int):
                value = int(raw)
            elif kind in ("float", float):
                value = float(raw)
            else:
                value = raw.strip()
        except ValueError:
            raise ClickmaskError(f"propagation option {item!r}: expected a {kind} value") from None
        (values if name in prop else decode)[name] = value
    try:
        return PropagationOptions(decode=DecodeOptions(**decode), **values)
    except ValueError as exc:
        raise ClickmaskError(f"--propagation: {exc}") from None


def encoder_fps(model, frames, n: int = 3) -> float:
    """Frames per second of the encoder alone on ``n`` frames (cache bypassed)."""
    t0 = time.perf_counter()
    count = min(n, len(frames))
    for i in range(count):
        model.encode(frames.frame(i))
    return count / (time.perf_counter() - t0)


def run(args: argparse.Namespace) -> int:
    if args.rounds < 1:
        raise ClickmaskError(f"--rounds must be at least 1, got {args.rounds}")
    root = Path(args.data_root or default_data_root())
    volumes = is_volume_dataset(root / args.dataset)
    samples = load_volume_dataset(root, args.dataset) if volumes else load_video_dataset(root, args.dataset,
                                                                                          limit=args.limit)
    infer = InferenceOptions.parse(args.infer)
    if volumes and args.infer is None:
        infer = dataclasses.replace(infer, first="finest")  # a slice's first click: the organ (decision 0021)
    predictor = load_predictor(args.model, disk_cache=True, memory_items=16, options=infer)
    model = sam_model(predictor)
    if model is None:
        raise ClickmaskError("eval-video needs a SAM model (propagation reads its embeddings), not the fallback")
    propagation = parse_propagation(args.propagation, args.fusion)
    report: dict = {"dataset": args.dataset, "model": predictor.model_id,
                    "options": {"inference": infer.changed(), "propagation": propagation.describe(),
                                "protocol": ProtocolOptions(rounds=args.rounds, start_from_mask=not args.fresh_session,
                                                            max_frames=args.frames).describe()}}
    if volumes:
        return run_volumes(args, samples, predictor, model, propagation, report)
    modes = [False, True] if args.pointer else [False]
    first_frames, _ = samples[0].open(3)
    report["encoder_fps"] = encoder_fps(model, first_frames)
    runs: dict[bool, list] = {mode: [] for mode in modes}
    with tqdm(total=len(samples) * args.rounds * len(modes), desc=args.dataset, unit="round", disable=None) as bar:
        for done, sample in enumerate(samples, start=1):
            frames, gts = sample.open(args.frames)
            for pointer in modes:  # both runs on a sequence before the next: a partial report compares like with like
                bar.set_postfix_str(sample.name + (" (pointer)" if pointer else ""))
                options = ProtocolOptions(rounds=args.rounds, pointer=pointer, start_from_mask=not args.fresh_session,
                                          max_frames=args.frames)
                runs[pointer].append(run_sequence(predictor, model, sample.name, frames, gts, options, propagation,
                                                  on_round=lambda r, t: bar.update(1) and False))
            for pointer in modes:
                report["pointer" if pointer else "gt"] = summarize_runs(runs[pointer])
            report["complete"] = done == len(samples)
            report["peak_rss_mb"] = peak_rss_mb()
            if args.json_path:  # after every sequence, so a long run that is stopped still leaves its numbers
                write_json(report, args.json_path)
    print(format_table(report))
    if args.json_path:
        write_json(report, args.json_path)
        print(f"wrote {args.json_path}")
    return 0


def run_volumes(args: argparse.Namespace, cases, predictor, model, propagation: PropagationOptions,
                report: dict) -> int:
    """The volume benchmark (:mod:`clickmask.evaluation.video.volumes`); the report is rewritten per structure."""
    if args.min_voxels < 1 or args.slice_max_clicks < 1 or (args.structures is not None and args.structures < 1):
        raise ClickmaskError("--min-voxels, --slice-max-clicks and --structures must be at least 1")
    opened = []
    for case in cases:
        volume, labels = case.open()
        chosen = structures(labels, args.min_voxels)[:args.structures]
        opened.append((case, volume, labels, chosen))
    report["options"]["volumes"] = {"min_voxels": args.min_voxels, "structures_per_volume": args.structures,
                                    "max_rounds": args.max_rounds,
                                    "slice_max_clicks": args.slice_max_clicks, "axis": "z",
                                    "window": "CT: ct-abdomen preset; other: 0.5..99.5 percentiles"}
    report["cases"] = [{"name": c.name, "shape": list(v.shape), "modality": v.modality or "unknown",
                        "structures": len(s)} for c, v, _, s in opened]
    results = []
    total = sum(len(s) for *_, s in opened)
    with tqdm(total=total * (args.rounds + 1), desc=args.dataset, unit="step", disable=None) as bar:
        for case, volume, labels, chosen in opened:
            frames = SliceFrames(volume)
            if "encoder_fps" not in report:
                report["encoder_fps"] = encoder_fps(model, frames)
            h, w = volume.shape[1:]
            options = ProtocolOptions(rounds=args.rounds, start_from_mask=not args.fresh_session,
                                      min_error_area=min_error_area(h, w))
            for label, _ in chosen:
                name = case.names.get(label, f"label {label}")
                bar.set_postfix_str(f"{case.name}:{name}")
                results.append(run_structure(predictor, model, case.name, label, name, frames, labels, options,
                                             propagation, slice_max_clicks=args.slice_max_clicks,
                                             max_rounds=args.max_rounds, on_step=lambda: bar.update(1)))
                report["volumes"] = summarize_structures(results, rounds=args.rounds)
                report["complete"] = len(results) == total
                report["peak_rss_mb"] = peak_rss_mb()
                if args.json_path:
                    write_json(report, args.json_path)
    if not results:
        raise ClickmaskError(f"no structure of at least {args.min_voxels} voxels in '{args.dataset}'")
    print(format_structures(report))
    if args.json_path:
        print(f"wrote {args.json_path}")
    return 0
