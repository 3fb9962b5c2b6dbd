"""Exports through the API: the folder export's report and the zip download, unzipped and read back."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from clickmask.engine.loader import load_predictor
from clickmask.project import open_project
from clickmask.server import AppState
from page_client import page_client
from test_formats import read_yolo


@pytest.fixture()
def client(tmp_path):
    project = tmp_path / "my project"
    (project / "sub").mkdir(parents=True)
    Image.new("RGB", (80, 60), (30, 30, 30)).save(project / "a.png")
    Image.new("RGB", (80, 60), (90, 30, 30)).save(project / "b.jpg")
    Image.new("RGBA", (50, 40), (10, 200, 30, 128)).save(project / "sub" / "c.png")
    (project / "broken.png").write_bytes(b"not a png")
    state = AppState(store=open_project(project), predictor=load_predictor("grabcut"))
    client = page_client(state)
    ids = {i["path"]: i["id"] for i in client.get("/api/images").json()["images"]}
    cat = client.post("/api/categories", json={"name": "box"}).json()["id"]
    for path, points, category in (("a.png", [[20, 20]], cat), ("a.png", [[60, 40]], cat),
                                   ("a.png", [[40, 50]], None), ("sub/c.png", [[25, 20]], cat)):
        body = {"points": points, "radius": 6, **({"category_id": category} if category else {})}
        assert client.post(f"/api/images/{ids[path]}/stroke", json=body).status_code == 200
    return client


def _unzip(response, tmp_path: Path) -> Path:
    """Check the download headers, unzip; return the one top-level folder."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment") and ".zip" in disposition
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert len(tops) == 1 and tops.pop().startswith("my_project-")
        archive.extractall(tmp_path / "unzipped")
    (top,) = (tmp_path / "unzipped").iterdir()
    return top


def test_yolo_zip_download_trains_as_written(client, tmp_path):
    r = client.get("/api/export/yolo-seg.zip")
    assert r.headers["x-clickmask-unassigned"] == "1" and r.headers["x-clickmask-unassigned-policy"] == "skipped"
    top = _unzip(r, tmp_path)
    data, images = read_yolo(top / "data.yaml")
    assert "path" not in data and data["names"] == {0: "box"}  # relative to the unzipped folder
    assert sorted(p.split("/", 2)[2] for p in images) == ["a.png", "b.jpg", "sub/c.png"]  # broken.png left out
    assert sum(len(objects) for _, objects in images.values()) == 3  # the uncategorised object is left out
    c = next(p for p in images if p.endswith("sub/c.png"))
    assert Image.open(top / c).mode == "RGB"  # the RGBA image as the app shows it
    downloads = client.app.state.cm.store.root / ".clickmask" / "downloads"
    assert not any(downloads.iterdir())  # the temporary folder went once the zip was sent


def test_voc_and_labelme_zips_hold_their_layouts(client, tmp_path):
    top = _unzip(client.get("/api/export/voc.zip"), tmp_path / "voc")
    for file in ("JPEGImages/a.jpg", "SegmentationClass/a.png", "SegmentationObject/a.png", "Annotations/a.xml",
                 "ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt", "labels.txt"):
        assert (top / file).is_file(), file
    ids = (top / "ImageSets" / "Segmentation" / "trainval.txt").read_text().split()
    assert ids == ["a", "b", "sub/c"]
    for image_id in ids:
        assert Image.open(top / "JPEGImages" / f"{image_id}.jpg").format == "JPEG"
    classes = np.asarray(Image.open(top / "SegmentationClass" / "a.png"))
    assert set(np.unique(classes)) == {0, 1, 255}  # background, the category (id 1), the uncategorised object void
    top = _unzip(client.get("/api/export/labelme.zip?tolerance=0"), tmp_path / "labelme")
    data = json.loads((top / "a.json").read_text())
    assert data["imagePath"] == "a.png" and (top / "a.png").is_file() and len(data["shapes"]) == 2
    assert json.loads((top / "sub" / "c.json").read_text())["imagePath"] == "c.png"


def test_download_is_a_plain_get_and_errors_are_one_line(client):
    bare = TestClient(client.app)  # what an <a href download> link sends: no tab header
    assert bare.get("/api/export/coco.zip").status_code == 200
    r = bare.get("/api/export/bmp.zip")
    assert r.status_code == 400 and "unknown export format" in r.json()["detail"]
    assert bare.get("/api/export/coco.zip?tolerance=-1").status_code == 400
    assert bare.post("/api/export", json={"format": "coco"}).status_code == 403  # the folder export changes files
    downloads = client.app.state.cm.store.root / ".clickmask" / "downloads"
    assert not any(downloads.iterdir())  # a failed download leaves nothing behind


def test_folder_export_reports_objects_without_a_category(client):
    r = client.post("/api/export", json={"format": "yolo-seg"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unassigned"] == {"count": 1, "policy": "skipped", "left_out": 1,
                                  "message": "1 object without a category was left out"}
    assert body["uncategorised"] == 1 and "data.yaml" in body["files"]
    assert body["images"]["linked"] + body["images"]["copied"] == 2 and body["images"]["converted"] == 1
    assert (Path(body["dir"]) / "images" / "train").is_dir()
    voc = client.post("/api/export", json={"format": "voc"}).json()
    assert voc["unassigned"]["policy"] == "void" and "marked void" in voc["unassigned"]["message"]
    listing = client.get("/api/export/formats").json()
    assert listing["unassigned"] == 1
    by_name = {f["name"]: f for f in listing["formats"]}
    assert by_name["instance-png"]["unassigned_policy"] == "kept" and by_name["labelme"]["tolerance"] == 1.0
    assert by_name["coco"]["unassigned_message"] == "1 object without a category was left out"
