"""The FastAPI app through TestClient, with the weight-free GrabCut predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clickmask.engine.loader import load_predictor
from clickmask.project import open_project
from clickmask.server import AppState
from clickmask.server.security import check_bind, is_localhost
from clickmask.errors import ClickmaskError
from fastapi.testclient import TestClient
from page_client import page_client


def _image() -> np.ndarray:
    img = np.full((60, 80, 3), 30, np.uint8)
    img[15:45, 20:60] = (220, 40, 40)
    return img


@pytest.fixture()
def project(tmp_path):
    Image.fromarray(_image()).save(tmp_path / "a.png")
    Image.fromarray(_image()[:, ::-1]).save(tmp_path / "b.jpg")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    (tmp_path / "secret.txt").write_text("inside but not an image")
    (tmp_path.parent / "outside.txt").write_text("TOP-SECRET-CONTENT")
    return tmp_path


def _client(project, token=None):
    state = AppState(store=open_project(project), predictor=load_predictor("grabcut"), token=token)
    return page_client(state)


def _ids(client):
    return {i["path"]: i["id"] for i in client.get("/api/images").json()["images"]}


def test_click_session_finish_and_instance_edits(project):
    client = _client(project)
    ids = _ids(client)
    assert client.post(f"/api/images/{ids['a.png']}/open").json()["width"] == 80
    r = client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 40, "y": 30, "positive": True})
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["empty"] and body["runs"]["size"] == [60, 80] and body["area"] > 500
    runs = body["runs"]["runs"]
    assert sum(runs) == 60 * 80 and sum(runs[1::2]) == body["area"]
    png = client.post(f"/api/images/{ids['a.png']}/clicks/last", json={})  # wrong method
    assert png.status_code == 405
    assert client.delete(f"/api/images/{ids['a.png']}/clicks/last?format=png").json()["png"] is None
    r = client.post(f"/api/images/{ids['a.png']}/clicks?format=png", json={"x": 40, "y": 30, "positive": True})
    assert r.json()["png"].startswith("data:image/png;base64,")
    assert client.post(f"/api/images/{ids['a.png']}/clicks?format=bmp", json={"x": 1, "y": 1}).status_code == 400
    r = client.post(f"/api/images/{ids['a.png']}/clicks?format=rle", json={"x": 5, "y": 5, "positive": False})
    assert r.json()["rle"]["size"] == [60, 80] and len(r.json()["clicks"]) == 2
    assert client.get(f"/api/images/{ids['a.png']}/mask.png").headers["content-type"] == "image/png"
    current = client.get(f"/api/images/{ids['a.png']}/mask").json()
    assert len(current["clicks"]) == 2 and sum(current["runs"]["runs"][1::2]) == current["area"]
    assert len(client.delete(f"/api/images/{ids['a.png']}/clicks/last").json()["clicks"]) == 1
    out = client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 500, "y": 5})
    assert out.status_code == 400 and "outside" in out.json()["detail"]

    other_tab = {"x-clickmask-tab": "tab2"}
    assert client.get(f"/api/images/{ids['a.png']}/mask", headers=other_tab).json()["clicks"] == []
    assert client.post(f"/api/images/{ids['a.png']}/finish", json={}, headers=other_tab).status_code == 400

    cat = client.post("/api/categories", json={"name": "box", "color": "#00ff00"}).json()
    inst = client.post(f"/api/images/{ids['a.png']}/finish", json={"category_id": cat["id"]}).json()
    assert inst["category_id"] == cat["id"] and inst["polygons"]
    assert client.post(f"/api/images/{ids['a.png']}/finish", json={}).status_code == 400  # nothing to finish

    poly = [{"exterior": [[10, 10], [30, 10], [30, 30], [10, 30]], "holes": []}]
    edited = client.patch(f"/api/instances/{inst['id']}", json={"version": inst["version"], "polygons": poly}).json()
    assert edited["area"] == 400
    stale = client.patch(f"/api/instances/{inst['id']}", json={"version": inst["version"], "hidden": True})
    assert stale.status_code == 409 and "changed elsewhere" in stale.json()["detail"]
    painted = client.post(f"/api/instances/{inst['id']}/stroke",
                          json={"version": edited["version"], "points": [[50, 50], [60, 50]], "radius": 3}).json()
    assert painted["area"] > 400
    erased = client.post(f"/api/instances/{inst['id']}/stroke",
                         json={"version": painted["version"], "points": [[20, 20]], "radius": 4, "erase": True}).json()
    assert erased["area"] < painted["area"]
    brushed = client.post(f"/api/images/{ids['a.png']}/stroke", json={"points": [[5, 5]], "radius": 2}).json()
    order = [brushed["id"], inst["id"]]
    assert [i["id"] for i in client.put(f"/api/images/{ids['a.png']}/order", json={"order": order}).json()] == order
    hidden = client.patch(f"/api/instances/{brushed['id']}", json={"version": brushed["version"] + 1, "hidden": True})
    assert hidden.json()["hidden"] is True
    recat = client.patch(f"/api/instances/{brushed['id']}",
                         json={"version": hidden.json()["version"], "category_id": cat["id"], "set_category": True})
    assert recat.json()["category_id"] == cat["id"]
    assert client.delete(f"/api/instances/{brushed['id']}?version={recat.json()['version']}").status_code == 200
    undo = client.post(f"/api/images/{ids['a.png']}/undo").json()
    assert undo["undone"]["action"] == "delete" and len(undo["annotations"]) == 2
    assert client.post(f"/api/images/{ids['a.png']}/redo").json()["redone"]["action"] == "delete"
    detail = client.get(f"/api/images/{ids['a.png']}").json()
    assert detail["status"] == "in_progress" and len(detail["annotations"]) == 1
    assert client.put(f"/api/images/{ids['a.png']}/status", json={"status": "done"}).json()["status"] == "done"


def test_background_check_lists_unreadable_images(project):
    from clickmask.server.checker import check_images

    client = _client(project)
    assert check_images(client.app.state.cm.store) == 3
    listed = {i["path"]: i for i in client.get("/api/images").json()["images"]}
    assert "broken.png" in listed["broken.png"]["error"] and listed["a.png"]["width"] == 80
    assert listed["b.jpg"]["error"] is None and listed["b.jpg"]["height"] == 60


def test_image_list_errors_and_file_serving(project):
    client = _client(project)
    ids = _ids(client)
    assert set(ids) == {"a.png", "b.jpg", "broken.png"}
    assert client.post(f"/api/images/{ids['broken.png']}/open").status_code == 200
    assert client.get(f"/api/images/{ids['broken.png']}/file").status_code == 422
    listed = {i["path"]: i for i in client.get("/api/images").json()["images"]}
    assert "broken.png" in listed["broken.png"]["error"]
    assert client.get("/api/images").json()["counts"]["errors"] == 1
    r = client.get(f"/api/images/{ids['a.png']}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert client.get("/api/images/999").status_code == 404
    assert client.get("/api/files/a.png").status_code == 200


@pytest.mark.parametrize("path", [
    "../outside.txt", "..%2Foutside.txt", "%2e%2e/outside.txt", "sub/../../outside.txt",
    ".clickmask/project.db", "/etc/passwd", "nothing.png", "%2Fetc%2Fpasswd",
])
def test_path_traversal_is_refused(project, path):
    client = _client(project)
    r = client.get(f"/api/files/{path}")
    assert r.status_code in (403, 404), (path, r.status_code)
    assert b"TOP-SECRET" not in r.content and b"root:" not in r.content
    r = client.get(f"/static/{path}")
    assert r.status_code in (403, 404)


def test_categories_file_save_load_and_bad_paths(project):
    client = _client(project)
    client.post("/api/categories", json={"name": "cat"})
    dup = client.post("/api/categories", json={"name": "cat"})
    assert dup.status_code == 409
    assert client.post("/api/categories/save", json={"path": "labels.json"}).json()["path"] == "labels.json"
    assert (project / "labels.json").is_file()
    assert client.post("/api/categories/save", json={"path": "../x.json"}).status_code == 403
    assert client.post("/api/categories/save", json={"path": ".clickmask/x.json"}).status_code == 403
    (project / "more.txt").write_text("dog #112233\n")
    cats = client.post("/api/categories/load", json={"path": "more.txt"}).json()
    assert [c["name"] for c in cats] == ["cat", "dog"]
    assert client.post("/api/categories/load", json={"path": "../outside.txt"}).status_code == 403
    cid = cats[1]["id"]
    assert client.patch(f"/api/categories/{cid}", json={"color": "#abcdef"}).json()["color"] == "#abcdef"
    assert client.delete(f"/api/categories/{cid}").status_code == 200
    assert client.put("/api/settings/shortcuts", json={"value": {"finish": " "}}).json()["value"] == {"finish": " "}
    assert client.get("/api/settings/shortcuts").json()["value"] == {"finish": " "}


def test_token_is_required_when_set(project):
    client = _client(project, token="s3cret")
    assert client.get("/api/images").status_code == 401
    assert client.get("/api/images", headers={"x-clickmask-token": "wrong"}).status_code == 401
    assert client.get("/api/images", headers={"x-clickmask-token": "s3cret"}).status_code == 200
    r = client.get("/api/status?token=s3cret")
    assert r.status_code == 200 and "clickmask_token" in r.headers.get("set-cookie", "")
    assert client.get("/api/images").status_code == 200  # cookie now set


def test_local_only_refuses_foreign_host_headers(project):
    client = _client(project)
    client.app.state.cm.local_only = True
    assert client.get("/api/images", headers={"host": "evil.example:8765"}).status_code == 403
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "localhost"):
        assert client.get("/api/images", headers={"host": host}).status_code == 200, host


def test_bind_rules():
    assert is_localhost("127.0.0.1") and is_localhost("localhost") and is_localhost("::1")
    assert not is_localhost("0.0.0.0") and not is_localhost("192.168.1.2")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "tok")
    with pytest.raises(ClickmaskError, match="--token"):
        check_bind("0.0.0.0", None)


def test_status_and_prefetch(project):
    client = _client(project)
    ids = _ids(client)
    client.post(f"/api/images/{ids['a.png']}/open")
    state = client.app.state.cm
    assert state.prefetcher.wait_idle(10)
    st = client.get("/api/status").json()
    assert st["model_id"] == "grabcut" and st["busy"] is False and st["prefetch"]["done"] >= 2
    assert st["counts"]["images"] == 3


def test_export_coco(project):
    pytest.importorskip("clickmask.formats")
    client = _client(project)
    ids = _ids(client)
    client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 40, "y": 30})
    cat = client.post("/api/categories", json={"name": "box"}).json()
    client.post(f"/api/images/{ids['a.png']}/finish", json={"category_id": cat["id"]})
    r = client.post("/api/export", json={"format": "coco"})
    assert r.status_code == 200, r.text
    assert r.json()["files"]
    assert client.post("/api/export", json={"format": "bmp"}).status_code == 400
    # import the export back (guessing the format): the object is there twice now
    coco = [f for f in r.json()["files"] if f.endswith(".json")][0]
    rel = f"{Path(r.json()['dir']).relative_to(project).as_posix()}/{coco}"
    assert client.post("/api/import", json={"path": rel}).json()["added"] == 1
    assert len(client.get(f"/api/images/{ids['a.png']}/instances").json()) == 2
    assert client.post("/api/import", json={"path": "../outside.txt"}).status_code == 403
    assert client.post("/api/import", json={"path": ".clickmask/project.db"}).status_code == 403


def test_import_picker_lists_the_projects_json_files_and_an_uploaded_file_is_imported(project):
    """Finding 9: Import offers the project's JSON files and folders, or a file from anywhere (uploaded)."""
    client = _client(project)
    ids = _ids(client)
    client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 40, "y": 30})
    client.post(f"/api/images/{ids['a.png']}/finish", json={})
    cat = client.post("/api/categories", json={"name": "box"}).json()
    client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 40, "y": 30})
    client.post(f"/api/images/{ids['a.png']}/finish", json={"category_id": cat["id"]})
    (project / "labels").mkdir()
    (project / "labels" / "a.json").write_text("{}")
    listed = client.get("/api/import/files").json()["files"]
    assert {"path": "labels/a.json", "kind": "file"} in listed and {"path": "labels", "kind": "folder"} in listed
    assert not any(f["path"].startswith(".clickmask") for f in listed)

    exported = client.post("/api/export", json={"format": "coco"}).json()
    coco = Path(exported["dir"]) / next(f for f in exported["files"] if f.endswith(".json"))
    text = coco.read_text() + " " * (9 * 1024 * 1024)  # bigger than the API's usual body limit
    r = client.post("/api/import/upload", json={"name": "from-elsewhere.json", "text": text})
    assert r.status_code == 200, r.text[:300]
    assert r.json()["added"] == 1  # the categorised object (the COCO export leaves out the other)
    assert len(client.get(f"/api/images/{ids['a.png']}/instances").json()) == 3
    bad = client.post("/api/import/upload", json={"name": "notes.json", "text": "{not json"})
    assert bad.status_code == 400 and "notes.json" in bad.json()["detail"] and "upload-" not in bad.json()["detail"]
    assert client.post("/api/import/upload", json={"name": "a.txt", "text": "x"}).status_code == 400
    assert not list((project / ".clickmask" / "imports").iterdir())  # nothing left behind


