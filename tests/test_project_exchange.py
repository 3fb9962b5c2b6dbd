"""Project <-> clickmask.formats: export then import gives back the masks and categories."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from clickmask.cli import main
from clickmask.errors import ClickmaskError
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


def _coco(path, images, polygon=(5, 5, 30, 5, 30, 30)):
    """A COCO file with one polygon object on each of ``images`` [(file, width, height)]."""
    path.write_text(json.dumps({
        "images": [{"id": k + 1, "file_name": f, "width": w, "height": h} for k, (f, w, h) in enumerate(images)],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [{"id": k + 1, "image_id": k + 1, "category_id": 1, "segmentation": [list(polygon)]}
                        for k in range(len(images))]}))
    return path


def test_import_refuses_a_declared_size_that_is_not_the_image_and_writes_nothing(tmp_path):
    store, _ = _project(tmp_path / "p")
    before = [len(store.list_instances(i)) for i in (1, 2)]
    wrong_second = _coco(tmp_path / "c.json", [("b.png", 50, 40), ("a.png", 60, 40)])
    with pytest.raises(ClickmaskError, match=r"a\.png is 50x40 but the annotations say 60x40.*nothing was imported"):
        import_annotations(store, wrong_second, "coco")
    assert [len(store.list_instances(i)) for i in (1, 2)] == before  # the first image was not committed either
    right = _coco(tmp_path / "ok.json", [("b.png", 50, 40), ("a.png", 50, 40)])
    assert import_annotations(store, right, "coco") == {"added": 2, "skipped": 0}
    assert export_project(store, "coco", tmp_path / "out")  # every export still works


@pytest.mark.parametrize("case", ["coco-size", "labelme-size", "coco-far", "labelme-circle"])
def test_absurd_sizes_and_coordinates_are_one_line_errors(tmp_path, case):
    store, _ = _project(tmp_path / "p")
    if case.startswith("coco"):
        source = _coco(tmp_path / "c.json", [("b.png", 1_000_000, 1_000_000) if case == "coco-size"
                                             else ("b.png", 50, 40)],
                       polygon=(5, 5, 1e308, 5, 30, 30))
    else:
        source = tmp_path / "p" / "b.json"
        shape = {"label": "thing", "shape_type": "circle", "points": [[10, 10], [1e12, 10]]}
        if case == "labelme-size":
            shape = {"label": "thing", "shape_type": "polygon", "points": [[5, 5], [30, 5], [30, 30]]}
        size = 1_000_000 if case == "labelme-size" else 40
        source.write_text(json.dumps({"shapes": [shape], "imagePath": "b.png", "imageData": None,
                                      "imageHeight": size, "imageWidth": size if case == "labelme-size" else 50}))
    with pytest.raises(ClickmaskError) as err:
        import_annotations(store, source, case.split("-")[0])
    assert str(err.value).count("\n") == 0 and ("larger than any image" in str(err.value) or "far outside" in str(err.value))
    assert len(store.list_instances(2)) == 0


def test_a_failed_export_leaves_no_half_folder(tmp_path, monkeypatch):
    import errno

    from clickmask.formats import _common

    store, _ = _project(tmp_path / "p")

    def full_disk(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(_common, "atomic_write_text", full_disk)  # labels.txt, after the PNGs
    with pytest.raises(ClickmaskError, match="no space left"):
        export_project(store, "voc", tmp_path / "out")
    assert not (tmp_path / "out").exists()
