"""What the reference benchmark runs: a *case* is one target and its reference, as mask files.

Every dataset of ``clickmask eval --reference`` has one builder that turns its folder into a
:class:`CaseSet` (:func:`open_cases` picks it from the folder's layout):

- a part listing ``parts.json`` (PascalPart): :func:`.pairs.part_cases`, parts, touching pairs of
  parts and whole objects;
- an instance list ``instances.json`` (COCO128): :func:`.combinations.combination_cases`, unions of
  two touching instances;
- per-video folders ``images/<seq>/<frame>`` (DAVIS2016_dev): :func:`.frames.frame_cases`, later
  frames of a video with its first frame as the reference.

A case names its masks only; :func:`case_masks` reads them. The target is the union of its
``target`` masks, the reference's positive the union of its ``positive`` masks and its negative the
union of its ``negative`` masks minus the positive (so "the rest of the object" can be given as the
whole object).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clickmask.errors import DatasetError
from clickmask.io.parts import read_mask  # noqa: F401 (the builders read masks through here)


@dataclass(frozen=True)
class Case:
    """One target (the union of ``target`` masks on ``image``) and its reference (on ``reference_image``)."""

    name: str
    kind: str
    image: Path
    target: tuple[Path, ...]
    reference_image: Path
    positive: tuple[Path, ...]
    negative: tuple[Path, ...] = ()


@dataclass
class CaseSet:
    """A dataset's cases, the targets left out (name -> reason), the kinds reported apart, the protocol."""

    protocol: str
    kinds: tuple[str, ...]
    cases: list[Case]
    skipped: dict[str, str]


def union(paths: tuple[Path, ...], shape: tuple[int, int] | None = None) -> np.ndarray:
    """The union of mask files (all False of ``shape`` when there are none)."""
    if not paths:
        if shape is None:
            raise ValueError("an empty union needs a shape")
        return np.zeros(shape, bool)
    return np.logical_or.reduce([read_mask(p) for p in paths])


def case_masks(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target, reference positive, reference negative), HxW bool each (the reference's in its own image)."""
    gt = union(case.target)
    pos = union(case.positive)
    neg = union(case.negative, pos.shape) & ~pos
    return gt, pos, neg


def open_cases(root: Path) -> CaseSet:
    """The cases of the dataset folder ``root``, by its layout (see the module doc)."""
    root = Path(root)
    if (root / "parts.json").is_file():
        from clickmask.evaluation.reference.pairs import part_cases

        return part_cases(root)
    if (root / "instances.json").is_file():
        from clickmask.evaluation.reference.combinations import combination_cases

        return combination_cases(root)
    images = root / "images"
    if images.is_dir() and any(p.is_dir() for p in images.iterdir()):
        from clickmask.evaluation.reference.frames import frame_cases

        return frame_cases(root)
    raise DatasetError(f"{root}: --reference needs a part listing (parts.json), an instance list "
                       "(instances.json) or per-video folders (images/<seq>/<frame>)")
