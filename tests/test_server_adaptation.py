"""OPO in the app: background trainer, delta, reset, storage in the project, the API and the clicks it changes."""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial

import numpy as np
import pytest
from PIL import Image

from clickmask.errors import ClickmaskError
from clickmask.project import open_project
from clickmask.learning.opo import OPOConfig
from clickmask.learning.trainer import load_frozen_decoder
from clickmask.server import AppState
from clickmask.server.adaptation import SETTING, AdaptationService
from clickmask.learning.adapted import AdaptedPredictor
from clickmask.server.opo_worker import IDENTITY, OpoWorker
from synthetic import embedding_and_mask, scene
from page_client import page_client

pytest.importorskip("torch")
SMALL = OPOConfig(steps=1, batch_size=1, lr=0.05, delta=1, gate=0)  # ~0.5 s per update on one thread


@pytest.fixture()
def project(tmp_path):
    Image.fromarray(scene([(20, 30, 80, 90)])).save(tmp_path / "a.png")
    Image.fromarray(scene([(150, 60, 210, 120), (30, 100, 80, 150)])).save(tmp_path / "b.png")
    return tmp_path


# ---------------------------------------------------------------- worker
def test_submit_returns_at_once_and_publishes_a_trained_version(frozen_decoder):
    release = threading.Event()

    def blocked_decoder():  # the trainer cannot train until the test releases it
        release.wait(600)
        return frozen_decoder

    worker = OpoWorker(blocked_decoder, SMALL)
    try:
        worker.submit(1, *embedding_and_mask(0))  # returns although training cannot have run
        assert worker.status(1)["busy"] and worker.latest(1).version == 0
        release.set()
        assert worker.wait_idle(600)
        status = worker.status(1)
        assert status == {"version": 1, "samples": 1, "served": True, "memory": 1, "queued": 0, "busy": False}
        a, b = worker.latest(1).affine
        assert a.shape == (256, 256) and b.shape == (256,) and not np.allclose(a, np.eye(256))
        assert worker.latest(2) is IDENTITY
    finally:
        release.set()
        worker.close()


def test_bad_input_is_refused_in_one_line(frozen_decoder):
    worker = OpoWorker(lambda: frozen_decoder, SMALL)
    emb, mask = embedding_and_mask(0)
    with pytest.raises(ClickmaskError, match="embedding must be 1x256x64x64"):
        worker.submit(1, emb[:, :8], mask)
    with pytest.raises(ClickmaskError, match="mask must be a non-empty"):
        worker.submit(1, emb, np.zeros((96, 128), bool))
    with pytest.raises(ClickmaskError, match="delta must be at most"):
        OpoWorker(lambda: frozen_decoder, OPOConfig(delta=20))
    with pytest.raises(ClickmaskError, match="load_decoder must be picklable"):
        OpoWorker(lambda: frozen_decoder, SMALL, process=True)


def test_delta_object_n_uses_objects_up_to_n_minus_delta(frozen_decoder):
    worker = OpoWorker(lambda: frozen_decoder, OPOConfig(steps=1, batch_size=1, delta=2, gate=0))
    try:
        worker.submit(5, *embedding_and_mask(0))
        assert worker.wait_idle(600) and worker.latest(5).samples == 1
        assert worker.for_next_object(5) is IDENTITY  # object 1 may only use objects up to -1
        worker.submit(5, *embedding_and_mask(1))
        assert worker.wait_idle(600) and worker.latest(5).samples == 2
        chosen = worker.for_next_object(5)  # object 2 uses the adapter learned from object 0
        assert chosen.samples == 1 and chosen.affine is not None and chosen is not worker.latest(5)
    finally:
        worker.close()


def test_objects_queued_during_training_are_learned_in_one_update(frozen_decoder):
    worker = OpoWorker(lambda: frozen_decoder, SMALL)
    try:
        for k in range(4):
            worker.submit(1, *embedding_and_mask(k))
        assert worker.wait_idle(600)
        latest = worker.latest(1)
        assert latest.samples == 4 and 1 <= latest.version <= 4 and worker.status(1)["memory"] == 4
    finally:
        worker.close()


