"""Browser test fixtures: Debian's chromium (installed with apt-get when missing), screenshots folder.

Under CI (``CI`` set) a browser that cannot be had is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-quic", "--disable-sync", "--disable-dev-shm-usage"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "e2e"


def _ensure_chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        reason = "chromium is missing and cannot be installed here (needs root and apt-get)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (required under CI)")
        pytest.skip(reason)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium"]):
        proc = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    if os.environ.get("CI"):
        import playwright.sync_api as sync_api  # under CI a missing playwright is an error
    else:
        sync_api = pytest.importorskip("playwright.sync_api")
    exe = _ensure_chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(exe), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 860},
        )
        yield context
        context.close()


@pytest.fixture()
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture()
def app_server(tmp_path, request):
    """A live server on the sample project (with its categories): yields (server, store).

    ``server.predictor`` is the real model, or the GrabCut fallback when none is installed;
    ``server.state`` is the AppState. Indirect parametrisation passes an ``OPOConfig`` (training budget).
    """
    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer
    from clickmask.server.sample import add_sample_categories, build_sample_project
    from clickmask.web import static_dir

    if not (static_dir() / "vendor" / "konva.min.js").is_file():
        pytest.fail("the front end is not built: run 'make setup' (npm ci && npm run build in clickmask/web)")
    store = open_project(build_sample_project(tmp_path / "sample"))
    add_sample_categories(store)
    predictor = load_predictor(None, allow_fallback=True)
    state = AppState(store=store, predictor=predictor, opo_config=getattr(request, "param", None))
    with LiveServer(create_app(state)) as server:
        server.predictor = predictor
        server.state = state
        yield server, store
    state.adaptation.close()
