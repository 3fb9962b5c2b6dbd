"""``clickmask serve``: open a project, start uvicorn, print the URL, open a browser."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import socket
import sys
import threading
import webbrowser
from pathlib import Path

import uvicorn

from clickmask.engine.refine import InferenceOptions
from clickmask.engine.loader import load_predictor
from clickmask.errors import ClickmaskError
from clickmask.project import open_project
from clickmask.server.app import create_app
from clickmask.server.checker import start_checker
from clickmask.server.sample import add_sample_categories, build_sample_project
from clickmask.server.security import check_bind, is_localhost
from clickmask.server.state import AppState

logger = logging.getLogger(__name__)
DEFAULT_PORT = 8765


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 = any free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto is
    # TCP; without it every response pays a ~40 ms Nagle/delayed-ACK stall.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ClickmaskError(f"port {port} on {host} is in use: pick another with --port (0 = any free port)") from None
        raise ClickmaskError(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def build_state(path: Path | None, *, sample: bool = False, model: str | None = None, token: str | None = None,
                url: str | None = None, infer: str | None = None):
    """Open the project (building the sample one if asked) and load the predictor.

    ``infer``: inference options text (see clickmask.engine.refine), e.g. "zoom,cfr=1".
    """
    if sample:
        path = build_sample_project(path)
    if path is None:
        raise ClickmaskError("give a folder of images to serve (or --sample)")
    store = open_project(Path(path), url=url)
    if sample:
        add_sample_categories(store)
    if not store.list_images():
        raise ClickmaskError(f"{store.root}: no images found (looked for .jpg, .png, .tif, ... files)")
    start_checker(store)
    options = InferenceOptions.parse(infer)
    predictor = load_predictor(model, allow_fallback=model is None, options=options)
    return AppState(store=store, predictor=predictor, token=token)


def _can_open_browser() -> bool:
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def serve(path: Path | None, *, host: str = "127.0.0.1", port: int | None = None, token: str | None = None,
          model: str | None = None, open_browser: bool = True, sample: bool = False, url: str | None = None,
          infer: str | None = None) -> None:
    """Run the app until interrupted; ``port=None`` = 8765, or a free port if that one is taken."""
    check_bind(host, token)
    if port is None:  # the default port, or any free one when it is taken (a second app, an old run)
        try:
            sock = bind_socket(host, DEFAULT_PORT)
        except ClickmaskError:
            sock = bind_socket(host, 0)
    else:
        sock = bind_socket(host, port)
    state = build_state(path, sample=sample, model=model, token=token, url=url, infer=infer)
    state.local_only = is_localhost(host) and not token
    app = create_app(state)
    actual = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    link = f"http://{shown}:{actual}/" + (f"?token={token}" if token else "")
    counts = state.store.counts()
    print(f"clickmask: serving {state.store.root} ({counts['images']} images, model {state.predictor.model_id})")
    print(f"clickmask: open {link}   (Ctrl+C stops)", flush=True)
    if open_browser and _can_open_browser():
        threading.Timer(0.8, lambda: webbrowser.open(link)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])


def new_token() -> str:
    """A random access token."""
    return secrets.token_urlsafe(16)
