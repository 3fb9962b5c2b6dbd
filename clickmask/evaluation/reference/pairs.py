"""Targets and their references on a part dataset (PascalPart's ``parts.json`` listing).

The protocol (RefCut's combination evaluation, as issue 24 states it):

- a *sample* is one object of an image (``image``, ``object`` number) of a category; its
  entries in the listing are its parts (``part`` names) and its whole mask (``part == "object"``);
- the *targets* of a sample are each single part of at least ``min_area`` pixels, every pair
  of such parts that touch (the masks, each dilated by ``touch_px`` pixels, overlap) and the
  whole object (when the sample has at least one such part);
- the *reference* of a target is the next sample of the same category in lexicographic
  order of (image file name, object number), wrapping around to the first; its positive
  mask is the union of its parts with the target's part names (any area), its negative
  mask the rest of its object. A target whose reference lacks one of the part names (or
  whose category has one sample only) is skipped and counted.

Everything here is plain data: masks are loaded by the caller (:func:`~clickmask.io.parts.load_mask`);
the listing itself is read by :mod:`clickmask.io.parts`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import cv2
import numpy as np

from clickmask.evaluation.reference.cases import Case, CaseSet, case_masks
from clickmask.io.parts import (  # noqa: F401 (the listing's names, re-exported for the target builders)
    MIN_AREA, TOUCH_PX, WHOLE, ObjectSample, PartEntry, group_samples, load_mask, read_listing, touching,
)

@dataclass(frozen=True)
class Target:
    """One evaluation target and its reference.

    ``parts``: the part names whose union is the target (empty tuple = the whole object);
    ``kind``: "part", "pair" or "object".
    """

    sample: ObjectSample
    parts: tuple[str, ...]
    kind: str
    reference: ObjectSample

    @property
    def name(self) -> str:
        return f"{self.sample.name}:{'+'.join(self.parts) or WHOLE}"


@dataclass
class Pairing:
    """The targets with a reference, and the skipped ones (name -> reason)."""

    targets: list[Target]
    skipped: dict[str, str]


def next_of_category(samples: list[ObjectSample]) -> dict[tuple[str, int], ObjectSample | None]:
    """Each sample's reference: the next sample of its category in order, wrapping; None when alone."""
    by_cat: dict[str, list[ObjectSample]] = defaultdict(list)
    for s in sorted(samples, key=lambda s: s.key):
        by_cat[s.category].append(s)
    out: dict[tuple[str, int], ObjectSample | None] = {}
    for group in by_cat.values():
        for i, s in enumerate(group):
            out[s.key] = group[(i + 1) % len(group)] if len(group) > 1 else None
    return out


def build_targets(
    samples: list[ObjectSample],
    load: Callable[[PartEntry], np.ndarray],
    min_area: int = MIN_AREA,
    touch_px: int = TOUCH_PX,
) -> Pairing:
    """Every target of every sample with parts, paired with its reference (see the module doc).

    ``load``: reads an entry's HxW bool mask (for the touching test).
    """
    refs = next_of_category(samples)
    targets: list[Target] = []
    skipped: dict[str, str] = {}
    for s in samples:
        parts = sorted(p for p, e in s.parts.items() if e.area >= min_area)
        if not parts or s.whole is None:
            continue
        candidates: list[tuple[tuple[str, ...], str]] = [((p,), "part") for p in parts]
        masks = {p: load(s.parts[p]) for p in parts}
        for i, a in enumerate(parts):
            for b in parts[i + 1:]:
                if touching(masks[a], masks[b], touch_px):
                    candidates.append(((a, b), "pair"))
        candidates.append(((), "object"))
        ref = refs[s.key]
        for names, kind in candidates:
            target = Target(s, names, kind, ref)  # type: ignore[arg-type]
            if ref is None:
                skipped[target.name] = "no other sample of the category"
            elif ref.whole is None:
                skipped[target.name] = f"reference {ref.name} has no whole-object mask"
            elif missing := [p for p in names if p not in ref.parts]:
                skipped[target.name] = f"reference {ref.name} lacks {', '.join(missing)}"
            else:
                targets.append(target)
    return Pairing(targets, skipped)


PROTOCOL = ("parts: each part, each touching pair of parts and the whole object; reference = the next object "
            "of the category (lexicographic), the same parts positive, the rest of that object negative")


def target_case(root: Path, target: Target) -> Case:
    """The masks of a target and its reference, as files (:class:`~.cases.Case`)."""
    s, ref = target.sample, target.reference
    assert s.whole is not None and ref.whole is not None
    masks = Path(root) / "masks"
    if target.parts:
        gt = tuple(masks / s.parts[p].mask for p in target.parts)
        pos = tuple(masks / ref.parts[p].mask for p in target.parts)
    else:
        gt, pos = (masks / s.whole.mask,), (masks / ref.whole.mask,)
    # the negative: the rest of the reference's object (case_masks takes the positive out)
    return Case(target.name, target.kind, Path(root) / "images" / s.image, gt,
                Path(root) / "images" / ref.image, pos, (masks / ref.whole.mask,))


def target_masks(root: Path, target: Target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(target gt, reference positive, reference negative), HxW bool each (the reference's in its image)."""
    return case_masks(target_case(root, target))


def part_cases(root: Path, min_area: int = MIN_AREA, touch_px: int = TOUCH_PX) -> CaseSet:
    """The cases of a part dataset folder (``parts.json``, ``images/``, ``masks/``)."""
    root = Path(root)
    samples = group_samples(read_listing(root / "parts.json"))
    pairing = build_targets(samples, lambda e: load_mask(root, e), min_area, touch_px)
    return CaseSet(PROTOCOL, ("part", "pair", "object"), [target_case(root, t) for t in pairing.targets],
                   pairing.skipped)