# ---------------------------------------------------------------- keeping the user's work safe
def test_a_deleted_objects_id_is_not_reused_and_undo_stays_on_its_image(project):
    client = _client(project)
    ids = _ids(client)
    a, b = ids["a.png"], ids["b.jpg"]
    x = client.post(f"/api/images/{a}/stroke", json={"points": [[20, 20]], "radius": 8}).json()
    assert client.delete(f"/api/instances/{x['id']}?version={x['version']}").status_code == 200
    y = client.post(f"/api/images/{b}/stroke", json={"points": [[50, 30]], "radius": 8}).json()
    assert y["id"] != x["id"]
    stale = client.patch(f"/api/instances/{x['id']}", json={"version": 1, "hidden": True})  # an old tab
    assert stale.status_code == 404
    assert client.post(f"/api/images/{a}/undo").status_code == 200
    assert [i["id"] for i in client.get(f"/api/images/{a}/instances").json()] == [x["id"]]
    assert [i["id"] for i in client.get(f"/api/images/{b}/instances").json()] == [y["id"]]
    assert client.post("/api/export", json={"format": "coco"}).status_code == 200


def test_state_changes_need_the_pages_header_and_its_origin(project):
    client = _client(project)
    a = _ids(client)["a.png"]
    client.post(f"/api/images/{a}/stroke", json={"points": [[20, 20]], "radius": 8})
    bare = TestClient(client.app)  # what a form or a no-cors fetch of another page can send
    assert bare.get("/api/images").status_code == 200  # reading is fine
    for method, url in [("POST", f"/api/images/{a}/undo"), ("POST", f"/api/images/{a}/open"),
                        ("PUT", "/api/settings/opo_enabled"), ("DELETE", f"/api/images/{a}/clicks")]:
        assert bare.request(method, url, json={"value": False}).status_code == 403, url
    other = client.post(f"/api/images/{a}/undo", headers={"origin": "http://localhost:9999"})
    assert other.status_code == 403 and "cross-origin" in other.json()["detail"]
    assert len(client.get(f"/api/images/{a}/instances").json()) == 1
    same = client.post(f"/api/images/{a}/undo", headers={"origin": "http://testserver"})
    assert same.status_code == 200


