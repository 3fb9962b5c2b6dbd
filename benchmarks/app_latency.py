"""Latency of the app as a user feels it, through a real HTTP server on localhost.

* click round trip: POST a click, get the mask back (PNG in JSON, what the browser uses),
  with the image's embedding ready; robot-user clicks on the bundled samples, the robot looking
  ``--think`` seconds at each mask before its next click (the app encodes the next click's zoom-in
  crop meanwhile; ``--no-prepare-crop`` switches that off, for comparison). The slowest click and
  its place in the object's clicks are reported.
* box round trip: POST a box around each sample object (its bounding box, 3 px out), get the mask.
* next image: open image k (which prefetches k+1 and k+2), wait ``--prefetch-wait`` seconds,
  then time the first click on image k+1 (embeddings not on disk: a fresh memory cache).
* proposals: after the click round trips, one object per image is finished with a new category
  (the online adaptation switched off for it, so no trainer competes), then per image the
  proposal for that category is timed (GET, what the browser asks after each finished object:
  the object map's proposal and its mask), and accepting it (Enter: a positive first click on
  it, which shows the proposal's mask without a decoder run).
* ``--opo-busy``: the click round trips with an OPO-adapted category (the OPO gate is off here,
  so its clicks run on the adapter: ``rounds[].timed_adapter``), timed three times per
  image in one server, in rotating order: with the online-adaptation trainer idle, while it
  trains another category (queued right before the pass), and idle again. The adapter in use
  stays fixed, so the three passes make the same clicks and the same computations; the robot
  waits ``--think`` seconds before each click (the trainer runs then, and is stopped while a
  click is answered). ``paired_round_trip_ratio`` compares each click with its idle twin:
  busy/idle against idle-again/idle, the run-to-run noise of the same server.
* ``--reference``: the click round trips of a category with a reference (issue 24) against the same
  category with its reference switched off. The reference is the first sample's object (its
  surroundings, a 20 px ring, as the negative), made through the API. Per image, the robot's clicks
  with the reference on and off, in rotating order; then the first click alone (the only click a
  reference changes) repeated ``--first-repeats`` times per image, on and off alternately, so each
  first click has its twin: ``first_click_paired_difference_ms`` is the median of on minus off.
  ``--reference-uses`` times other uses than the app's (``choose,points``...; decision 0016).

Run: ``python benchmarks/app_latency.py --json out.json``.
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
from dataclasses import asdict
from pathlib import Path

import numpy as np

from clickmask.errors import ClickmaskError


class Client:
    """A keep-alive HTTP client for the JSON API, as one browser tab (``tab``) calls it."""

    def __init__(self, port: int, tab: str = "") -> None:
        self.port = port
        self.tab = tab
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def send(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        """(HTTP status, JSON payload) of one request."""
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json", "X-Clickmask-Tab": self.tab}
        try:
            self.conn.request(method, path, body=data, headers=headers)
            res = self.conn.getresponse()
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # the server closed an idle keep-alive connection: reconnect once
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            self.conn.request(method, path, body=data, headers=headers)
            res = self.conn.getresponse()
        return res.status, json.loads(res.read() or b"null")

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        """The JSON payload of a request that must succeed."""
        status, payload = self.send(method, path, body)
        if status != 200:
            raise ClickmaskError(f"{method} {path}: HTTP {status}: {payload}")
        return payload


def _robot_clicks(client: Client, image_id: int, truth: np.ndarray, n: int, predict_ms: list[float],
                  server_ms: list[float], category_id: int | None = None, keep: bool = False,
                  think: float = 0.0, record: list | None = None, answers: list | None = None) -> list[float]:
    """``n`` robot-user clicks on one object (then cancelled unless ``keep``); returns the round-trip times (ms).

    ``think``: seconds waited (untimed) before each click, as a user looks at the mask; ``record``
    gets the clicks made, ``answers`` the server's answers.
    """
    from clickmask.geometry.masks import next_click

    pred = np.zeros_like(truth)
    clicked = []
    times = []
    for _ in range(n):
        click = next_click(truth, pred, None, clicked)
        if click is None:
            break
        clicked.append(click)
        if record is not None:
            record.append(click)
        if think:
            time.sleep(think)
        t0 = time.perf_counter()
        res = client.call("POST", f"/api/images/{image_id}/clicks",
                          {"x": click.x, "y": click.y, "positive": click.positive, "category_id": category_id})
        times.append((time.perf_counter() - t0) * 1000)
        pred = _current(client, image_id, truth.shape)  # untimed: only to place the next robot click
        predict_ms.append(res["predict_ms"])
        server_ms.append(res["server_ms"])
        if answers is not None:
            answers.append(res)
    if not keep:
        client.call("DELETE", f"/api/images/{image_id}/clicks")
    return times


def _box_round_trip(client: Client, image_id: int, truth: np.ndarray) -> float:
    """The round trip (ms) of a box drawn 3 px outside an object's bounding box; then cancelled."""
    ys, xs = np.nonzero(truth)
    box = {"x0": float(xs.min() - 3), "y0": float(ys.min() - 3), "x1": float(xs.max() + 4), "y1": float(ys.max() + 4)}
    t0 = time.perf_counter()
    client.call("POST", f"/api/images/{image_id}/box", box)
    ms = (time.perf_counter() - t0) * 1000
    client.call("DELETE", f"/api/images/{image_id}/clicks")
    return ms


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


