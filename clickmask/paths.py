"""Where clickmask keeps its cache: models and image embeddings.

The root is ``$CLICKMASK_HOME`` when set, else ``$XDG_CACHE_HOME/clickmask``,
else ``~/.cache/clickmask``. Nothing here creates folders; writers do.
"""

from __future__ import annotations

import os
from pathlib import Path


def clickmask_home() -> Path:
    """Return the cache root folder (may not exist yet)."""
    env = os.environ.get("CLICKMASK_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "clickmask"


def models_dir(home: Path | None = None) -> Path:
    """Folder holding one sub-folder per installed model."""
    return (home or clickmask_home()) / "models"


def embeddings_dir(home: Path | None = None) -> Path:
    """Folder holding the on-disk embedding cache (one sub-folder per model)."""
    return (home or clickmask_home()) / "embeddings"
