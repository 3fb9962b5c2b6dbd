"""Object combinations on an instance dataset (COCO128's ``instances.json``): two touching instances as one target.

The protocol (issue 24's object-combination set, after RefCut's combination evaluation):

- the instances considered are those not marked ``iscrowd`` with at least ``min_area`` pixels;
- a *pair* is two such instances of one image that touch: their masks, each dilated by
  ``touch_px`` pixels (:data:`~.pairs.TOUCH_PX` = 2, a 5 px disc), overlap. The target is their
  union; its kind is ``same`` (one category, e.g. two persons) or ``mixed`` (two categories);
- the *reference* of a pair is the next pair with the same two categories (as an unordered pair)
  in lexicographic order of (image, first mask, second mask) that lies on *another* image,
  wrapping around to the first; its union is the positive mask, and the negative mask is every
  other instance of the reference image (crowd and small ones included) that touches that union
  (empty when none does): what lies against the wanted combination but is not part of it;
- a pair whose categories occur as a touching pair on no other image is skipped and counted.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from clickmask.errors import DatasetError
from clickmask.evaluation.reference.cases import Case, CaseSet, read_mask
from clickmask.evaluation.reference.pairs import MIN_AREA, TOUCH_PX, touching

PROTOCOL = ("combinations: two touching instances (2 px dilation, no crowd, >= 100 px each) as one target; "
            "reference = the next touching pair of the same two categories on another image (lexicographic, "
            "wrapping), its union positive, the other instances touching it negative")


@dataclass(frozen=True)
class Instance:
    """One instance of the list: its ``mask`` and ``image`` paths (relative to the dataset), category, area, crowd."""

    mask: str
    image: str
    category: str
    area: int
    iscrowd: bool = False


@dataclass(frozen=True)
class InstancePair:
    """Two touching instances of one image, ``a.mask < b.mask``."""

    a: Instance
    b: Instance

    @property
    def image(self) -> str:
        return self.a.image

    @property
    def key(self) -> tuple[str, str, str]:
        """The lexicographic sort key: (image, first mask, second mask)."""
        return (self.a.image, self.a.mask, self.b.mask)

    @property
    def categories(self) -> tuple[str, str]:
        """The two categories as an unordered pair (sorted)."""
        return tuple(sorted((self.a.category, self.b.category)))  # type: ignore[return-value]

    @property
    def kind(self) -> str:
        return "same" if self.a.category == self.b.category else "mixed"

    @property
    def name(self) -> str:
        """``<first mask stem>+<second mask stem>``, e.g. ``000000000009_00+000000000009_02``."""
        return f"{Path(self.a.mask).stem}+{Path(self.b.mask).stem}"


@dataclass(frozen=True)
class Combination:
    """A target pair, its reference pair and the reference's negative instances."""

    pair: InstancePair
    reference: InstancePair
    negative: tuple[Instance, ...]


def read_instances(path: Path) -> list[Instance]:
    """Parse ``instances.json`` (a list of {image, mask, category, area, iscrowd, ...})."""
    try:
        items = json.loads(Path(path).read_text(encoding="utf-8"))
        return [Instance(str(e["mask"]), str(e["image"]), str(e["category"]), int(e["area"]),
                         bool(e.get("iscrowd", 0))) for e in items]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"cannot read the instance list '{path}': {exc}") from None


def by_image(instances: Iterable[Instance]) -> dict[str, list[Instance]]:
    """The instances of each image, images and their instances in lexicographic order."""
    out: dict[str, list[Instance]] = defaultdict(list)
    for inst in instances:
        out[inst.image].append(inst)
    return {image: sorted(out[image], key=lambda i: i.mask) for image in sorted(out)}


def touching_pairs(instances: list[Instance], load: Callable[[Instance], np.ndarray], min_area: int = MIN_AREA,
                   touch_px: int = TOUCH_PX) -> list[InstancePair]:
    """Every touching pair of one image's eligible instances (not crowd, ``area >= min_area``), in key order."""
    eligible = sorted((i for i in instances if not i.iscrowd and i.area >= min_area), key=lambda i: i.mask)
    masks = {i.mask: load(i) for i in eligible}
    return [InstancePair(a, b) for n, a in enumerate(eligible) for b in eligible[n + 1:]
            if touching(masks[a.mask], masks[b.mask], touch_px)]


def next_pair_elsewhere(pairs: list[InstancePair]) -> dict[tuple[str, str, str], InstancePair | None]:
    """Each pair's reference: the next pair of its categories on another image, in key order, wrapping."""
    groups: dict[tuple[str, str], list[InstancePair]] = defaultdict(list)
    for p in sorted(pairs, key=lambda p: p.key):
        groups[p.categories].append(p)
    out: dict[tuple[str, str, str], InstancePair | None] = {}
    for group in groups.values():
        for i, p in enumerate(group):
            later = (group[(i + j) % len(group)] for j in range(1, len(group)))
            out[p.key] = next((q for q in later if q.image != p.image), None)
    return out


def negatives(pair: InstancePair, instances: list[Instance], load: Callable[[Instance], np.ndarray],
              touch_px: int = TOUCH_PX) -> tuple[Instance, ...]:
    """The other instances of the pair's image (any area, crowd too) touching the pair's union."""
    whole = load(pair.a) | load(pair.b)
    return tuple(i for i in instances
                 if i.mask not in (pair.a.mask, pair.b.mask) and touching(whole, load(i), touch_px))


def build_combinations(instances: list[Instance], load: Callable[[Instance], np.ndarray], min_area: int = MIN_AREA,
                       touch_px: int = TOUCH_PX) -> tuple[list[Combination], dict[str, str]]:
    """Every touching pair with its reference (see the module doc), and the skipped ones (name -> reason)."""
    images = by_image(instances)
    pairs = [p for image in images.values() for p in touching_pairs(image, load, min_area, touch_px)]
    refs = next_pair_elsewhere(pairs)
    combinations: list[Combination] = []
    skipped: dict[str, str] = {}
    for p in sorted(pairs, key=lambda p: p.key):
        ref = refs[p.key]
        if ref is None:
            skipped[p.name] = f"no touching {' + '.join(p.categories)} pair on another image"
        else:
            combinations.append(Combination(p, ref, negatives(ref, images[ref.image], load, touch_px)))
    return combinations, skipped


def combination_cases(root: Path, min_area: int = MIN_AREA, touch_px: int = TOUCH_PX) -> CaseSet:
    """The cases of an instance dataset folder (``instances.json`` with paths relative to ``root``)."""
    root = Path(root)
    cache: dict[str, np.ndarray] = {}

    def load(inst: Instance) -> np.ndarray:  # one image's masks at a time (instances come image by image)
        if inst.mask not in cache:
            if len(cache) > 64:
                cache.clear()
            cache[inst.mask] = read_mask(root / inst.mask)
        return cache[inst.mask]

    combinations, skipped = build_combinations(read_instances(root / "instances.json"), load, min_area, touch_px)
    cases = [Case(c.pair.name, c.pair.kind, root / c.pair.image, (root / c.pair.a.mask, root / c.pair.b.mask),
                  root / c.reference.image, (root / c.reference.a.mask, root / c.reference.b.mask),
                  tuple(root / i.mask for i in c.negative)) for c in combinations]
    return CaseSet(PROTOCOL, ("same", "mixed"), cases, skipped)