CONDITIONS = ("idle", "busy", "idle_again")


def _bootstrap_median(values: np.ndarray, seed: int = 0, resamples: int = 2000) -> dict:
    """Median of ``values`` and its 95% bootstrap interval (fixed seed: reproducible)."""
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(values, size=(resamples, len(values))), axis=1)
    low, high = np.percentile(medians, [2.5, 97.5])
    return {"median": round(float(np.median(values)), 3), "ci95": [round(float(low), 3), round(float(high), 3)],
            "n": int(len(values))}


def _time_with_trainer(client: Client, state, images: list[dict], samples: dict, clicks: int, think: float,
                       rnd: int) -> dict:
    """``--opo-busy``: the same adapted clicks timed with the OPO trainer idle, busy and idle again.

    Category ``timed`` is adapted once (one finished object per image) and then left alone, so its
    adapter, the adapted embeddings and therefore the robot's clicks are identical in every pass.
    Category ``feed`` gets one of those objects queued right before each busy pass, which keeps
    the trainer process training through the pass (one update outlasts it; checked afterwards).
    Per image: an untimed warm-up pass (crop encodes, adapted embeddings cached), then the three
    timed passes in an order that rotates with the image. Returns per-condition round trips and
    in-server prediction times (ms), whether the clicks matched, and the busy checks.
    """
    timed = client.call("POST", "/api/categories", {"name": f"opo-timed-{rnd}"})["id"]
    feed = client.call("POST", "/api/categories", {"name": f"opo-feed-{rnd}"})["id"]
    objects = _finish_objects(client, state, images, samples, timed, min(clicks, 3))
    if not state.adaptation.wait_idle(600):
        raise ClickmaskError("--opo-busy: the OPO trainer did not finish the warm-up objects in 600 s")
    # whether the timed clicks run on the adapter or, held back by the OPO gate, on the plain model
    adapted = {k: state.adaptation.status(timed)[k] for k in ("version", "samples", "served")}
    trips = {c: [] for c in CONDITIONS}
    predict = {c: [] for c in CONDITIONS}
    busy_throughout: list[bool] = []
    same_clicks = True
    for k, image in enumerate(images):
        client.call("POST", f"/api/images/{image['id']}/open")
        state.prefetcher.wait_idle(120)
        truth = samples[image["path"]]
        reference: list = []
        _robot_clicks(client, image["id"], truth, clicks, [], [], timed, think=think, record=reference)
        shift = (k + rnd) % len(CONDITIONS)
        for condition in CONDITIONS[shift:] + CONDITIONS[:shift]:
            if condition == "busy":
                embedding, mask = objects[k % len(objects)]
                state.adaptation.learn(feed, embedding, mask)
                time.sleep(0.5)  # the child has the object and is in its SGD steps
            elif not state.adaptation.wait_idle(600):
                raise ClickmaskError("--opo-busy: the OPO trainer did not become idle in 600 s")
            record: list = []
            trips[condition] += _robot_clicks(client, image["id"], truth, clicks, predict[condition], [], timed,
                                              think=think, record=record)
            same_clicks &= record == reference
            if condition == "busy":
                busy_throughout.append(bool(state.adaptation.status(feed)["busy"]))
    state.adaptation.wait_idle(600)
    return {"trips": trips, "predict": predict, "same_clicks": same_clicks, "busy_throughout": busy_throughout,
            "timed_adapter": adapted}


