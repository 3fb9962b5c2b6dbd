"""Propagation speed with the frames' embeddings ready, and the encoder's frames per second.

For each of the first ``--sequences`` DAVIS-layout videos (``--frames`` frames
each): every frame's embedding is computed first (timed: the encoder's frames
per second), then the ground-truth mask of frame 0 is propagated through the
others (the app's default options). Each propagated frame's time covers the
memory read-out, the decoder and the upsampling, with its embedding in the
cache: what the app spends per frame once its background encoder is done.

Run: ``CLICKMASK_THREADS=2 python benchmarks/propagation_speed.py --json benchmarks/results/propagation_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from clickmask.engine.loader import load_predictor
from clickmask.engine.refine.predictor import sam_model
from clickmask.evaluation.video.data import load_video_dataset
from clickmask.propagation.propagator import Track


def measure(data_root: Path, dataset: str, sequences: int, frames: int) -> dict:
    model = sam_model(load_predictor(None, disk_cache=False, memory_items=frames + 4))  # every frame encoded here
    rows = []
    for sample in load_video_dataset(data_root, dataset, limit=sequences):
        source, gts = sample.open(max_frames=frames)
        t0 = time.perf_counter()
        for i in range(len(source)):
            model.image_embedding(source.frame(i))
        encode_s = time.perf_counter() - t0
        track = Track(model, source)
        track.annotate(0, gts[0])
        track.propagate(0)
        ms = track.propagate_ms
        rows.append({"sequence": sample.name, "frames": len(source), "encoder_fps": round(len(source) / encode_s, 3),
                     "propagate_ms_median": round(float(np.median(ms)), 1),
                     "propagate_ms_p90": round(float(np.percentile(ms, 90)), 1)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    all_fps = [r["encoder_fps"] for r in rows]
    return {"benchmark": "propagation_speed", "dataset": dataset, "rows": rows,
            "propagate_ms_median": round(float(np.median([r["propagate_ms_median"] for r in rows])), 1),
            "encoder_fps_median": round(float(np.median(all_fps)), 3),
            "threads": os.environ.get("CLICKMASK_THREADS", "default"),
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "load_average": [round(v, 2) for v in os.getloadavg()]},
            "command": f"CLICKMASK_THREADS={os.environ.get('CLICKMASK_THREADS', '2')} python benchmarks/propagation_speed.py "
                       f"--dataset {dataset} --sequences {sequences} "
                       f"--frames {frames}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("CLICKMASK_DATA", "../shared/data")))
    parser.add_argument("--dataset", default="DAVIS2016_dev")
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    from app_latency import run_and_write  # the same JSON writer as the app's latency benchmark

    return run_and_write(lambda: measure(args.data_root, args.dataset, args.sequences, args.frames), args.json_path)


if __name__ == "__main__":
    sys.exit(main())
