"""The annotation app under load: several annotators clicking at once, each on their own image.

A real server on localhost with the real model and the app's default inference; ``--users``
threads, each its own browser tab (``X-Clickmask-Tab``) and HTTP connection on its own image
of ``--dataset`` (the first ``--users`` objects). Each runs the standard robot user on its
object without pause (``--think`` seconds between clicks if given), finishes the object after
``--clicks`` clicks (fewer only when the mask is perfect) and starts it again, ``--objects`` times. Embeddings are computed before the clock starts (every image opened and
prefetched), so the figures are those of clicking, not of encoding new images.

A click refused because the queue is full (503) is clicked again after ``--retry`` seconds; its
round trip is counted from the first attempt. Reported: clicks per second in total, round trip
percentiles, per-user medians (fairness), refusals, and the most clicks seen waiting.

Run: ``python benchmarks/load.py --data-root ../shared/data --json benchmarks/results/load.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from app_latency import Client, run_and_write
from clickmask.errors import ClickmaskError


def _percentiles(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"n": int(v.size), "median_ms": round(float(np.median(v)), 1), "p90_ms": round(float(np.percentile(v, 90)), 1),
            "p99_ms": round(float(np.percentile(v, 99)), 1), "max_ms": round(float(v.max()), 1)}


def _from_runs(runs: dict, shape: tuple[int, int]) -> np.ndarray:
    """The mask of the app's row-major runs (background first, alternating), as the browser draws it."""
    values = np.arange(len(runs["runs"])) % 2 == 1
    return np.repeat(values, runs["runs"]).reshape(shape)


def _user(port: int, tab: str, image_id: int, truth: np.ndarray, clicks: int, objects: int, think: float,
          retry: float, out: dict) -> None:
    """One annotator: ``objects`` times the robot's clicks on its object, then finish."""
    from clickmask.geometry.masks import next_click

    client = Client(port, tab)
    trips, refused = [], 0
    for _ in range(objects):
        pred = np.zeros_like(truth)
        clicked = []
        for _ in range(clicks):
            click = next_click(truth, pred, None, clicked)
            if click is None:
                break
            clicked.append(click)
            if think:
                time.sleep(think)
            t0 = time.perf_counter()
            while True:
                status, res = client.send("POST", f"/api/images/{image_id}/clicks",
                                          {"x": click.x, "y": click.y, "positive": click.positive})
                if status != 503:
                    break
                refused += 1
                time.sleep(retry)
            if status != 200:
                raise ClickmaskError(f"user {tab}: click answered {status}: {res}")
            trips.append((time.perf_counter() - t0) * 1000)
            pred = _from_runs(res["runs"], truth.shape) if not res.get("empty") else np.zeros_like(truth)
        status, res = client.send("POST", f"/api/images/{image_id}/finish", {})
        if status != 200:
            client.send("DELETE", f"/api/images/{image_id}/clicks", None)
    out[tab] = {"round_trips_ms": trips, "refused": refused}


def measure(data_root: Path, dataset: str, users: int, clicks: int, objects: int, think: float,
            retry: float) -> dict:
    from clickmask.engine.loader import load_predictor
    from clickmask.io.datasets import load_dataset
    from clickmask.project import open_project
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer

    samples = load_dataset(data_root, dataset, limit=users)
    if len(samples) < users:
        raise ClickmaskError(f"{dataset} has {len(samples)} objects, fewer than --users {users}")
    folder = Path(tempfile.mkdtemp(prefix="clickmask-load-"))
    truths = {}
    for k, sample in enumerate(samples):
        name = f"{k:02d}{sample.image_path.suffix.lower()}"
        shutil.copyfile(sample.image_path, folder / name)
        truths[name] = sample.load_gt()
    store = open_project(folder)
    predictor = load_predictor(None)
    if predictor.is_fallback:
        raise ClickmaskError("the load benchmark needs the real model: run 'clickmask models pull'")
    state = AppState(store=store, predictor=predictor)
    waiting_seen = [0]
    results: dict = {}
    load_before = os.getloadavg()[0]
    try:
        with LiveServer(create_app(state)) as server:
            images = {i["path"]: i["id"] for i in store.list_images()}
            for image_id in images.values():
                state.open_image(image_id)
                state.prefetcher.wait_idle(300)
            stop = threading.Event()

            def watch() -> None:
                while not stop.wait(0.01):
                    waiting_seen[0] = max(waiting_seen[0], state.click_lock.waiting)

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            threads = [threading.Thread(target=_user, args=(server.port, f"user{k}", images[name], truths[name], clicks,
                                                            objects, think, retry, results))
                       for k, name in enumerate(sorted(images))]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            stop.set()
    finally:
        state.close()
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    if len(results) != users:
        raise ClickmaskError(f"only {len(results)} of {users} users finished (see the errors above)")
    trips = [t for r in results.values() for t in r["round_trips_ms"]]
    per_user = {tab: _percentiles(r["round_trips_ms"]) | {"refused": r["refused"]} for tab, r in sorted(results.items())}
    medians = [u["median_ms"] for u in per_user.values()]
    return {
        "model": predictor.model_id, "dataset": dataset, "users": users, "clicks_per_object": clicks,
        "objects_per_user": objects, "think_s": think, "retry_s": retry,
        "clicks": len(trips), "wall_s": round(wall, 1), "clicks_per_s": round(len(trips) / wall, 2),
        "round_trip": _percentiles(trips), "per_user": per_user,
        "fairness_max_over_min_user_median": round(max(medians) / min(medians), 2),
        "refused": sum(r["refused"] for r in results.values()), "most_waiting": waiting_seen[0],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--dataset", default="GrabCut")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--clicks", type=int, default=10, help="most clicks per object")
    parser.add_argument("--objects", type=int, default=3, help="objects each user annotates")
    parser.add_argument("--think", type=float, default=0.0, help="seconds between a user's clicks")
    parser.add_argument("--retry", type=float, default=0.2, help="seconds before clicking again after a 503")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    return run_and_write(lambda: measure(args.data_root, args.dataset, args.users, args.clicks, args.objects,
                                         args.think, args.retry), args.json_path)


if __name__ == "__main__":
    sys.exit(main())
