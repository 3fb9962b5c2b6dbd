"""Project <-> clickmask.formats: export then import gives back the masks and categories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clickmask.cli import main
from clickmask.project import open_project
from clickmask.project.exchange import export_project, import_annotations

pytest.importorskip("clickmask.formats")


def _project(folder):
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(folder / name)
    (folder / "bad.png").write_bytes(b"broken")
    store = open_project(folder)
    cat = store.add_category("thing", "#123456")
    ring = np.zeros((40, 50), bool)
    ring[5:30, 5:30] = True
    ring[12:20, 12:20] = False  # a hole
    ring[33:38, 40:48] = True  # a second part
    store.add_instance(1, ring, cat["id"])
    blob = np.zeros((40, 50), bool)
    blob[20:35, 20:45] = True
    store.add_instance(1, blob, store.add_category("other")["id"])
    return store, [ring, blob]


@pytest.mark.parametrize("fmt", ["coco", "labelme"])
def test_round_trip(tmp_path, fmt):
    store, masks = _project(tmp_path / "p")
    files = export_project(store, fmt, tmp_path / "out")
    assert files
    assert "bad.png" in store.image(3)["error"]  # unreadable image recorded, export went on
    # a second, empty project database over the same images (any SQLAlchemy URL works)
    fresh = open_project(tmp_path / "p", url=f"sqlite:///{tmp_path / 'other.db'}")
    assert fresh.list_instances(1) == []
    source = next(f for f in files if str(f).endswith(".json")) if fmt == "coco" else tmp_path / "out"
    result = import_annotations(fresh, source, fmt)
    assert result["added"] == 2
    got = [fresh.instance_mask(i["id"]) for i in fresh.list_instances(1)]
    for want in masks:
        best = max((g & want).sum() / (g | want).sum() for g in got)
        assert best >= 0.99
    assert "thing" in [c["name"] for c in fresh.list_categories()]


def test_cli_export_and_errors(tmp_path, capsys):
    _project(tmp_path / "p")
    assert main(["export", str(tmp_path / "p"), "--format", "coco", "--out", str(tmp_path / "o")]) == 0
    data = json.loads(next((tmp_path / "o").rglob("*.json")).read_text())
    assert len(data["annotations"]) == 2
    assert main(["export", str(tmp_path / "nope"), "--format", "coco", "--out", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "nope" in err
