"""Latency of the app as a user feels it, through a real HTTP server on localhost.

* click round trip: POST a click, get the mask back (PNG in JSON, what the browser uses),
  with the image's embedding ready; robot-user clicks on the bundled samples.
* next image: open image k (which prefetches k+1 and k+2), wait ``--prefetch-wait`` seconds,
  then time the first click on image k+1 (embeddings not on disk: a fresh memory cache).
* ``--opo-busy``: one robot-annotated object per sample is finished with a category (real
  finished masks), and every image's robot clicks with that category (adapted embeddings)
  are timed twice, alternately first: once with the online-adaptation (OPO) trainer idle
  (``click_round_trip_trainer_idle``) and once while a feeder keeps it busy by re-submitting
  the finished objects whenever it runs dry (``click_round_trip``). Same server, same
  adapted clicks, interleaved: the difference is the cost of training alone, free of the
  machine's drift between runs.

Run: ``python -m clickmask.server.bench --json out.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from clickmask.errors import ClickmaskError


class Client:
    """A keep-alive HTTP client for the JSON API."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            res = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # the server closed an idle keep-alive connection: reconnect once
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            res = self.conn.getresponse()
        payload = json.loads(res.read() or b"null")
        if res.status != 200:
            raise ClickmaskError(f"{method} {path}: HTTP {res.status}: {payload}")
        return payload


def _robot_clicks(client: Client, image_id: int, truth: np.ndarray, n: int, predict_ms: list[float],
                  server_ms: list[float], category_id: int | None = None, keep: bool = False) -> list[float]:
    """``n`` robot-user clicks on one object (then cancelled unless ``keep``); returns the round-trip times (ms)."""
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
                          {"x": click.x, "y": click.y, "positive": click.positive, "category_id": category_id})
        times.append((time.perf_counter() - t0) * 1000)
        pred = _current(client, image_id, truth.shape)  # untimed: only to place the next robot click
        predict_ms.append(res["predict_ms"])
        server_ms.append(res["server_ms"])
    if not keep:
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


class _OpoFeeder:
    """Keeps the app's OPO trainer busy with real finished objects while ``feeding`` (a background thread)."""

    def __init__(self, state, category_id: int, objects: list[tuple[np.ndarray, np.ndarray]]) -> None:
        import threading

        self.state, self.category_id, self.objects = state, category_id, objects
        self.submitted = 0
        self._stop = threading.Event()
        self._feed = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opo-feeder", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._feed.is_set() and self.state.adaptation.status(self.category_id)["queued"] == 0:
                embedding, mask = self.objects[self.submitted % len(self.objects)]
                self.state.adaptation.learn(self.category_id, embedding, mask)
                self.submitted += 1
            self._stop.wait(0.02)

    def feeding(self, on: bool) -> None:
        """Start keeping the trainer busy (it is once this returns), or stop and wait until it is idle."""
        if on:
            self._feed.set()
            deadline = time.monotonic() + 60
            while self.state.adaptation.status(self.category_id)["queued"] == 0:
                if time.monotonic() > deadline:
                    raise ClickmaskError("--opo-busy: the OPO trainer took no object within 60 s")
                time.sleep(0.005)
        else:
            self._feed.clear()
            self.state.adaptation.wait_idle(600)

    def __enter__(self) -> "_OpoFeeder":
        self.version0 = self.state.adaptation.status(self.category_id)["version"]
        self.t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.seconds = time.perf_counter() - self.t0
        self.updates = self.state.adaptation.status(self.category_id)["version"] - self.version0