def test_gate_holds_back_an_adapter_until_it_helps_on_unseen_objects(frozen_decoder, monkeypatch):
    """OPOConfig.gate: each new object first tests the adapter; a closed gate publishes the plain model."""
    import clickmask.learning.trainer as opo
    from clickmask.learning.adapter import EmbeddingAdapter

    gains = iter([-0.2, 0.1])
    monkeypatch.setattr(opo, "held_out_gain", lambda decoder, adapter, sample, seed: next(gains))
    worker = OpoWorker(lambda: frozen_decoder, OPOConfig(steps=1, batch_size=1, lr=0.05, delta=1, gate=1))
    try:
        served = []
        for k in range(3):
            worker.submit(1, *embedding_and_mask(k))
            assert worker.wait_idle(600)
            served.append(worker.latest(1).affine is not None)
        # object 0: nothing to test yet; object 1: the adapter made it worse; object 2: better
        assert served == [False, False, True]
        assert worker.status(1)["served"] is True
        assert worker.status(1)["version"] == 3 and worker.status(1)["samples"] == 3
        worker.restore(2, EmbeddingAdapter(), version=4, samples=4, served=False)
        assert worker.latest(2).affine is None and worker.latest(2).version == 4
        assert worker.status(2)["served"] is False
    finally:
        worker.close()


def test_reset_discards_queued_work_and_returns_to_identity(frozen_decoder):
    resets = []
    worker = OpoWorker(lambda: frozen_decoder, SMALL, on_reset=resets.append)
    try:
        worker.submit(1, *embedding_and_mask(0))
        worker.reset(1)
        assert worker.wait_idle(600)
        assert worker.latest(1) is IDENTITY and worker.for_next_object(1) is IDENTITY and resets == [1]
        worker.submit(1, *embedding_and_mask(1))
        assert worker.wait_idle(600) and worker.latest(1).version == 1
    finally:
        worker.close()


def test_a_failing_update_is_logged_and_the_worker_keeps_going(frozen_decoder, monkeypatch, caplog):
    import clickmask.learning.trainer as trainer

    real = trainer.train_steps
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated failure\nsecond line")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_steps", flaky)
    worker = OpoWorker(lambda: frozen_decoder, SMALL)
    try:
        with caplog.at_level(logging.WARNING, logger="clickmask.server.opo_worker"):
            worker.submit(1, *embedding_and_mask(0))
            assert worker.wait_idle(600)
        assert worker.latest(1) is IDENTITY and worker.status(1)["memory"] == 0
        assert worker.errors == ["OPO update of category 1 failed: RuntimeError: simulated failure"]
        assert "simulated failure" in caplog.text
        worker.submit(1, *embedding_and_mask(1))
        assert worker.wait_idle(600) and worker.latest(1).version == 1
    finally:
        worker.close()


# ---------------------------------------------------------------- worker in a child process (the app's mode)
def _process_worker(model_spec, **kwargs) -> OpoWorker:
    return OpoWorker(partial(load_frozen_decoder, model_spec), SMALL, process=True, **kwargs)


def _trainers() -> set:
    """The live OPO trainer processes of this process."""
    return {p for p in multiprocessing.active_children() if p.name == "clickmask-opo"}


SPIN = """
from pathlib import Path

def spin(marker):  # a decoder load that never ends: a long stretch without a look at the pipe
    Path(marker).touch()
    while True:
        pass
"""

