"""Bundled samples: scikit-image's own images with masks made for them.

The images come from ``skimage.data`` (installed with scikit-image, no
download); the masks and their provenance are in this folder
(``samples.json``). They are licence-clean, unlike the research datasets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clickmask.io.images import load_mask

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class SampleImage:
    """A bundled sample: HxWx3 uint8 RGB image and its HxW bool object mask."""

    name: str
    image: np.ndarray
    mask: np.ndarray
    description: str


def sample_names() -> list[str]:
    """Names of the bundled samples, in order."""
    return [s["name"] for s in json.loads((HERE / "samples.json").read_text())["samples"]]


def load_samples(names: list[str] | None = None) -> list[SampleImage]:
    """Load the bundled samples (all, or the given names)."""
    import skimage.data

    out = []
    for entry in json.loads((HERE / "samples.json").read_text())["samples"]:
        if names is not None and entry["name"] not in names:
            continue
        image = np.asarray(getattr(skimage.data, entry["skimage"])())
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        image = np.ascontiguousarray(image[..., :3], dtype=np.uint8)
        mask = load_mask(HERE / entry["mask"])
        assert mask.shape == image.shape[:2], entry["name"]
        out.append(SampleImage(entry["name"], image, mask, entry["object"]))
    return out
