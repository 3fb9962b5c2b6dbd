"""The volume benchmark: dataset layout, structures, 3D Dice, the error threshold, clicks to the target,
the rounds along a synthetic volume's slices against slice-by-slice annotation, and the command's options."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_video_propagation import COLS, ROWS, FakeModel, moving_square_embeddings  # noqa: E402

from clickmask.engine.predictor import Prediction  # noqa: E402
from clickmask.errors import DatasetError  # noqa: E402
from clickmask.evaluation.video.protocol import ProtocolOptions  # noqa: E402
from clickmask.evaluation.video.volumes import (  # noqa: E402
    StructureResult, clicks_to_reach, dice, format_structures, load_volume_dataset, min_error_area,
    run_structure, structures, summarize_structures,
)
from clickmask.propagation.decode import DecodeOptions  # noqa: E402
from clickmask.propagation.propagator import PropagationOptions  # noqa: E402

nib = pytest.importorskip("nibabel")


def write_case(folder: Path, case: str, labels: np.ndarray, affine=None, label_affine=None) -> None:
    """A CT-like NIfTI volume (air -1000, the labelled voxels 60 HU) and its label file, indexed [z, y, x]."""
    affine = np.diag([2.0, 2.0, 3.0, 1.0]) if affine is None else affine
    data = np.where(labels > 0, 60, -1000).astype(np.int16)
    (folder / "volumes").mkdir(parents=True, exist_ok=True)
    (folder / "labels").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), affine), str(folder / "volumes" / f"{case}.nii.gz"))
    nib.save(nib.Nifti1Image(labels.astype(np.uint8).transpose(2, 1, 0),
                             affine if label_affine is None else label_affine),
             str(folder / "labels" / f"{case}.nii.gz"))


def test_dataset_layout_structures_and_names(tmp_path):
    labels = np.zeros((4, 10, 12), np.uint8)
    labels[1:3, 2:8, 2:9] = 3  # 84 voxels
    labels[0, 0, 0] = 7  # 1 voxel
    write_case(tmp_path / "Vol", "case_a", labels)
    (tmp_path / "Vol" / "labels.json").write_text('{"case_a": {"labels": {"3": {"name": "liver"}}}}')
    cases = load_volume_dataset(tmp_path, "Vol")
    assert [c.name for c in cases] == ["case_a"] and cases[0].names == {3: "liver"}
    volume, lab = cases[0].open()
    assert volume.shape == (4, 10, 12) and volume.modality == "CT"
    assert np.array_equal(lab, labels)
    assert structures(lab, 50) == [(3, 84)]
    assert structures(lab, 1) == [(3, 84), (7, 1)]
    # a volume without its label file, and a folder that is not a volume dataset
    (tmp_path / "Vol" / "labels" / "case_a.nii.gz").unlink()
    with pytest.raises(DatasetError, match="no label file labels/case_a.nii.gz"):
        load_volume_dataset(tmp_path, "Vol")
    with pytest.raises(DatasetError, match="not a volume dataset"):
        load_volume_dataset(tmp_path, "Nothing")


def test_dice_threshold_and_clicks_to_reach():
    a = np.zeros((2, 5, 5), bool)
    a[0, :2] = True  # 10 voxels
    b = np.zeros_like(a)
    b[0, 1:3] = True  # 10 voxels, 5 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert min_error_area(480, 854) == 100
    assert min_error_area(101, 122) == 3
    assert min_error_area(5, 5) == 1
    assert clicks_to_reach([0.5, 0.8, 0.9, 0.95], [1, 3, 2, 3], 0.85) == 6
    assert clicks_to_reach([0.5, 0.8], [1, 3], 0.85) is None


def result(name, dices, clicks, slice_noc):
    return StructureResult(case="c", label=1, name=name, voxels=100, slices=len(slice_noc), dice=dices,
                           clicks=clicks, annotated=list(range(len(dices))), seconds=[0.1] * len(dices),
                           propagate_ms=[5.0], slice_noc=slice_noc, slice_failures=0, target=0.85)


def test_summary_takes_the_median_structure_and_counts_misses_as_worst():
    rs = [result("a", [0.9], [1], [2, 2]),  # 1 / 4
          result("b", [0.5, 0.9], [1, 3], [4, 4]),  # 4 / 8
          result("c", [0.5, 0.6], [1, 3], [1])]  # never reached: infinite ratio
    assert rs[2].ratio == math.inf and rs[1].ratio == pytest.approx(0.5)
    s = summarize_structures(rs, rounds=1)
    assert s["median_ratio"] == pytest.approx(0.5) and s["done"] is True and s["reached"] == 2
    assert s["dice"] == pytest.approx([(0.9 + 0.5 + 0.5) / 3])
    assert s["structures"][2]["ratio"] is None
    text = format_structures({"dataset": "Vol", "model": "m", "volumes": s})
    assert "median ratio 0.500" in text and "c:c" in text
    worse = summarize_structures(rs[1:], rounds=1)
    assert worse["median_ratio"] is None and worse["done"] is False


class SquareFrames:
    """Slices of a synthetic volume: channel 0 = the slice index (the fake model's key), channel 1 = the object."""

    def __init__(self, gts):
        self.gts = gts

    def __len__(self):
        return len(self.gts)

    def frame(self, i):
        image = np.zeros((ROWS, COLS, 3), np.uint8)
        image[..., 0] = i
        image[..., 1] = np.where(self.gts[i], 255, 0)
        return image


class ThresholdPredictor:
    """An image engine that segments the bright component under the positive clicks (exact in one click)."""

    def set_image(self, image):
        self.bright = (image[..., 1] > 127).astype(np.uint8)
        self.last_embed_ms, self.last_embed_cached = 0.0, True

    def predict(self, clicks, previous=None, box=None):
        _, comp = cv2.connectedComponents(self.bright, connectivity=8)
        mask = np.zeros(self.bright.shape, bool)
        for c in clicks:
            x, y = c.as_int()
            if c.positive and comp[y, x] > 0:
                mask |= comp == comp[y, x]
        return Prediction(np.where(mask, 1.0, -1.0).astype(np.float32), None, 1.0)


def test_rounds_along_a_synthetic_volume_against_slice_by_slice():
    embs, masks = moving_square_embeddings(frames=7)
    gts = [m[:ROWS] > 0.5 for m in masks]
    labels = np.stack(gts).astype(np.uint8) * 5
    steps = []
    res = run_structure(ThresholdPredictor(), FakeModel(embs), "synthetic", 5, "square", SquareFrames(gts), labels,
                        ProtocolOptions(rounds=2, min_error_area=1),
                        PropagationOptions(decode=DecodeOptions(point=False, box=False)),
                        max_rounds=4, on_step=lambda: steps.append(1))
    assert res.slices == 7 and res.voxels == int(labels.astype(bool).sum())
    assert 2 <= len(res.dice) <= 4 and res.clicks[0] == 1
    assert res.dice[0] > 0.6 and all(0.0 <= d <= 1.0 for d in res.dice)
    assert res.slice_noc == [1] * 7 and res.slice_clicks == 7  # one click per slice with the exact engine
    assert len(steps) == 3  # the protocol's rounds, then the baseline
    if res.propagation_clicks is not None:
        assert res.ratio == pytest.approx(res.propagation_clicks / 7)
    d = res.as_dict()
    assert d["slice_clicks"] == 7 and d["propagate_ms_median"] > 0


def test_eval_video_volume_options(tmp_path):
    from clickmask.cli import build_parser

    args = build_parser().parse_args(["eval-video", "--dataset", "Medical3D", "--structures", "2",
                                      "--max-rounds", "12", "--min-voxels", "500"])
    assert (args.structures, args.max_rounds, args.min_voxels, args.slice_max_clicks) == (2, 12, 500, 20)


def test_medical3d_dicom_case_has_its_labels(data_root):
    folder = data_root / "Medical3D"
    if not (folder / "dicom").is_dir():
        pytest.skip(f"{folder}/dicom not found")
    case = next(c for c in load_volume_dataset(data_root, "Medical3D") if c.volume_path.parent.name == "dicom")
    volume, labels = case.open()
    assert volume.modality == "CT" and labels.shape == volume.shape
    assert len(structures(labels)) >= 1


def test_eval_video_command_on_a_tiny_volume(model_spec, tmp_path, capsys):
    import json

    from clickmask.cli import main

    labels = np.zeros((2, 48, 64), np.uint8)
    labels[:, 12:36, 16:44] = 1  # 1344 voxels, a bright box in air
    write_case(tmp_path / "Tiny", "box", labels)
    out = tmp_path / "volumes.json"
    code = main(["eval-video", "--dataset", "Tiny", "--data-root", str(tmp_path), "--rounds", "1",
                 "--max-rounds", "1", "--slice-max-clicks", "3", "--json", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    s = report["volumes"]
    assert report["complete"] is True and s["n"] == 1 and len(s["dice"]) == 1
    q = s["structures"][0]
    assert q["slices"] == 2 and len(q["slice_noc"]) == 2 and q["clicks"] == [1]
    assert report["cases"][0]["modality"] == "CT" and report["options"]["volumes"]["max_rounds"] == 1
    assert "median ratio" in capsys.readouterr().out


def test_evaluate_object_stops_at_the_target_and_pads():
    from clickmask.evaluation.runner import EvalOptions, evaluate_object

    gt = np.zeros((ROWS, COLS), bool)
    gt[3:10, 5:20] = True
    predictor = ThresholdPredictor()
    predictor.set_image(SquareFrames([gt]).frame(0))
    result = evaluate_object(predictor, gt, None, EvalOptions(max_clicks=5, stop_at=0.85))
    assert len(result.clicks) == 1 and result.ious == [1.0] * 5


def test_next_frame_skips_frames_with_nothing_left_to_click():
    from clickmask.evaluation.video.protocol import next_frame

    gts = [np.zeros((20, 20), bool) for _ in range(3)]
    gts[0][5:15, 5:15] = True  # half missed below: clickable
    gts[1][0, 0:2] = True  # a 2 px object, missed: under the threshold
    gts[2][2:6, 2:6] = True  # found exactly
    masks = [g.copy() for g in gts]
    masks[0][10:15] = False
    masks[1][:] = False
    scores = [0.5, 0.0, 1.0]
    assert next_frame({0}, scores, gts, masks, 5) == 1  # frames not annotated come first, worst score
    assert next_frame({0, 1, 2}, scores, gts, masks, 5) == 0  # all annotated: frame 1 has nothing to click
    assert next_frame({0, 1, 2}, scores, gts, gts, 5) == 1  # nothing to click anywhere: all frames
