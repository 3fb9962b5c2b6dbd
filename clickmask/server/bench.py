"""Latency of the app as a user feels it, through a real HTTP server on localhost.

* click round trip: POST a click, get the mask back (PNG in JSON, what the browser uses),
  with the image's embedding ready; robot-user clicks on the bundled samples.
* next image: open image k (which prefetches k+1 and k+2), wait ``--prefetch-wait`` seconds,
  then time the first click on image k+1 (embeddings not on disk: a fresh memory cache).

Run: ``python -m clickmask.server.bench --json out.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clickmask.errors import ClickmaskError


class Client:
    """A keep-alive HTTP client for the JSON API."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        res = self.conn.getresponse()
        payload = json.loads(res.read() or b"null")
        if res.status != 200:
            raise ClickmaskError(f"{method} {path}: HTTP {res.status}: {payload}")
        return payload


def _robot_clicks(client: Client, image_id: int, truth: np.ndarray, n: int, predict_ms: list[float],
                  server_ms: list[float]) -> list[float]:
    """``n`` robot-user clicks on one object; returns the round-trip times (ms)."""
    from clickmask.evaluation.clicker import next_click

    pred = np.zeros_like(truth)
    clicked = []
    times = []
    for _ in range(n):
        click = next_click(truth, pred, None, clicked)
        if click is None:
            break
        clicked.append(click)
        t0 = time.perf_counter()
        res = client.call("POST", f"/api/images/{image_id}/clicks",
                          {"x": click.x, "y": click.y, "positive": click.positive})
        times.append((time.perf_counter() - t0) * 1000)
        pred = _current(client, image_id, truth.shape)  # untimed: only to place the next robot click
        predict_ms.append(res["predict_ms"])
        server_ms.append(res["server_ms"])
    client.call("DELETE", f"/api/images/{image_id}/clicks")
    return times


def _current(client: Client, image_id: int, shape: tuple[int, int]) -> np.ndarray:
    """The current click mask (via the PNG endpoint, untimed)."""
    import cv2

    client.conn.request("GET", f"/api/images/{image_id}/mask.png")
    res = client.conn.getresponse()
    data = res.read()
    if res.status != 200:
        return np.zeros(shape, bool)
    rgba = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    return rgba[..., 3] > 0


def measure(model: str | None, clicks: int, prefetch_wait: float, rounds: int, prefetch_ahead: int = 2,
            infer: str | None = None) -> dict:
    """Start a server on the sample project and measure; returns the result dict.

    ``infer``: inference options as for ``clickmask serve --infer`` (None = the app's default).
    """
    from clickmask.engine.inference import InferenceOptions
    from clickmask.engine.loader import load_predictor
    from clickmask.evaluation.clicker import next_click
    from clickmask.project import open_project
    from clickmask.samples import load_samples
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer
    from clickmask.server.sample import build_sample_project

    samples = {f"{s.name}.png": s.mask for s in load_samples()}
    folder = build_sample_project(Path(tempfile.mkdtemp(prefix="clickmask-bench-")))
    round_trips: list[float] = []
    next_first: list[float] = []
    next_open_first: list[float] = []
    ready: list[bool] = []
    predict_ms: list[float] = []
    server_ms: list[float] = []
    load_before = os.getloadavg()[0]
    model_id = None
    for r in range(rounds):
        store = open_project(folder)
        # fresh memory cache: prefetch really encodes
        predictor = load_predictor(model, disk_cache=False, options=InferenceOptions.parse(infer))
        if predictor.is_fallback:
            raise ClickmaskError("the benchmark needs the real model: run 'clickmask models pull'")
        model_id = predictor.model_id
        state = AppState(store=store, predictor=predictor, prefetch_ahead=prefetch_ahead)
        server = LiveServer(create_app(state)).start()
        client = Client(server.port)
        images = [i for i in store.list_images() if i["path"] in samples]
        # next-image latency: the user works on image k (its embedding is ready), the
        # prefetcher gets ``prefetch_wait`` seconds for k+1, then the first click on k+1
        for k in range(len(images) - 1):
            cur, nxt = images[k], images[k + 1]
            client.call("POST", f"/api/images/{cur['id']}/open")
            first = next_click(samples[cur["path"]], np.zeros_like(samples[cur["path"]]), None, [])
            client.call("POST", f"/api/images/{cur['id']}/clicks", {"x": first.x, "y": first.y, "positive": True})
            time.sleep(prefetch_wait)
            ready.append(state.prefetcher.is_ready(nxt["id"]))
            truth = samples[nxt["path"]]
            click = next_click(truth, np.zeros_like(truth), None, [])
            t0 = time.perf_counter()
            client.call("POST", f"/api/images/{nxt['id']}/open")
            t1 = time.perf_counter()
            client.call("POST", f"/api/images/{nxt['id']}/clicks", {"x": click.x, "y": click.y, "positive": True})
            t2 = time.perf_counter()
            next_first.append((t2 - t1) * 1000)
            next_open_first.append((t2 - t0) * 1000)
            client.call("DELETE", f"/api/images/{cur['id']}/clicks")
            client.call("DELETE", f"/api/images/{nxt['id']}/clicks")
        # click round trips with the embedding ready
        state.prefetcher.wait_idle(120)
        for image in images:
            client.call("POST", f"/api/images/{image['id']}/open")
            state.prefetcher.wait_idle(120)
            round_trips += _robot_clicks(client, image["id"], samples[image["path"]], clicks, predict_ms, server_ms)
        server.stop()
        store.close()

    def summary(values: list[float]) -> dict:
        return {"n": len(values), "median_ms": round(statistics.median(values), 1),
                "p90_ms": round(float(np.percentile(values, 90)), 1), "max_ms": round(max(values), 1)}

    return {
        "model": model_id,
        "inference": InferenceOptions.parse(infer).changed(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)},
        "images": {p: list(m.shape) for p, m in samples.items()},
        "click_round_trip": summary(round_trips),
        "click_predict_in_server": summary(predict_ms),
        "click_handler_in_server": summary(server_ms),
        "next_image_first_click": {**summary(next_first), "prefetch_wait_s": prefetch_wait,
                                   "prefetch_ahead": prefetch_ahead,
                                   "embedding_ready_after_wait": f"{sum(ready)}/{len(ready)}"},
        "next_image_open_plus_first_click": summary(next_open_first),
        "targets": {"click_round_trip_median_ms": 150, "next_image_first_mask_ms": 200},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--clicks", type=int, default=8, help="robot clicks per sample image")
    parser.add_argument("--prefetch-wait", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prefetch-ahead", type=int, default=2, help="images prefetched after the open one")
    parser.add_argument("--infer", default=None, help="inference options (default: the app's recommended ones)")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    try:
        result = measure(args.model, args.clicks, args.prefetch_wait, args.rounds, args.prefetch_ahead, args.infer)
    except ClickmaskError as exc:
        print(f"clickmask: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_path:
        from clickmask.io.atomic import atomic_write_text

        atomic_write_text(args.json_path, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