PARENT = """
import functools, multiprocessing, sys, time
from clickmask.learning.opo import OPOConfig
from clickmask.server.opo_worker import OpoWorker
from synthetic import embedding_and_mask
import spin

worker = OpoWorker(functools.partial(spin.spin, sys.argv[1]), OPOConfig(), process=True)
worker.submit(1, *embedding_and_mask(0))
print([p.pid for p in multiprocessing.active_children() if p.name == "clickmask-opo"][0], flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_trainer_process_ends_when_the_server_is_killed(tmp_path):
    """SIGKILL (or a signal uvicorn re-raises after its shutdown) runs no exit handler: the child must notice."""
    (tmp_path / "spin.py").write_text(SPIN)
    marker = tmp_path / "spinning"
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), tests, os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(marker)], stdout=subprocess.PIPE, text=True, env=env)
    child = None
    try:
        child = int(parent.stdout.readline())
        end = time.monotonic() + 120
        while not marker.exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert marker.exists(), "the trainer never started"
        parent.kill()
        parent.wait(10)
        end = time.monotonic() + 10
        while _alive(child) and time.monotonic() < end:
            time.sleep(0.1)
        assert not _alive(child), "the trainer outlived the server"
    finally:
        parent.kill()
        parent.stdout.close()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


def test_app_shutdown_stops_the_trainer(project, sam_predictor):
    state = AppState(store=open_project(project), predictor=sam_predictor, opo_config=SMALL)
    with page_client(state) as client:  # the context runs the app's lifespan, as uvicorn does
        assert client.get("/api/status").status_code == 200
        state.adaptation.worker.submit(1, *embedding_and_mask(0))
        [child] = _trainers()
    child.join(30)
    assert child.exitcode == 0 and not _trainers()  # it ended by itself: not killed after close's timeout


def test_process_continues_from_restored_weights_publishes_and_close_stops_it(model_spec):
    import torch

    from clickmask.learning.adapter import EmbeddingAdapter

    before = _trainers()
    stored = []
    worker = _process_worker(model_spec, on_publish=lambda *args: stored.append(args))
    try:
        adapter = EmbeddingAdapter()
        with torch.no_grad():
            adapter.bias.fill_(0.5)
        worker.restore(1, adapter, 5, 3)
        assert worker.latest(1).version == 5 and _trainers() == before  # started by the first submit only
        worker.submit(1, *embedding_and_mask(0))
        assert worker.status(1)["busy"]
        [child] = _trainers() - before
        assert worker.wait_idle(600)
        assert worker.status(1) == {"version": 6, "samples": 4, "served": True, "memory": 1, "queued": 0, "busy": False}
        a, b = worker.latest(1).affine
        assert np.allclose(b, 0.5, atol=0.1) and not np.allclose(b, 0.5)  # one step on from the restored bias
        [(category_id, published, trained)] = stored
        assert category_id == 1 and published is worker.latest(1) and isinstance(trained, EmbeddingAdapter)
        assert all(np.array_equal(x, y) for x, y in zip(trained.affine(), (a, b)))
    finally:
        worker.close()
    assert not child.is_alive() and _trainers() == before and worker.wait_idle(1)


def test_process_reset_discards_queued_work(model_spec):
    resets = []
    worker = _process_worker(model_spec, on_reset=resets.append)
    try:
        worker.submit(1, *embedding_and_mask(0))
        worker.submit(2, *embedding_and_mask(1))
        worker.reset(1)  # the child is still starting: object 0 was queued before the reset
        assert worker.wait_idle(600) and resets == [1]
        assert worker.latest(1) is IDENTITY and worker.status(1)["memory"] == 0 and worker.latest(2).version == 1
        worker.submit(1, *embedding_and_mask(2))
        assert worker.wait_idle(600)
        assert worker.status(1) == {"version": 1, "samples": 1, "served": True, "memory": 1, "queued": 0, "busy": False}
    finally:
        worker.close()


def test_process_crash_is_reported_and_the_next_object_restarts_it(model_spec, caplog):
    before = _trainers()
    worker = _process_worker(model_spec)
    try:
        worker.submit(1, *embedding_and_mask(0))
        assert worker.wait_idle(600) and worker.latest(1).version == 1
        [child] = _trainers() - before
        with caplog.at_level(logging.WARNING, logger="clickmask.server.opo_worker"):
            worker.submit(1, *embedding_and_mask(1))
            os.kill(child.pid, signal.SIGKILL)  # while it trains (or just before)
            deadline = time.monotonic() + 60
            while not worker.errors and time.monotonic() < deadline:
                time.sleep(0.05)
        assert len(worker.errors) == 1 and worker.errors[0].startswith(
            "OPO trainer process stopped unexpectedly (exit code -9)")
        assert "stopped unexpectedly" in caplog.text
        kept = worker.latest(1)
        assert kept.version in (1, 2) and worker.wait_idle(1)  # published versions kept, nothing left to wait for
        assert worker.status(1) == {"version": kept.version, "samples": kept.samples, "served": True, "memory": 0,
                                    "queued": 0, "busy": False}
        worker.submit(1, *embedding_and_mask(2))  # a new child, from the last published weights
        assert worker.wait_idle(600)
        [again] = _trainers() - before
        assert again.pid != child.pid and not child.is_alive()
        assert worker.status(1) == {"version": kept.version + 1, "samples": kept.samples + 1, "served": True,
                                    "memory": 1,
                                    "queued": 0, "busy": False}
        assert len(worker.errors) == 1
    finally:
        worker.close()


def _run_state(pid: int, expect: str) -> str:
    """The process state letter from /proc (T = stopped), polled for up to 5 s until it is (not) ``expect``."""
    deadline = time.monotonic() + 5
    while True:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        if (state == "T") == (expect == "T") or time.monotonic() > deadline:  # signals arrive asynchronously
            return state
        time.sleep(0.01)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc")
def test_process_is_frozen_while_a_click_runs_and_close_resumes_it(model_spec):
    before = _trainers()
    worker = _process_worker(model_spec)
    try:
        with worker.frozen():
            pass  # no trainer yet: nothing to stop
        worker.submit(1, *embedding_and_mask(0))
        assert worker.wait_idle(600)
        [child] = _trainers() - before
        with worker.frozen():
            assert _run_state(child.pid, "T") == "T"
            with worker.frozen():  # nested (or a concurrent click): one stop
                pass
            assert _run_state(child.pid, "T") == "T"  # still stopped after the inner block
        assert _run_state(child.pid, "S") != "T"
        worker.submit(1, *embedding_and_mask(1))
        assert worker.wait_idle(600) and worker.latest(1).version == 2
        with worker.frozen():
            worker.close(timeout=60)  # resumes it so that it can stop
        assert not child.is_alive()
    finally:
        worker.close()


# ---------------------------------------------------------------- service and storage
def test_adapter_stored_and_restored_when_the_project_reopens(project, sam_predictor):
    store = open_project(project)
    cat = store.add_category("box")["id"]
    service = AdaptationService(store, AdaptedPredictor.sharing(sam_predictor), SMALL)
    assert service.available and service.enabled()
    assert service.learn(cat, *embedding_and_mask(0)) and service.wait_idle(600)
    rows = store.list_adapters()
    assert [(r["category_id"], r["version"], r["samples"], r["model_id"]) for r in rows] == \
        [(cat, 1, 1, sam_predictor.model_id)]
    trained = service.worker.latest(cat)
    service.close()
    store.close()

    store = open_project(project)  # reopen: the adapter is back, usable at once
    again = AdaptationService(store, AdaptedPredictor.sharing(sam_predictor), SMALL)
    restored = again.worker.for_next_object(cat)
    assert (restored.version, restored.samples) == (1, 1)
    assert all(np.array_equal(r, t) for r, t in zip(restored.affine, trained.affine))
    assert again.status(cat)["version"] == 1
    again.reset(cat)
    assert store.list_adapters() == [] and again.status(cat)["version"] == 0
    again.close()
    store.close()


def test_stored_adapter_of_another_model_is_ignored(project, sam_predictor, caplog):
    store = open_project(project)
    cat = store.add_category("box")["id"]
    store.put_adapter(cat, 3, 3, "some-other-model", b"junk")
    with caplog.at_level(logging.WARNING, logger="clickmask.server.adaptation"):
        service = AdaptationService(store, AdaptedPredictor.sharing(sam_predictor), SMALL)
    assert service.status(cat)["version"] == 0 and "not used" in caplog.text
    store.put_adapter(cat, 3, 3, sam_predictor.model_id, b"junk")
    service = AdaptationService(store, AdaptedPredictor.sharing(sam_predictor), SMALL)
    assert service.status(cat)["version"] == 0 and "not a valid adapter" in caplog.text
    store.close()


def test_adapter_is_pinned_per_object_and_adapted_embeddings_are_cached(project, sam_predictor):
    store = open_project(project)
    cat = store.add_category("box")["id"]
    view = AdaptedPredictor.sharing(sam_predictor)
    view.set_image(scene([(20, 30, 80, 90)]))
    raw = view.raw_embedding
    service = AdaptationService(store, view, SMALL)
    key = (1, "tab")
    service.select(key, cat, new_object=True)  # object 0: nothing learned yet
    assert view.embedding is raw
    assert service.learn(cat, *embedding_and_mask(0)) and service.wait_idle(600)
    service.select(key, cat, new_object=False)  # same object: keeps its model
    assert view.embedding is raw
    service.select(key, cat, new_object=True)  # next object: the new adapter
    adapted = view.embedding
    assert adapted is not raw and adapted.shape == raw.shape and not np.array_equal(adapted, raw)
    service.select(key, None, new_object=False)  # no category: the plain model
    assert view.embedding is raw and view.raw_embedding is raw
    service.select(key, cat, new_object=True)
    assert view.embedding is adapted  # cached, not recomputed
    service.reset(cat)
    service.select(key, cat, new_object=False)  # a reset drops the pin at once
    assert view.embedding is raw
    store.set_setting(SETTING, False)
    assert service.learn(cat, *embedding_and_mask(1)) is False
    service.close()
    store.close()


def test_setting_switches_opo_off(project, sam_predictor):
    store = open_project(project)
    cat = store.add_category("box")["id"]
    store.set_setting(SETTING, False)
    service = AdaptationService(store, AdaptedPredictor.sharing(sam_predictor), SMALL)
    assert not service.enabled() and not service.learn(cat, *embedding_and_mask(0))
    assert service.status(cat)["enabled"] is False
    store.close()


def test_model_without_embedding_has_opo_off(project):
    from clickmask.engine.grabcut import GrabCutPredictor

    state = AppState(store=open_project(project), predictor=GrabCutPredictor())
    assert not state.adaptation.available and "no plain SAM" in state.adaptation.status(1)["reason"]
    assert isinstance(state.predictor, GrabCutPredictor)


def test_without_torch_opo_is_off_and_clicks_work(project, sam_predictor, monkeypatch, caplog):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with caplog.at_level(logging.WARNING, logger="clickmask.server.adaptation"):
        state = AppState(store=open_project(project), predictor=sam_predictor)
    assert state.predictor is sam_predictor and not state.adaptation.available
    assert caplog.text.count("online adaptation (OPO) is off: PyTorch is not installed") == 1
    client = page_client(state)
    image_id = client.get("/api/images").json()["images"][0]["id"]
    cat = client.post("/api/categories", json={"name": "box"}).json()["id"]
    body = client.post(f"/api/images/{image_id}/clicks", json={"x": 50, "y": 60, "category_id": cat}).json()
    assert not body["empty"]
    assert client.post(f"/api/images/{image_id}/finish", json={"category_id": cat}).status_code == 200
    assert client.get(f"/api/categories/{cat}/adaptation").json()["reason"] == "PyTorch is not installed"


def test_unadapted_view_predicts_exactly_like_the_model(sam_predictor):
    from clickmask.engine.clicks import Click

    image = scene([(20, 30, 80, 90)])
    view = AdaptedPredictor.sharing(sam_predictor)
    view.set_image(image)
    sam_predictor.set_image(image)
    clicks = [Click(50, 60, True)]
    assert np.array_equal(view.predict(clicks).logits, sam_predictor.predict(clicks).logits)
    assert view.raw_embedding is sam_predictor.embedding


# ---------------------------------------------------------------- API
def _runs(client, image_id: int, points, category_id=None) -> list:
    """Click ``points`` as one object (then cancel it); returns the final mask runs."""
    body = None
    for x, y, positive in points:
        body = client.post(f"/api/images/{image_id}/clicks",
                           json={"x": x, "y": y, "positive": positive, "category_id": category_id}).json()
    client.delete(f"/api/images/{image_id}/clicks")
    return body["runs"]


def test_api_finished_objects_train_the_category_and_reset_restores_the_model(project, sam_predictor):
    state = AppState(store=open_project(project), predictor=sam_predictor,
                     opo_config=OPOConfig(steps=2, batch_size=2, lr=0.5, delta=1, gate=0))
    client = page_client(state)
    ids = {i["path"]: i["id"] for i in client.get("/api/images").json()["images"]}
    cat = client.post("/api/categories", json={"name": "box"}).json()["id"]
    url = f"/api/categories/{cat}/adaptation"
    assert client.get(url).json()["version"] == 0
    assert client.get("/api/categories/999/adaptation").status_code == 404
    points = [(175, 85, True), (60, 125, True), (120, 40, False)]
    plain = _runs(client, ids["b.png"], points)
    assert _runs(client, ids["b.png"], points, cat) == plain  # nothing learned yet: the same model

    for image, (x, y) in (("a.png", (50, 60)), ("b.png", (175, 85))):
        client.post(f"/api/images/{ids[image]}/clicks", json={"x": x, "y": y, "positive": True, "category_id": cat})
        client.post(f"/api/images/{ids[image]}/finish", json={"category_id": cat})
    assert state.adaptation.wait_idle(600)
    status = client.get(url).json()
    assert status["samples"] == 2 and status["version"] >= 1 and not status["busy"] and status["enabled"]

    adapted = _runs(client, ids["b.png"], points, cat)
    assert adapted != plain
    assert _runs(client, ids["b.png"], points) == plain  # no category: the plain model

    reset = client.delete(url).json()
    assert reset["version"] == 0 and reset["samples"] == 0
    assert _runs(client, ids["b.png"], points, cat) == plain
    assert state.store.list_adapters() == []
    state.adaptation.close()