def test_ids_beyond_the_database_range_are_refused_without_a_server_error(project):
    client = _client(project)
    for url in ("/api/images/18446744073709551616", "/api/images/9223372036854775808/instances"):
        assert client.get(url).status_code == 422
    r = client.patch("/api/instances/1", json={"version": 2**64})
    assert r.status_code == 422


def test_settings_have_a_schema_and_internal_keys_are_not_writable(project):
    client = _client(project)
    a = _ids(client)["a.png"]
    assert client.put("/api/settings/polygon_tolerance", json={"value": "abc"}).status_code == 400
    assert client.put("/api/settings/polygon_tolerance", json={"value": 2}).json()["value"] == 2.0
    assert client.put("/api/settings/opo_enabled", json={"value": "yes"}).status_code == 400
    assert client.put("/api/settings/schema_version", json={"value": 99}).status_code == 404
    assert client.put("/api/settings/icp_click_banks", json={"value": "junk"}).status_code == 404
    assert client.get("/api/settings/schema_version").status_code == 404
    assert client.post(f"/api/images/{a}/stroke", json={"points": [[20, 20]], "radius": 8}).status_code == 200
    client.app.state.cm.store.set_setting("polygon_tolerance", "abc")  # written by an older version
    assert client.post(f"/api/images/{a}/stroke", json={"points": [[40, 40]], "radius": 8}).status_code == 200


