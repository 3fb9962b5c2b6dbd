"""`clickmask serve` as a process: prints the URL, refuses open binds, survives SIGKILL without losing objects."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image

from clickmask.project import open_project


def _send(method: str, url: str, body: dict) -> tuple[int, dict]:
    """(status, JSON body) of a request as the clickmask page makes it."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "X-Clickmask-Tab": ""})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _post(url: str, body: dict) -> dict:
    status, data = _send("POST", url, body)
    assert status == 200, (status, data)
    return data


def _url(proc: subprocess.Popen, pattern: str = r"(http://127\.0\.0\.1:\d+/)") -> str:
    """The URL a starting ``serve`` prints."""
    for _ in range(5):
        match = re.search(pattern, proc.stdout.readline())
        if match:
            return match.group(1)
    raise AssertionError(proc.stderr.read() if proc.poll() is not None else "no URL printed")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "clickmask", "serve", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env)


def test_refuses_public_host_without_token(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    proc = subprocess.run([sys.executable, "-m", "clickmask", "serve", str(tmp_path), "--host", "0.0.0.0",
                           "--no-browser", "--model", "grabcut"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--token" in proc.stderr


def test_serve_prints_url_and_sigkill_keeps_finished_objects(tmp_path):
    img = np.full((60, 80, 3), 20, np.uint8)
    img[10:50, 20:60] = 230
    Image.fromarray(img).save(tmp_path / "a.png")
    proc = _start([str(tmp_path), "--port", "0", "--no-browser", "--model", "grabcut", "--token", "tok"])
    try:
        url = _url(proc, r"(http://127\.0\.0\.1:\d+/)\?token=tok")
        try:
            urllib.request.urlopen(url + "api/images", timeout=10)
            raise AssertionError("a request without the token was served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        ids = []
        for i in range(3):
            _post(f"{url}api/images/1/clicks?token=tok", {"x": 40, "y": 30, "positive": True})
            ids.append(_post(f"{url}api/images/1/finish?token=tok", {})["id"])
        _post(f"{url}api/images/1/clicks?token=tok", {"x": 40, "y": 30, "positive": True})  # in flight
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        _stop(proc)
    store = open_project(tmp_path)
    assert store.integrity_ok()
    assert [i["id"] for i in store.list_instances(1)] == ids


def test_version_check_holds_across_two_server_processes(tmp_path):
    """Two ``serve`` processes on one project: of two concurrent edits of the same version, one wins."""
    Image.fromarray(np.full((60, 80, 3), 90, np.uint8)).save(tmp_path / "a.png")
    open_project(tmp_path).close()
    procs = [_start([str(tmp_path), "--port", "0", "--no-browser", "--model", "grabcut"]) for _ in range(2)]
    try:
        urls = [_url(p) for p in procs]
        outcomes = []
        with ThreadPoolExecutor(2) as pool:
            for i in range(30):
                made = _post(f"{urls[i % 2]}api/images/1/stroke", {"points": [[40, 30]], "radius": 5})
                edits = [pool.submit(_send, "PATCH", f"{url}api/instances/{made['id']}",
                                     {"version": made["version"], "hidden": True}) for url in urls]
                outcomes.append(sorted(e.result()[0] for e in edits))
    finally:
        for proc in procs:
            _stop(proc)
    assert outcomes == [[200, 409]] * 30
    store = open_project(tmp_path)
    assert all(i["version"] == 2 for i in store.list_instances(1))


def test_sample_project_is_built_from_skimage(tmp_path):
    from clickmask.server.run import build_state

    state = build_state(tmp_path / "sample", sample=True, model="grabcut")
    assert sorted(p.name for p in (tmp_path / "sample").glob("*.png")) == [
        "astronaut.png", "chelsea.png", "coffee.png", "rocket.png"]
    assert [c["name"] for c in state.store.list_categories()] == ["cup", "cat", "person", "rocket"]
    assert state.status()["counts"]["images"] == 4
    again = open_project(tmp_path / "sample" / ".clickmask" / "project.db")
    assert again.root == (tmp_path / "sample").resolve()


def test_a_killed_server_gives_the_unfinished_object_back_on_restart(tmp_path):
    """The clicks of the object in progress are kept in the project: after SIGKILL a new server
    restores them (same clicks, same mask), and finishing it forgets them."""
    img = np.full((60, 80, 3), 20, np.uint8)
    img[10:50, 20:60] = 230
    Image.fromarray(img).save(tmp_path / "a.png")
    args = [str(tmp_path), "--port", "0", "--no-browser", "--model", "grabcut"]
    proc = _start(args)
    try:
        url = _url(proc)
        _post(f"{url}api/images/1/clicks", {"x": 40, "y": 30, "positive": True})
        before = _post(f"{url}api/images/1/clicks", {"x": 5, "y": 5, "positive": False})
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        _stop(proc)
    proc = _start(args)
    try:
        url = _url(proc)
        with urllib.request.urlopen(urllib.request.Request(f"{url}api/images/1/mask"), timeout=60) as res:
            after = json.loads(res.read())
        assert after["clicks"] == before["clicks"] and after["runs"] == before["runs"]
        _post(f"{url}api/images/1/finish", {})
    finally:
        _stop(proc)
    store = open_project(tmp_path)
    assert len(store.list_instances(1)) == 1 and store.unfinished(1) is None
