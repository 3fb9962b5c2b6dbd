"""The sequences of the sequential benchmark: objects of one category, in a fixed order.

Two dataset layouts (see :mod:`clickmask.io.datasets`):

- with ``instances.json`` (COCO128): one sequence per category with at least
  ``min_instances`` instances that are not ``iscrowd`` and have ``area >=
  min_area`` pixels; instances in the order of the JSON list, categories in the
  order of their first instance.
- with images in per-video folders ``images/<seq>/<frame>.*`` (DAVIS): one
  sequence per video (the video is the category), every ``frame_step``-th frame
  (frames sorted by name, starting with the first); videos in the order of
  ``sequences.txt`` when present, else by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from clickmask.errors import DatasetError
from clickmask.io.datasets import Sample, load_dataset


@dataclass
class ObjectSequence:
    """The objects of one category, annotated in this order."""

    category: str
    samples: list[Sample]


@dataclass(frozen=True)
class SequenceOptions:
    """Which objects form the sequences."""

    min_instances: int = 5
    min_area: int = 1000
    frame_step: int = 5


def _instance_sequences(folder: Path, samples: list[Sample], opts: SequenceOptions) -> list[ObjectSequence]:
    """Per-category sequences from ``instances.json`` (already validated by load_dataset)."""
    json_path = folder / "instances.json"
    entries = json.loads(json_path.read_text(encoding="utf-8"))
    by_mask = {s.mask_path.resolve(): s for s in samples}
    groups: dict[str, list[Sample]] = {}
    for index, entry in enumerate(entries):
        sample = by_mask[(folder / entry["mask"]).resolve()]
        category = entry.get("category")
        if category is None:
            raise DatasetError(f"{json_path}: instance {index} has no 'category'")
        if entry.get("iscrowd"):
            continue
        area = entry.get("area")
        if not isinstance(area, (int, float)):
            area = int(sample.load_gt().sum())
        if area < opts.min_area:
            continue
        groups.setdefault(str(category), []).append(sample)
    return [ObjectSequence(c, s) for c, s in groups.items() if len(s) >= opts.min_instances]


def _video_sequences(folder: Path, samples: list[Sample], opts: SequenceOptions) -> list[ObjectSequence]:
    """One sequence per video folder, every ``frame_step``-th frame."""
    groups: dict[str, list[Sample]] = {}
    for sample in samples:
        video, sep, _ = sample.name.rpartition("/")
        if not sep:
            raise DatasetError(
                f"{folder}: no instances.json and image {sample.image_path.name} is not in a "
                "per-video folder (images/<seq>/<frame>): cannot form sequences"
            )
        groups.setdefault(video, []).append(sample)
    order = sorted(groups)
    listed = folder / "sequences.txt"
    if listed.is_file():
        names = [n.strip() for n in listed.read_text(encoding="utf-8").splitlines() if n.strip()]
        order = [n for n in names if n in groups] + [n for n in order if n not in names]
    out = []
    for video in order:
        frames = sorted(groups[video], key=lambda s: s.name)[:: opts.frame_step]
        if len(frames) >= opts.min_instances:
            out.append(ObjectSequence(video, frames))
    return out


def build_sequences(
    root: Path | str, dataset: str, options: SequenceOptions = SequenceOptions(), limit: int | None = None
) -> list[ObjectSequence]:
    """The sequences of ``dataset`` under data root ``root`` (the first ``limit`` if given).

    Raises DatasetError (one line naming the folder) when the layout does not
    allow sequences or no category has enough instances.
    """
    if options.frame_step < 1 or options.min_instances < 1:
        raise DatasetError(f"dataset {dataset}: frame_step and min_instances must be at least 1")
    if limit is not None and limit < 1:
        raise DatasetError(f"dataset {dataset}: --limit-sequences must be at least 1, got {limit}")
    samples = load_dataset(root, dataset)
    folder = Path(root).expanduser() / dataset
    if (folder / "instances.json").is_file():
        sequences = _instance_sequences(folder, samples, options)
    else:
        sequences = _video_sequences(folder, samples, options)
    if not sequences:
        raise DatasetError(
            f"{folder}: no sequence with at least {options.min_instances} objects "
            f"(min area {options.min_area} px, frame step {options.frame_step})"
        )
    return sequences if limit is None else sequences[:limit]


def select_sequences(sequences: list[ObjectSequence], names: list[str], dataset: str) -> list[ObjectSequence]:
    """The sequences whose category is in ``names``, in their original order.

    Each sequence keeps its own click bank, adapter and random seeds, so its
    results are the same as in a run over every sequence. Raises DatasetError
    naming any unknown category.
    """
    wanted = [n.strip() for n in names if n.strip()]
    known = {s.category for s in sequences}
    unknown = [n for n in wanted if n not in known]
    if not wanted or unknown:
        raise DatasetError(f"dataset {dataset}: unknown categories {unknown or names} (known: {', '.join(sorted(known))})")
    return [s for s in sequences if s.category in set(wanted)]
