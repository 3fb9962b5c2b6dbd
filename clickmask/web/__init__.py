"""The browser front end: sources in ``static/``; ``static/vendor/`` is filled by ``npm run build``."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent


def static_dir() -> Path:
    """Folder of the files served under ``/static`` (index.html, app.js, vendor/konva.min.js)."""
    return HERE / "static"
