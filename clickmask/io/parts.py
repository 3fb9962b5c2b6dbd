"""A part dataset's listing (PascalPart's ``parts.json``): its entries, objects and masks.

``parts.json`` is a list of ``{mask, image, object, category, part, area, ...}``: one mask file
(under ``masks/``) per part of an object, and the whole object's mask under the part name
``object``. Read by the reference benchmark (:mod:`clickmask.evaluation.reference.pairs`) and by the
training of the learned reference prompts (:mod:`clickmask.training.reference_prompts`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from clickmask.errors import DatasetError

WHOLE = "object"  # the part name of an object's whole mask in the listing
MIN_AREA = 100
TOUCH_PX = 2


@dataclass(frozen=True)
class PartEntry:
    """One mask of the listing: ``mask`` file name (under ``masks/``), its image, object, category, part, area."""

    mask: str
    image: str
    object: int
    category: str
    part: str
    area: int


@dataclass
class ObjectSample:
    """One object: its whole mask entry and its part entries by name."""

    image: str
    object: int
    category: str
    whole: PartEntry | None = None
    parts: dict[str, PartEntry] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, int]:
        """The lexicographic sort key: (image file name, object number)."""
        return (self.image, self.object)

    @property
    def name(self) -> str:
        return f"{Path(self.image).stem}_o{self.object}"


def read_listing(path: Path) -> list[PartEntry]:
    """Parse ``parts.json`` (a list of {mask, image, object, category, part, area, ...})."""
    try:
        items = json.loads(Path(path).read_text())
        return [PartEntry(str(e["mask"]), str(e["image"]), int(e["object"]), str(e["category"]), str(e["part"]),
                          int(e["area"])) for e in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot read the part listing '{path}': {exc}") from None


def group_samples(entries: Iterable[PartEntry]) -> list[ObjectSample]:
    """The objects of a listing, in lexicographic order of (image, object number)."""
    samples: dict[tuple[str, int], ObjectSample] = {}
    for e in entries:
        s = samples.setdefault((e.image, e.object), ObjectSample(e.image, e.object, e.category))
        if e.part == WHOLE:
            s.whole = e
        else:
            s.parts[e.part] = e
    return [samples[k] for k in sorted(samples)]


def touching(a: np.ndarray, b: np.ndarray, px: int = TOUCH_PX) -> bool:
    """Whether two HxW bool masks touch: each dilated by ``px`` pixels, they overlap."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    da = cv2.dilate(a.astype(np.uint8), kernel) > 0
    db = cv2.dilate(b.astype(np.uint8), kernel) > 0
    return bool((da & db).any())


def read_mask(path: Path) -> np.ndarray:
    """An HxW bool mask file (> 0 is inside)."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"cannot read mask '{path}'")
    return mask > 0


def load_mask(root: Path, entry: PartEntry) -> np.ndarray:
    """The HxW bool mask of a listing entry (``root/masks/<mask>``, > 0 is inside)."""
    return read_mask(Path(root) / "masks" / entry.mask)
