"""The interactive protocol along a volume's slice axis: 3D Dice per round against slice-by-slice annotation.

A volume dataset holds ``volumes/<case>.nii.gz`` (NIfTI) and/or
``dicom/<case>/`` (a DICOM series), each with ``labels/<case>.nii.gz`` on the
same grid (read with :func:`clickmask.io.volumes.load_labels`); an optional
``labels.json`` names the label values (``{case: {"labels": {value: {"name": ...}}}}``).

Every labelled structure of at least ``min_voxels`` voxels is one object. Its
slices (along z, each windowed to HxWx3 uint8 once: CT with the abdomen
preset, any other modality with the volume's 0.5..99.5 percentiles, see
:meth:`clickmask.io.volumes.Volume.default_window`) are the frames of the
video protocol (:func:`clickmask.evaluation.video.protocol.run_sequence`): the
same rounds, clicks and propagation, and the 3D Dice of the stacked masks
after each round. DAVIS ignores error regions under 100 px of a 854x480 frame;
the slices here are much smaller, so the threshold is scaled to the slice's
area (:func:`min_error_area`).

The clicks to reach a Dice target (0.85) with propagation are the clicks of
the rounds up to the first round whose 3D Dice reaches it. The protocol's 8
rounds are always run (their Dice is the per-round table); when the target is
not reached by then, rounds go on (same rule) until it is or ``max_rounds``
were run (None: not reached). The baseline annotates every slice that holds the structure
with the image engine alone: the image robot (:mod:`clickmask.evaluation.runner`)
until the slice's IoU reaches the target, at most ``slice_max_clicks`` (NoC
per slice, a slice that never reaches it counts ``slice_max_clicks``), summed.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from clickmask.errors import DatasetError
from clickmask.evaluation.metrics import noc
from clickmask.evaluation.runner import EvalOptions, evaluate_object
from clickmask.evaluation.video.protocol import ProtocolOptions, SequenceResult, run_sequence
from clickmask.io.volumes import Volume, load_labels, load_volume
from clickmask.propagation.propagator import PropagationOptions

#: DAVIS's frame (854x480) on which the protocol's 100 px error-region threshold is defined.
DAVIS_FRAME_AREA = 854 * 480
TARGET_DICE = 0.85
MIN_VOXELS = 1000
SLICE_MAX_CLICKS = 20
#: rounds run at most to reach the Dice target (the protocol's 8 always)
MAX_ROUNDS = 20


@dataclass(frozen=True)
class VolumeCase:
    """One volume and its label volume; ``names``: label value -> structure name (may be empty)."""

    name: str
    volume_path: Path
    labels_path: Path
    names: dict[int, str] = field(default_factory=dict)

    def open(self) -> tuple[Volume, np.ndarray]:
        """(the volume, its labels ``[z, y, x]`` on the volume's grid)."""
        volume = load_volume(self.volume_path)
        return volume, load_labels(self.labels_path, volume)


def is_volume_dataset(folder: Path) -> bool:
    """True when ``folder`` has the volume layout (``labels/`` with ``volumes/`` or ``dicom/``)."""
    return (folder / "labels").is_dir() and ((folder / "volumes").is_dir() or (folder / "dicom").is_dir())


def _label_names(folder: Path) -> dict[str, dict[int, str]]:
    path = folder / "labels.json"
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        return {case: {int(v): str(d.get("name", v)) for v, d in (entry.get("labels") or {}).items()}
                for case, entry in raw.items()}
    except (ValueError, AttributeError, TypeError) as exc:
        raise DatasetError(f"'{path}' is not a label list ({{case: {{labels: {{value: {{name}}}}}}}}): {exc}") from exc


def load_volume_dataset(root: Path | str, name: str) -> list[VolumeCase]:
    """The cases of ``<root>/<name>`` (NIfTI volumes, then DICOM series), each with its label file."""
    folder = Path(root) / name
    if not is_volume_dataset(folder):
        raise DatasetError(f"'{folder}' is not a volume dataset: it needs labels/ and volumes/ or dicom/")
    names = _label_names(folder)
    found: list[tuple[str, Path]] = []
    if (folder / "volumes").is_dir():
        for path in sorted((folder / "volumes").iterdir()):
            if path.name.endswith((".nii.gz", ".nii")):
                found.append((path.name.removesuffix(".gz").removesuffix(".nii"), path))
    if (folder / "dicom").is_dir():
        found += [(p.name, p) for p in sorted((folder / "dicom").iterdir()) if p.is_dir()]
    cases = []
    for case, path in found:
        labels = next((p for p in (folder / "labels" / f"{case}.nii.gz", folder / "labels" / f"{case}.nii")
                       if p.is_file()), None)
        if labels is None:
            raise DatasetError(f"volume '{path}' has no label file labels/{case}.nii.gz in '{folder}'")
        cases.append(VolumeCase(case, path, labels, names.get(case, {})))
    if not cases:
        raise DatasetError(f"'{folder}' holds no volumes")
    return cases


class SliceFrames:
    """A volume's slices along z as HxWx3 uint8 frames, windowed once (the window computed once per volume)."""

    def __init__(self, volume: Volume) -> None:
        window = volume.default_window()
        self._frames = [volume.slice_rgb(0, z, window) for z in range(volume.num_slices(0))]

    def __len__(self) -> int:
        return len(self._frames)

    def frame(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self._frames):
            raise IndexError(f"slice {index} of {len(self._frames)}")
        return self._frames[index]


def structures(labels: np.ndarray, min_voxels: int = MIN_VOXELS) -> list[tuple[int, int]]:
    """``(label value, voxel count)`` of every non-zero label with at least ``min_voxels`` voxels, by value."""
    values, counts = np.unique(np.asarray(labels).ravel(), return_counts=True)
    return [(int(v), int(c)) for v, c in zip(values, counts) if v != 0 and c >= min_voxels]


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice of two bool arrays of any shape; 1.0 when both are empty."""
    gt = np.asarray(gt, bool)
    pred = np.asarray(pred, bool)
    total = np.count_nonzero(gt) + np.count_nonzero(pred)
    return float(2.0 * np.count_nonzero(gt & pred) / total) if total else 1.0


def min_error_area(height: int, width: int, davis_area: int = 100) -> int:
    """The protocol's error-region threshold (100 px on a 854x480 frame) scaled to a HxW slice (at least 1)."""
    return max(1, int(round(davis_area * height * width / DAVIS_FRAME_AREA)))


def clicks_to_reach(scores: list[float], clicks: list[int], target: float) -> int | None:
    """Clicks of the rounds up to the first whose score reaches ``target``; None if none does."""
    total = 0
    for score, n in zip(scores, clicks):
        total += n
        if score >= target:
            return total
    return None


@dataclass
class StructureResult:
    """One structure: the propagation rounds (3D Dice, clicks) and the slice-by-slice baseline."""

    case: str
    label: int
    name: str
    voxels: int
    slices: int  # slices that hold the structure
    dice: list[float]
    clicks: list[int]
    annotated: list[int]
    seconds: list[float]
    propagate_ms: list[float] = field(repr=False)
    slice_noc: list[int]
    slice_failures: int
    target: float

    @property
    def propagation_clicks(self) -> int | None:
        return clicks_to_reach(self.dice, self.clicks, self.target)

    @property
    def slice_clicks(self) -> int:
        return int(sum(self.slice_noc))

    @property
    def ratio(self) -> float:
        """Propagation clicks / slice-by-slice clicks (inf when propagation never reached the target)."""
        p = self.propagation_clicks
        return math.inf if p is None else p / max(1, self.slice_clicks)

    def as_dict(self) -> dict:
        return {"case": self.case, "label": self.label, "name": self.name, "voxels": self.voxels,
                "slices": self.slices, "dice": self.dice, "clicks": self.clicks, "annotated": self.annotated,
                "seconds": self.seconds,
                "propagate_ms_median": float(np.median(self.propagate_ms)) if self.propagate_ms else None,
                "propagation_clicks": self.propagation_clicks, "slice_noc": self.slice_noc,
                "slice_clicks": self.slice_clicks, "slice_failures": self.slice_failures,
                "ratio": None if math.isinf(self.ratio) else self.ratio}


def slice_by_slice(predictor, frames: SliceFrames, gt: np.ndarray, target: float = TARGET_DICE,
                   max_clicks: int = SLICE_MAX_CLICKS) -> list[int]:
    """NoC at ``target`` IoU of every slice of ``gt`` (``[z, y, x]`` bool) holding the structure, image engine alone."""
    nocs = []
    options = EvalOptions(max_clicks=max_clicks, stop_at=target)
    for z in np.flatnonzero(gt.reshape(gt.shape[0], -1).any(axis=1)):
        predictor.set_image(frames.frame(int(z)))
        result = evaluate_object(predictor, gt[z], None, options, name=f"slice {z}")
        nocs.append(noc(result.ious, target, max_clicks))
    return nocs


def run_structure(predictor, model, case: str, label: int, name: str, frames: SliceFrames, labels: np.ndarray,
                  options: ProtocolOptions, propagation: PropagationOptions = PropagationOptions(),
                  target: float = TARGET_DICE, slice_max_clicks: int = SLICE_MAX_CLICKS, baseline: bool = True,
                  max_rounds: int = MAX_ROUNDS, on_step: Callable[[], None] | None = None) -> StructureResult:
    """The rounds along the slices for structure ``label`` (3D Dice after each), then the slice-by-slice baseline.

    ``options.rounds`` rounds are run, then more (up to ``max_rounds``) until the Dice reaches ``target``.
    """
    gt = np.asarray(labels == label, bool)
    dices: list[float] = []

    def after_round(result: SequenceResult, track) -> bool:
        dices.append(dice(gt, np.stack(track.masks())))
        if on_step is not None and len(dices) <= options.rounds:
            on_step()
        return len(dices) >= options.rounds and dices[-1] >= target

    longest = dataclasses.replace(options, rounds=max(options.rounds, max_rounds))
    run = run_sequence(predictor, model, f"{case}:{name}", frames, list(gt), longest, propagation,
                       on_round=after_round)
    nocs = slice_by_slice(predictor, frames, gt, target, slice_max_clicks) if baseline else []
    if on_step is not None:
        on_step()
    return StructureResult(case=case, label=label, name=name, voxels=int(np.count_nonzero(gt)),
                           slices=int(gt.reshape(gt.shape[0], -1).any(axis=1).sum()), dice=dices,
                           clicks=list(run.clicks), annotated=list(run.annotated), seconds=list(run.seconds),
                           propagate_ms=list(run.propagate_ms), slice_noc=nocs,
                           slice_failures=sum(1 for n in nocs if n >= slice_max_clicks), target=target)


def summarize_structures(results: list[StructureResult], target: float = TARGET_DICE, rounds: int = 8) -> dict:
    """Mean 3D Dice per round (the first ``rounds``), per-structure clicks, the median ratio and whether it is <= 0.5."""
    ratios = sorted(r.ratio for r in results)
    median = float(np.median(ratios)) if ratios else None
    ms = np.array([t for r in results for t in r.propagate_ms], np.float64)
    return {
        "n": len(results),
        "target": target,
        "dice": [float(v) for v in np.mean([r.dice[:rounds] for r in results], axis=0)] if results else [],
        "rounds_run": [len(r.dice) for r in results],
        "reached": sum(1 for r in results if r.propagation_clicks is not None),
        "median_ratio": None if median is None or math.isinf(median) else median,
        "done": median is not None and median <= 0.5,
        "propagate_ms": {"median": float(np.median(ms)) if ms.size else None,
                         "p90": float(np.percentile(ms, 90)) if ms.size else None, "frames": int(ms.size)},
        "structures": [r.as_dict() for r in results],
    }


def format_structures(report: dict) -> str:
    """The terminal table: per structure the 3D Dice per round, clicks to the target both ways, their ratio."""
    s = report["volumes"]
    rounds = len(s["dice"])
    lines = [f"{report['dataset']}: {s['n']} structures, target Dice {s['target']:.2f}, model {report['model']}",
             f"{'structure':<34} {'slices':>6} " + " ".join(f"{f'r{k + 1}':>6}" for k in range(rounds))
             + f" {'prop':>5} {'slice':>5} {'ratio':>6}"]
    for r in s["structures"]:
        reached = "-" if r["propagation_clicks"] is None else str(r["propagation_clicks"])
        ratio = "none" if r["ratio"] is None else f"{r['ratio']:.3f}"
        lines.append(f"{(r['case'] + ':' + r['name'])[:34]:<34} {r['slices']:6d} "
                     + " ".join(f"{v:6.3f}" for v in r["dice"][:rounds])
                     + f" {reached:>5} {r['slice_clicks']:5d} {ratio:>6}")
    median = s["median_ratio"]
    lines.append("mean Dice per round: " + " ".join(f"{v:.3f}" for v in s["dice"])
                 + f"; median ratio {'not reached' if median is None else f'{median:.3f}'}"
                 f" (done when <= 0.5: {'yes' if s['done'] else 'no'})")
    return "\n".join(lines)
