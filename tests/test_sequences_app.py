"""Videos and volumes in the app (server/sequences.py): open, click a frame, propagate, correct, export."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("av")
nib = pytest.importorskip("nibabel")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sequence_files import (disk_centre, disk_mask, draw, sphere_labels, write_ct_series, write_ct_volume,  # noqa: E402
                            write_video)


def _iou(a, b) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _runs_mask(runs: dict) -> np.ndarray:
    h, w = runs["size"]
    flat = np.repeat(np.arange(len(runs["runs"])) % 2 == 1, runs["runs"])
    return flat.reshape(h, w)


@pytest.fixture()
def app(tmp_path, model_spec):
    from page_client import page_client

    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState

    project = tmp_path / "project"
    project.mkdir()
    write_video(project / "ball.mp4")
    affine = write_ct_volume(project / "ct.nii.gz")
    (project / "broken.mp4").write_bytes(b"not a video at all")
    state = AppState(store=open_project(project), predictor=load_predictor(None))
    yield page_client(state), state, affine
    state.close()


def _ids(client) -> dict[str, int]:
    return {s["path"]: s["id"] for s in client.get("/api/sequences").json()["sequences"]}


def test_a_video_is_clicked_propagated_corrected_and_exported(app):
    c, state, _ = app
    ids = _ids(c)
    assert set(ids) == {"ball.mp4", "ct.nii.gz", "broken.mp4"}
    vid = ids["ball.mp4"]
    info = c.get(f"/api/sequences/{vid}").json()
    assert (info["frames"], info["width"], info["height"], info["kind"]) == (8, 160, 120, "video")
    assert c.get(f"/api/sequences/{vid}/frames/3.jpg").headers["content-type"] == "image/jpeg"

    # frame 0: one click on the disk, Space: a new track annotated there
    x, y = disk_centre(0)
    state.predictor.set_first_token(3)  # left over from an image's category: a video frame does not use it
    r = c.post(f"/api/sequences/{vid}/frames/0/clicks", json={"x": x, "y": y}).json()
    assert _iou(_runs_mask(r["runs"]), disk_mask(0)) > 0.8
    info = state.sequences.in_progress(vid, 0).prediction.info
    assert info["first_token"] == info["first_default"]
    cat = c.post("/api/categories", json={"name": "ball"}).json()["id"]
    track = c.post(f"/api/sequences/{vid}/frames/0/finish", json={"category_id": cat}).json()
    assert track["category_id"] == cat

    # propagate to every frame; each frame's mask is stored as it comes
    job = c.post(f"/api/sequences/{vid}/propagate", json={"track_id": track["id"], "frame": 0}).json()
    assert job["total"] == 7
    state.sequences.wait(vid, 300)
    job = c.get(f"/api/sequences/{vid}/job").json()["job"]
    assert job["done"] == 7 and not job["running"] and job["error"] is None
    info = c.get(f"/api/sequences/{vid}").json()
    t = info["tracks"][0]
    assert t["annotated"] == [0] and sorted(map(int, t["propagated"])) == list(range(1, 8))
    assert info["pointer"] is not None and info["pointer"]["frame"] in range(1, 8)
    masks = state.sequences.frame_masks(vid, 7)
    assert _iou(masks[track["id"]], disk_mask(7)) > 0.6

    # correct frame 5 into the same track, propagate from it: forward to the end, back to frame 1
    x, y = disk_centre(5)
    c.post(f"/api/sequences/{vid}/frames/5/clicks", json={"x": x, "y": y})
    c.post(f"/api/sequences/{vid}/frames/5/finish", json={"track_id": track["id"]})
    job = c.post(f"/api/sequences/{vid}/propagate", json={"track_id": track["id"], "frame": 5}).json()
    assert job["total"] == 6  # frames 6, 7 and 4, 3, 2, 1
    state.sequences.wait(vid, 300)
    assert c.get(f"/api/sequences/{vid}").json()["tracks"][0]["annotated"] == [0, 5]

    # exports: DAVIS palette PNGs (index = track id), COCO with track ids; a video has no NIfTI
    from PIL import Image

    out = c.post(f"/api/sequences/{vid}/export", json={"format": "davis-png"}).json()
    pngs = sorted(Path(out["dir"]).rglob("*.png"))
    assert len(pngs) == 8
    with Image.open(pngs[6]) as img:
        assert img.mode == "P"
        labels = np.asarray(img)
    assert _iou(labels == track["id"], disk_mask(6)) > 0.6
    coco = c.post(f"/api/sequences/{vid}/export", json={"format": "coco-video"}).json()
    data = json.loads((Path(coco["dir"]) / coco["files"][0]).read_text())
    assert len(data["images"]) == 8 and {a.get("track_id") for a in data["annotations"]} == {track["id"]}
    bad = c.post(f"/api/sequences/{vid}/export", json={"format": "nifti"})
    assert bad.status_code == 400 and "is a video" in bad.json()["detail"]
    bad = c.post(f"/api/sequences/{vid}/export", json={"format": "dicom-seg"})
    assert bad.status_code == 400 and "is not a DICOM series" in bad.json()["detail"]

    # the DAVIS PNGs read back into the project: a new track, drawn on every frame with the object
    import shutil

    shutil.copytree(Path(out["dir"]) / "ball", state.store.root / "labels")
    made = c.post(f"/api/sequences/{vid}/import", json={"folder": "labels"}).json()
    new = made["tracks"][str(track["id"])]
    back = next(t for t in made["sequence"]["tracks"] if t["id"] == new)
    assert new != track["id"] and back["annotated"] == list(range(8))
    assert _iou(state.sequences.frame_masks(vid, 6)[new], labels == track["id"]) == 1.0
    outside = c.post(f"/api/sequences/{vid}/import", json={"folder": "../"})
    assert outside.status_code == 403


def test_a_volume_is_propagated_along_its_slices_and_exported_as_nifti(app):
    c, state, affine = app
    vol = _ids(c)["ct.nii.gz"]
    info = c.get(f"/api/sequences/{vol}").json()
    assert (info["frames"], info["width"], info["height"], info["kind"]) == (10, 64, 64, "volume")
    truth = sphere_labels()
    c.post(f"/api/sequences/{vol}/frames/5/clicks", json={"x": 34, "y": 30})
    assert state.sequences.in_progress(vol, 5).prediction.info["first_token"] == 1  # a slice: the finest reading
    track = c.post(f"/api/sequences/{vol}/frames/5/finish", json={}).json()
    c.post(f"/api/sequences/{vol}/propagate", json={"track_id": track["id"], "frame": 5})
    state.sequences.wait(vol, 300)
    out = c.post(f"/api/sequences/{vol}/export", json={"format": "nifti"}).json()
    img = nib.load(str(Path(out["dir"]) / out["files"][0]))
    assert np.allclose(img.affine, affine)
    labels = np.asarray(img.dataobj).transpose(2, 1, 0)
    got = labels == track["id"]
    assert 2 * (got & truth).sum() / (got.sum() + truth.sum()) > 0.7


def test_bad_input_and_cancel(app):
    c, state, _ = app
    ids = _ids(c)
    broken = c.get(f"/api/sequences/{ids['broken.mp4']}")
    assert broken.status_code == 422 and "broken.mp4" in broken.json()["detail"]
    assert "\n" not in broken.json()["detail"]
    vid = ids["ball.mp4"]
    no = c.post(f"/api/sequences/{vid}/frames/0/finish", json={})
    assert no.status_code == 400 and "click on it first" in no.json()["detail"]
    assert c.get(f"/api/sequences/{vid}/frames/99.jpg").status_code == 400
    x, y = disk_centre(0)
    c.post(f"/api/sequences/{vid}/frames/0/clicks", json={"x": x, "y": y})
    track = c.post(f"/api/sequences/{vid}/frames/0/finish", json={}).json()
    assert c.post(f"/api/sequences/{vid}/propagate", json={"track_id": track["id"], "frame": 3}).status_code == 400
    c.post(f"/api/sequences/{vid}/propagate", json={"track_id": track["id"], "frame": 0})
    c.delete(f"/api/sequences/{vid}/job")
    state.sequences.wait(vid, 300)
    job = c.get(f"/api/sequences/{vid}/job").json()["job"]
    assert job["cancelled"] and not job["running"] and job["done"] < job["total"]
    kept = c.get(f"/api/sequences/{vid}").json()["tracks"][0]["propagated"]
    assert len(kept) == job["done"]  # the frames done before the cancel are kept


def test_frame_folders_and_dicom_series_are_sequences_not_images(tmp_path, model_spec):
    """A ``*.frames`` folder is a video and a folder of one DICOM series a volume; their files are not listed
    as images. Two unrelated DICOM images in a folder stay images."""
    from PIL import Image
    from page_client import page_client

    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState
    from display_files import write_ct_dicom

    project = tmp_path / "project"
    (project / "walk.frames").mkdir(parents=True)
    for i in range(3):
        Image.fromarray(draw(i)).save(project / "walk.frames" / f"{i:05d}.png")
    labels = write_ct_series(project / "series")
    (project / "xrays").mkdir()
    write_ct_dicom(project / "xrays" / "a.dcm")
    write_ct_dicom(project / "xrays" / "b.dcm")
    state = AppState(store=open_project(project), predictor=load_predictor(None))
    c = page_client(state)
    seqs = {s["path"]: s for s in c.get("/api/sequences").json()["sequences"]}
    assert {p: s["kind"] for p, s in seqs.items()} == {"series": "volume", "walk.frames": "video"}
    assert sorted(i["path"] for i in c.get("/api/images").json()["images"]) == ["xrays/a.dcm", "xrays/b.dcm"]
    walk = c.get(f"/api/sequences/{seqs['walk.frames']['id']}").json()
    assert (walk["frames"], walk["width"], walk["height"]) == (3, 160, 120)
    series = c.get(f"/api/sequences/{seqs['series']['id']}").json()
    assert (series["frames"], series["width"], series["height"]) == (8, 64, 64)
    jpeg = c.get(f"/api/sequences/{seqs['series']['id']}/frames/4.jpg").content
    import cv2

    slice4 = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert slice4[labels[4]].mean() > slice4[~labels[4]].mean() + 80  # the ball, in the abdomen window
    state.close()


def test_clickmask_export_writes_every_sequence_with_tracks(tmp_path):
    """``clickmask export --format davis-png|coco-video|nifti|dicom-seg`` on a project's sequences (no server,
    no model)."""
    from PIL import Image

    from clickmask.cli import main
    from clickmask.project import open_project
    from clickmask.project.sequences import SequenceStore

    project = tmp_path / "project"
    project.mkdir()
    write_video(project / "ball.mp4", frames=4)
    affine = write_ct_volume(project / "ct.nii.gz")
    series_truth = write_ct_series(project / "series")
    seqs = SequenceStore(open_project(project))
    seqs.sync()
    ids = {s["path"]: s["id"] for s in seqs.list()}
    seqs.set_info(ids["ball.mp4"], 4, 160, 120, None)
    track = seqs.add_track(ids["ball.mp4"])["id"]
    seqs.put_masks(track, [(i, disk_mask(i), True, i, 1.0) for i in range(4)])
    seqs.set_info(ids["ct.nii.gz"], 10, 64, 64, None)
    organ = seqs.add_track(ids["ct.nii.gz"])["id"]
    truth = sphere_labels()
    seqs.put_masks(organ, [(z, truth[z], True, z, 1.0) for z in range(10) if truth[z].any()])

    assert main(["export", str(project), "--format", "davis-png", "--out", str(tmp_path / "png")]) == 0
    with Image.open(tmp_path / "png" / "ball" / "00002.png") as img:
        assert img.mode == "P" and np.array_equal(np.asarray(img) == track, disk_mask(2))
    assert main(["export", str(project), "--format", "coco-video", "--out", str(tmp_path / "coco")]) == 0
    data = json.loads((tmp_path / "coco" / "ball.json").read_text())
    assert len(data["images"]) == 4 and {a["track_id"] for a in data["annotations"]} == {track}
    assert main(["export", str(project), "--format", "nifti", "--out", str(tmp_path / "nii")]) == 0
    img = nib.load(str(tmp_path / "nii" / "ct_labels.nii.gz"))
    assert np.allclose(img.affine, affine)
    assert np.array_equal(np.asarray(img.dataobj).transpose(2, 1, 0) == organ, truth)
    assert not (tmp_path / "nii" / "ball_labels.nii.gz").exists()  # a video has no NIfTI

    # DICOM-SEG: only the DICOM series; read back with highdicom, slice by slice through the source UIDs
    hd = pytest.importorskip("highdicom")
    import pydicom

    from clickmask.io.volumes import load_dicom_series

    seqs.set_info(ids["series"], 8, 64, 64, None)
    ball = seqs.add_track(ids["series"])["id"]
    seqs.put_masks(ball, [(z, series_truth[z], True, z, 1.0) for z in range(8) if series_truth[z].any()])
    assert main(["export", str(project), "--format", "dicom-seg", "--out", str(tmp_path / "seg")]) == 0
    assert sorted(p.name for p in (tmp_path / "seg").iterdir()) == ["series_seg.dcm"]
    seg = hd.seg.segread(tmp_path / "seg" / "series_seg.dcm")
    assert seg.number_of_segments == 1
    uids = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID
            for f in load_dicom_series(project / "series")[0].sources]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, combine_segments=True,
                                               relabel=False, ignore_spatial_locations=True)
    assert np.array_equal(pixels == 1, series_truth)