def _paired(trips: dict[str, list[float]]) -> dict:
    """Click-by-click ratios to the idle pass (the passes repeat the same clicks): busy and idle again."""
    idle = np.asarray(trips["idle"])
    return {f"{c}_vs_idle": _bootstrap_median(np.asarray(trips[c]) / idle) for c in ("busy", "idle_again")}


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


REFERENCE_STATES = ("off", "on")


def _time_reference(client: Client, state, images: list[dict], samples: dict, clicks: int, think: float,
                    rnd: int, repeats: int) -> dict:
    """``--reference``: the same category's clicks with its reference on and off (see the module doc).

    The online adaptation is switched off (no trainer competes). Returns per-state round trips and
    in-server prediction times of all the robot's clicks and of the repeated first clicks (ms), the
    paired first-click differences (on minus off, ms) and how many first clicks said they used the reference.
    """
    import cv2

    state.store.set_setting("opo_enabled", False)
    category = client.call("POST", "/api/categories", {"name": f"reference-{rnd}"})["id"]
    source = images[0]
    truth = samples[source["path"]]
    client.call("POST", f"/api/images/{source['id']}/open")
    positive = state.store.add_instance(source["id"], truth, category)["id"]
    ring = cv2.dilate(truth.astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool) & ~truth
    negative = state.store.add_instance(source["id"], ring, None)["id"]
    client.call("POST", "/api/references", {"instance_id": positive, "negative_instance_id": negative})
    trips = {s: [] for s in REFERENCE_STATES}
    predict = {s: [] for s in REFERENCE_STATES}
    first = {s: [] for s in REFERENCE_STATES}
    first_predict = {s: [] for s in REFERENCE_STATES}
    differences: list[float] = []
    used = {s: 0 for s in REFERENCE_STATES}

    def switch(on: str) -> None:
        client.call("PATCH", f"/api/references/{category}", {"enabled": on == "on"})

    for k, image in enumerate(images):
        client.call("POST", f"/api/images/{image['id']}/open")
        state.prefetcher.wait_idle(120)
        truth = samples[image["path"]]
        order = REFERENCE_STATES if (k + rnd) % 2 == 0 else REFERENCE_STATES[::-1]
        for on in order:
            switch(on)
            answers: list = []
            trips[on] += _robot_clicks(client, image["id"], truth, clicks, predict[on], [], category, think=think,
                                       answers=answers)
            used[on] += answers[0]["reference"] is not None
        for i in range(repeats):
            pair = {}
            for on in order if i % 2 == 0 else order[::-1]:
                switch(on)
                time.sleep(think)
                answers = []
                pair[on] = _robot_clicks(client, image["id"], truth, 1, first_predict[on], [], category,
                                         answers=answers)[0]
                first[on].append(pair[on])
                used[on] += answers[0]["reference"] is not None
            differences.append(pair["on"] - pair["off"])
    state.store.set_setting("opo_enabled", True)
    return {"trips": trips, "predict": predict, "first": first, "first_predict": first_predict,
            "differences": differences, "used": used}


def _time_proposals(client: Client, state, images: list[dict], samples: dict, clicks: int, rnd: int,
                    proposal_ms: list[float], accept_ms: list[float]) -> None:
    """Teach a new category one object per image, then time each image's proposal and its acceptance (ms)."""
    state.store.set_setting("opo_enabled", False)  # no background trainer while the proposals are timed
    category = client.call("POST", "/api/categories", {"name": f"proposed-{rnd}"})["id"]
    _finish_objects(client, state, images, samples, category, min(clicks, 3))
    for image in images:
        client.call("POST", f"/api/images/{image['id']}/open")
        state.prefetcher.wait_idle(120)
        t0 = time.perf_counter()
        offer = client.call("GET", f"/api/images/{image['id']}/proposal?category_id={category}")["proposal"]
        proposal_ms.append((time.perf_counter() - t0) * 1000)
        if offer is None:
            continue
        t0 = time.perf_counter()
        client.call("POST", f"/api/images/{image['id']}/clicks",
                    {"x": offer["x"], "y": offer["y"], "positive": True, "category_id": category})
        accept_ms.append((time.perf_counter() - t0) * 1000)
        client.call("DELETE", f"/api/images/{image['id']}/clicks")
    state.store.set_setting("opo_enabled", True)