def _finish_objects(client: Client, state, images: list[dict], samples: dict, category_id: int,
                    clicks: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Robot-annotate and finish one object per image with the category: (raw embedding, final mask) pairs."""
    from clickmask.project.masks import decode_mask

    objects = []
    for image in images:
        client.call("POST", f"/api/images/{image['id']}/open")
        _robot_clicks(client, image["id"], samples[image["path"]], clicks, [], [], category_id, keep=True)
        inst = client.call("POST", f"/api/images/{image['id']}/finish", {"category_id": category_id})
        with state.click_lock:
            embedding = state._embedding(image["id"])
        objects.append((embedding, decode_mask(state.store.instance(inst["id"])["rle"])))
    return objects


def measure(model: str | None, clicks: int, prefetch_wait: float, rounds: int, prefetch_ahead: int = 2,
            infer: str | None = None, opo_busy: bool = False, images_limit: int | None = None) -> dict:
    """Start a server on the sample project and measure; returns the result dict.

    ``infer``: inference options as for ``clickmask serve --infer`` (None = the app's default).
    ``opo_busy``: time the click round trips while the OPO trainer is kept busy (see module doc).
    ``images_limit``: use only the first N sample images (quick checks).
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
    idle_trips: list[float] = []  # --opo-busy: the same adapted clicks with the trainer idle
    idle_predict_ms: list[float] = []
    next_first: list[float] = []
    next_open_first: list[float] = []
    ready: list[bool] = []
    predict_ms: list[float] = []
    server_ms: list[float] = []
    opo_info: list[dict] = []
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
        images = [i for i in store.list_images() if i["path"] in samples][:images_limit]
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
        category_id = None
        feeder = contextlib.nullcontext()
        if opo_busy:
            if not state.adaptation.enabled():
                raise ClickmaskError(f"--opo-busy: online adaptation is off ({state.adaptation.reason})")
            category_id = client.call("POST", "/api/categories", {"name": f"opo-bench-{r}"})["id"]
            objects = _finish_objects(client, state, images, samples, category_id, min(clicks, 3))
            state.adaptation.wait_idle(600)  # the decoder is loaded and one update done: warm
            feeder = _OpoFeeder(state, category_id, objects)
        with feeder:
            for k, image in enumerate(images):
                client.call("POST", f"/api/images/{image['id']}/open")
                state.prefetcher.wait_idle(120)
                if not opo_busy:
                    round_trips += _robot_clicks(client, image["id"], samples[image["path"]], clicks, predict_ms,
                                                 server_ms)
                    continue
                for busy in ((False, True) if (k + r) % 2 == 0 else (True, False)):
                    feeder.feeding(busy)
                    times = _robot_clicks(client, image["id"], samples[image["path"]], clicks,
                                          predict_ms if busy else idle_predict_ms, server_ms if busy else [],
                                          category_id)
                    (round_trips if busy else idle_trips).extend(times)
            if opo_busy:
                feeder.feeding(False)
        if opo_busy:
            opo_info.append({"updates": feeder.updates, "submitted": feeder.submitted,
                             "seconds": round(feeder.seconds, 1)})
        server.stop()
        state.adaptation.close()
        store.close()

    def summary(values: list[float]) -> dict:
        if not values:
            return {"n": 0}
        return {"n": len(values), "median_ms": round(statistics.median(values), 1),
                "p90_ms": round(float(np.percentile(values, 90)), 1), "max_ms": round(max(values), 1)}

    return {
        "model": model_id,
        "inference": InferenceOptions.parse(infer).changed(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)},
        "images": {p: list(m.shape) for p, m in samples.items()},
        "click_round_trip": summary(round_trips),
        "click_round_trip_trainer_idle": summary(idle_trips) if opo_busy else None,
        "click_predict_in_server_trainer_idle": summary(idle_predict_ms) if opo_busy else None,
        "opo_busy": {"rounds": opo_info, "config": asdict(state.adaptation.config)} if opo_busy else None,
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
    parser.add_argument("--opo-busy", action="store_true",
                        help="keep the online-adaptation trainer busy while the click round trips are timed")
    parser.add_argument("--images", type=int, default=None, help="use only the first N sample images")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    try:
        result = measure(args.model, args.clicks, args.prefetch_wait, args.rounds, args.prefetch_ahead, args.infer,
                         args.opo_busy, args.images)
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