def test_categories_save_asks_before_replacing_a_file(project):
    client = _client(project)
    (project / "readme.txt").write_text("the user's notes")
    r = client.post("/api/categories/save", json={"path": "readme.txt"})
    assert r.status_code == 409 and "exists" in r.json()["detail"]
    assert (project / "readme.txt").read_text() == "the user's notes"
    assert client.post("/api/categories/save", json={"path": "readme.txt", "overwrite": True}).status_code == 200


def test_an_image_linking_outside_the_project_is_not_served(project):
    outside = project.parent / "elsewhere.png"
    Image.fromarray(_image()).save(outside)
    (project / "link.png").symlink_to(outside)
    client = _client(project)
    link = _ids(client)["link.png"]
    assert client.get("/api/files/link.png").status_code == 403
    r = client.get(f"/api/images/{link}/file")
    assert r.status_code == 422 and "outside the project" in r.json()["detail"]


def test_strokes_names_and_bodies_are_bounded(project):
    client = _client(project)
    a = _ids(client)["a.png"]
    many = client.post(f"/api/images/{a}/stroke", json={"points": [[1, 1]] * 20_001, "radius": 2})
    assert many.status_code == 422
    assert client.post(f"/api/images/{a}/stroke", json={"points": [[1, 1, 1]], "radius": 2}).status_code == 422
    assert client.post("/api/categories", json={"name": "x" * 201}).status_code == 400
    huge = client.post("/api/categories", content=b'{"name": "' + b"x" * (9 * 1024 * 1024) + b'"}',
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413
    assert client.get("/api/categories").json() == []



def test_a_box_starts_an_object_clicks_refine_it_and_undo_takes_it_back(project):
    """POST /box segments inside a dragged rectangle (any drag direction); it stays a prompt of later clicks."""
    client = _client(project)
    image = _ids(client)["a.png"]
    r = client.post(f"/api/images/{image}/box", json={"x0": 64, "y0": 50, "x1": 16, "y1": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["box"] == [16, 10, 64, 50] and body["clicks"] == [] and 900 <= body["area"] <= 1500
    assert body["choice"] == {"index": 0, "count": 0}  # GrabCut has one answer
    client.post(f"/api/images/{image}/clicks", json={"x": 40, "y": 30, "positive": True})
    assert client.get(f"/api/images/{image}/mask").json()["box"] == [16, 10, 64, 50]
    assert len(client.delete(f"/api/images/{image}/clicks/last").json()["clicks"]) == 0
    undone = client.delete(f"/api/images/{image}/clicks/last").json()
    assert undone["box"] is None and undone["empty"]
    tiny = client.post(f"/api/images/{image}/box", json={"x0": 5, "y0": 5, "x1": 6, "y1": 30})
    assert tiny.status_code == 400 and "too small" in tiny.json()["detail"]
    assert client.post(f"/api/images/{image}/choice", json={"index": 1}).status_code == 400


@pytest.mark.model
def test_after_a_lone_click_the_other_masks_can_be_cycled(sam_predictor, tmp_path):
    """The model's candidate masks for an ambiguous first click, smallest first, until the next click."""
    from clickmask.engine.refine import InferenceOptions, RefinedPredictor
    from clickmask.server.sample import build_sample_project

    root = build_sample_project(tmp_path / "sample")
    state = AppState(store=open_project(root),
                     predictor=RefinedPredictor(sam_predictor, InferenceOptions.parse(None)))
    client = page_client(state)
    image = {Path(i["path"]).stem: i["id"] for i in client.get("/api/images").json()["images"]}["coffee"]
    one = client.post(f"/api/images/{image}/clicks", json={"x": 300, "y": 200, "positive": True}).json()
    count = one["choice"]["count"]
    assert count >= 2, one["choice"]
    areas = []
    for k in range(count):
        c = client.post(f"/api/images/{image}/choice", json={"index": k}).json()
        assert c["choice"] == {"index": k, "count": count}
        areas.append(c["area"])
    assert areas == sorted(areas) and len(set(areas)) == count
    client.post(f"/api/images/{image}/clicks", json={"x": 310, "y": 210, "positive": True})
    assert client.post(f"/api/images/{image}/choice", json={"index": 0}).status_code == 400


def test_undone_clicks_come_back_with_redo_and_the_object_survives_a_restart(project):
    client = _client(project)
    image = _ids(client)["a.png"]
    client.post(f"/api/images/{image}/clicks", json={"x": 40, "y": 30, "positive": True})
    two = client.post(f"/api/images/{image}/clicks", json={"x": 2, "y": 2, "positive": False}).json()
    assert client.delete(f"/api/images/{image}/clicks/last").json()["redo"] == 1
    again = client.post(f"/api/images/{image}/clicks/redo").json()
    assert again["clicks"] == two["clicks"] and again["runs"] == two["runs"] and again["redo"] == 0

    restarted = _client(project)  # a new server process on the same project
    kept = restarted.get(f"/api/images/{image}/mask").json()
    assert kept["clicks"] == two["clicks"] and kept["runs"] == two["runs"]
    other_tab = restarted.get(f"/api/images/{image}/mask", headers={"x-clickmask-tab": "tab2"}).json()
    assert other_tab["clicks"] == []  # restored once: a second tab does not get a copy to finish twice
    restarted.delete(f"/api/images/{image}/clicks")
    assert _client(project).get(f"/api/images/{image}/mask").json()["clicks"] == []


@pytest.mark.model
def test_the_crop_the_next_click_zooms_into_is_encoded_while_the_user_looks(sam_predictor, tmp_path):
    """Finding 2: after click 2 the server knows the zoom-in crop of click 3 and encodes it in the
    background; click 3 then finds it in the cache instead of waiting for an encoder pass."""
    from clickmask.engine.refine import InferenceOptions, InferenceStats, RefinedPredictor
    from clickmask.server.sample import build_sample_project

    root = build_sample_project(tmp_path / "sample")
    state = AppState(store=open_project(root),
                     predictor=RefinedPredictor(sam_predictor, InferenceOptions.parse(None)))
    client = page_client(state)
    image = {Path(i["path"]).stem: i["id"] for i in client.get("/api/images").json()["images"]}["rocket"]
    for x, y, positive in [(322, 184, True), (318, 129, False)]:  # the robot's first clicks on the rocket
        client.post(f"/api/images/{image}/clicks", json={"x": x, "y": y, "positive": positive})
    prepared = state.sessions[(image, "")].prediction.info["next_crop"]
    assert state.prefetcher.wait_idle(120)
    state.predictor.stats = stats = InferenceStats()
    client.post(f"/api/images/{image}/clicks", json={"x": 314, "y": 135, "positive": False})
    assert state.sessions[(image, "")].prediction.info["crop"] == prepared
    assert stats.zoom_encodes == 1 and stats.zoom_encode_ms == []  # the crop's embedding was ready
