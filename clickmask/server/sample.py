"""The sample project: scikit-image's own images written into a folder, with a few categories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skimage.data

from clickmask.io.images import save_png
from clickmask.paths import clickmask_home

SAMPLE_IMAGES = ("coffee", "chelsea", "astronaut", "rocket")
SAMPLE_CATEGORIES = (("cup", "#e6194b"), ("cat", "#3cb44b"), ("person", "#4363d8"), ("rocket", "#f58231"))


def default_sample_dir() -> Path:
    """Where ``clickmask serve --sample`` puts the sample project."""
    return clickmask_home() / "sample-project"


def build_sample_project(dest: Path | None = None) -> Path:
    """Write the sample images (if missing) and return the folder."""
    dest = Path(dest) if dest is not None else default_sample_dir()
    dest.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_IMAGES:
        path = dest / f"{name}.png"
        if not path.is_file():
            image = np.asarray(getattr(skimage.data, name)())
            if image.ndim == 2:
                image = np.stack([image] * 3, axis=-1)
            save_png(path, np.ascontiguousarray(image[..., :3], dtype=np.uint8))
    return dest


def add_sample_categories(store) -> None:
    """Give a fresh sample project its categories."""
    if not store.list_categories():
        for name, color in SAMPLE_CATEGORIES:
            store.add_category(name, color)