def measure(model: str | None, clicks: int, prefetch_wait: float, rounds: int, prefetch_ahead: int = 2,
            infer: str | None = None, opo_busy: bool = False, images_limit: int | None = None,
            think: float = 0.5, prepare_crop: bool = True, reference: bool = False, first_repeats: int = 6,
            reference_uses: str | None = None) -> dict:
    """Start a server on the sample project and measure; returns the result dict.

    ``infer``: inference options as for ``clickmask serve --infer`` (None = the app's default).
    ``opo_busy``: time the click round trips while the OPO trainer is kept busy (see module doc).
    ``images_limit``: use only the first N sample images (quick checks).
    ``think``: seconds the robot waits before each click (the next zoom-in crop is encoded meanwhile; with
    ``opo_busy`` the trainer runs). ``prepare_crop``: False switches the early crop encoding off.
    ``reference``: time a category's clicks with its reference on and off instead (``first_repeats``
    first clicks per image and state besides the robot's objects; ``reference_uses``: other uses than the
    app's, e.g. ``"choose,points"``).
    """
    from clickmask.engine.refine import InferenceOptions
    from clickmask.engine.loader import load_predictor
    from clickmask.geometry.masks import next_click
    from clickmask.project import open_project
    from clickmask.samples import load_samples
    from clickmask.learning.opo import OPOConfig
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer
    from clickmask.learning.reference import ReferenceUses
    from clickmask.server.references import APP_USES
    from clickmask.server.sample import build_sample_project

    samples = {f"{s.name}.png": s.mask for s in load_samples()}
    folder = build_sample_project(Path(tempfile.mkdtemp(prefix="clickmask-bench-")))
    round_trips: list[float] = []
    box_trips: list[float] = []
    slowest: dict = {"ms": 0.0}
    opo_trips: dict[str, list[float]] = {c: [] for c in CONDITIONS}  # --opo-busy: per trainer condition
    opo_predict: dict[str, list[float]] = {c: [] for c in CONDITIONS}
    next_first: list[float] = []
    next_open_first: list[float] = []
    ready: list[bool] = []
    predict_ms: list[float] = []
    server_ms: list[float] = []
    proposal_ms: list[float] = []
    accept_ms: list[float] = []
    opo_info: list[dict] = []
    ref_runs: list[dict] = []
    load_before = os.getloadavg()[0]
    model_id = None
    for r in range(rounds):
        store = open_project(folder)
        # fresh memory cache: prefetch really encodes
        predictor = load_predictor(model, disk_cache=False, options=InferenceOptions.parse(infer))
        if predictor.is_fallback:
            raise ClickmaskError("the benchmark needs the real model: run 'clickmask models pull'")
        model_id = predictor.model_id
        # --opo-busy times the adapted click path: without the gate, the timed category's first trained
        # version is served (the gate would hold it back and the clicks would run on the plain model)
        opo_config = OPOConfig(gate=0) if opo_busy else None
        state = AppState(store=store, predictor=predictor, prefetch_ahead=prefetch_ahead, opo_config=opo_config,
                         prepare_crops=prepare_crop)
        if reference and reference_uses is not None:
            state.references.predictor.uses = ReferenceUses.parse(reference_uses)
        uses = state.references.predictor.uses.text() if state.references.predictor is not None else None
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
        if opo_busy:
            if not state.adaptation.enabled():
                raise ClickmaskError(f"--opo-busy: online adaptation is off ({state.adaptation.reason})")
            passes = _time_with_trainer(client, state, images, samples, clicks, think, r)
            for c in CONDITIONS:
                opo_trips[c] += passes["trips"][c]
                opo_predict[c] += passes["predict"][c]
            opo_info.append({"same_clicks": passes["same_clicks"], "busy_throughout": passes["busy_throughout"],
                             "timed_adapter": passes["timed_adapter"]})
        elif reference:
            ref_runs.append(_time_reference(client, state, images, samples, clicks, think, r, first_repeats))
        else:
            for image in images:
                client.call("POST", f"/api/images/{image['id']}/open")
                state.prefetcher.wait_idle(120)
                trips = _robot_clicks(client, image["id"], samples[image["path"]], clicks, predict_ms, server_ms,
                                      think=think)
                round_trips += trips
                k = int(np.argmax(trips))
                if trips[k] > slowest["ms"]:
                    slowest = {"ms": round(trips[k], 1), "image": image["path"], "click": k + 1, "round": r}
                box_trips.append(_box_round_trip(client, image["id"], samples[image["path"]]))
            _time_proposals(client, state, images, samples, clicks, r, proposal_ms, accept_ms)
        server.stop()
        state.adaptation.close()
        store.close()

    def summary(values: list[float]) -> dict:
        if not values:
            return {"n": 0}
        return {"n": len(values), "median_ms": round(statistics.median(values), 1),
                "p90_ms": round(float(np.percentile(values, 90)), 1), "max_ms": round(max(values), 1)}

    def joined(key: str) -> dict[str, list[float]]:
        return {s: [v for run in ref_runs for v in run[key][s]] for s in REFERENCE_STATES}

    plain = not opo_busy and not reference

    return {
        "model": model_id,
        "inference": InferenceOptions.parse(infer).changed(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_avg_1m_before": round(load_before, 2), "load_avg_1m_after": round(os.getloadavg()[0], 2)},
        "images": {p: list(m.shape) for p, m in samples.items()},
        "click_round_trip": summary(round_trips) if plain else None,
        "click_predict_in_server": summary(predict_ms) if plain else None,
        "slowest_click": slowest if plain else None,
        "think_s": think,
        "prepare_crop": prepare_crop,
        "box_round_trip": summary(box_trips) if plain else None,
        "click_handler_in_server": summary(server_ms) if plain else None,
        "opo_busy": None if not opo_busy else {
            "think_s": think,
            "click_round_trip": {c: summary(opo_trips[c]) for c in CONDITIONS},
            "click_predict_in_server": {c: summary(opo_predict[c]) for c in CONDITIONS},
            "paired_round_trip_ratio": _paired(opo_trips),
            "rounds": opo_info,
            "config": asdict(state.adaptation.config),
        },
        "reference": None if not reference else {
            "uses": uses,
            "app_uses": APP_USES.text(),
            "think_s": think,
            "first_repeats": first_repeats,
            "click_round_trip": {s: summary(v) for s, v in joined("trips").items()},
            "click_predict_in_server": {s: summary(v) for s, v in joined("predict").items()},
            "first_click_round_trip": {s: summary(v) for s, v in joined("first").items()},
            "first_click_predict_in_server": {s: summary(v) for s, v in joined("first_predict").items()},
            "first_click_paired_difference_ms": _bootstrap_median(
                np.asarray([d for run in ref_runs for d in run["differences"]])),
            "first_clicks_that_used_it": {s: sum(run["used"][s] for run in ref_runs) for s in REFERENCE_STATES},
            "first_clicks_per_state": len(images) * (1 + first_repeats) * rounds,
            "target_difference_ms": 20,
        },
        "proposal": summary(proposal_ms) if plain else None,
        "proposal_accept": summary(accept_ms) if plain else None,
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
    parser.add_argument("--think", type=float, default=1.0,
                        help="seconds the robot looks at each mask before its next click (untimed)")
    parser.add_argument("--no-prepare-crop", dest="prepare_crop", action="store_false",
                        help="do not encode the next click's zoom-in crop in the background (for comparison)")
    parser.add_argument("--reference", action="store_true",
                        help="time a category's clicks with its reference on and off (issue 24)")
    parser.add_argument("--first-repeats", type=int, default=6,
                        help="with --reference: first clicks per image and state besides the robot's objects")
    parser.add_argument("--reference-uses", default=None,
                        help="with --reference: the uses to time (default: the app's), e.g. choose,points")
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args(argv)
    return run_and_write(lambda: measure(args.model, args.clicks, args.prefetch_wait, args.rounds, args.prefetch_ahead,
                                         args.infer, args.opo_busy, args.images, args.think,
                                         args.prepare_crop, args.reference, args.first_repeats,
                                         args.reference_uses), args.json_path)


def run_and_write(run, json_path: Path | None) -> int:
    """Run a measurement, print its JSON result and write it (atomically) to ``json_path``; 2 on a one-line error."""
    try:
        result = run()
    except ClickmaskError as exc:
        print(f"clickmask: error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        from clickmask.io.atomic import atomic_write_text

        atomic_write_text(json_path, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
