"""References in the app (issue 24) through the API: make, show, switch, clear, per category, kept across a
restart, rebuilt for another model, and refused bad input (one-line errors, nothing stored)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image
from sqlalchemy import update

from clickmask.engine.loader import load_predictor
from clickmask.geometry import decode_rle, encode_rle
from clickmask.project import open_project
from clickmask.project.schema import InstanceRow
from clickmask.server import AppState
from clickmask.server.references import THUMBNAIL_SIDE
from page_client import page_client
from synthetic import two_part_objects

REF_BOX, NEW_BOX = (40, 50, 130, 170), (180, 60, 270, 180)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture()
def project(tmp_path):
    """ref.png: a two-part object and, apart, a plain red square; new.png: another two-part object.
    Finished on ref.png: the top part, the whole object (category "flag"), the square (no category)."""
    ref, tops, wholes = two_part_objects([REF_BOX])
    ref[200:230, 250:290] = (200, 40, 40)
    new, new_tops, new_wholes = two_part_objects([NEW_BOX], seed=3)
    Image.fromarray(ref).save(tmp_path / "ref.png")
    Image.fromarray(new).save(tmp_path / "new.png")
    store = open_project(tmp_path)
    ids = {i["path"]: i["id"] for i in store.list_images()}
    flag = store.add_category("flag")["id"]
    square = np.zeros(tops[0].shape, bool)
    square[200:230, 250:290] = True
    part = store.add_instance(ids["ref.png"], tops[0], flag)["id"]
    whole = store.add_instance(ids["ref.png"], wholes[0], flag)["id"]
    loose = store.add_instance(ids["ref.png"], square, None)["id"]
    store.close()
    return {"root": tmp_path, "ids": ids, "flag": flag, "part": part, "whole": whole, "loose": loose,
            "new_top": new_tops[0], "new_whole": new_wholes[0]}


def _app(project, predictor):
    state = AppState(store=open_project(project["root"]), predictor=predictor)
    return state, page_client(state)


def _first_click(client, image_id: int, category_id: int | None) -> dict:
    """A fresh object's first click just above the middle of new.png's object (inside its top part)."""
    client.delete(f"/api/images/{image_id}/clicks")
    x0, y0, x1, y1 = NEW_BOX
    r = client.post(f"/api/images/{image_id}/clicks?format=rle",
                    json={"x": (x0 + x1) / 2, "y": (y0 + y1) // 2 - 8, "positive": True, "category_id": category_id})
    assert r.status_code == 200, r.text
    return r.json()


def test_reference_made_shown_switched_kept_across_restart_and_cleared(project, sam_predictor):
    state, client = _app(project, sam_predictor)
    flag, new = project["flag"], project["ids"]["new.png"]
    assert client.get("/api/references").json()["references"] == []

    made = client.post("/api/references", json={"instance_id": project["part"],
                                                 "negative_instance_id": project["whole"]})
    assert made.status_code == 200, made.text
    ref = made.json()
    assert ref["key"] == str(flag) and ref["category"] == "flag" and ref["negative"] == "rest"
    assert ref["enabled"] and ref["instance_id"] == project["part"] and ref["image"] == "ref.png"
    assert ref["area"] == 60 * 90 and ref["negative_area"] == 60 * 90
    stored = state.store.get_setting(f"reference/{flag}")
    assert stored["image_id"] == project["ids"]["ref.png"] and stored["negative_instance_id"] == project["whole"]
    assert decode_rle(stored["positive_mask"]).sum() == 60 * 90 and "image" not in stored
    assert client.get(f"/api/references/{flag}").json() == ref

    png = client.get(f"/api/references/{flag}/thumbnail.png")
    assert png.headers["content-type"] == "image/png"
    thumb = cv2.imdecode(np.frombuffer(png.content, np.uint8), cv2.IMREAD_COLOR)
    assert max(thumb.shape[:2]) <= THUMBNAIL_SIDE and thumb.shape[0] > thumb.shape[1]  # the tall object

    # a first click with the category uses the reference: the top part of the new object
    with_ref = _first_click(client, new, flag)
    assert with_ref["reference"] == str(flag)
    assert _iou(decode_rle(with_ref["rle"]), project["new_top"]) > 0.8
    assert state.store.unfinished(new)["reference"] == str(flag)  # a restart replays it with the reference
    second = client.post(f"/api/images/{new}/clicks", json={"x": 200, "y": 150, "positive": True,
                                                             "category_id": flag}).json()
    assert second["reference"] == str(flag) and len(second["clicks"]) == 2  # the object keeps saying so
    assert _first_click(client, new, None)["reference"] is None  # without a category: no reference

    # off: kept, not used
    off = client.patch(f"/api/references/{flag}", json={"enabled": False}).json()
    assert off["enabled"] is False and off["instance_id"] == project["part"]
    assert _first_click(client, new, flag)["reference"] is None
    client.delete(f"/api/images/{new}/clicks")
    state.close()
    state.store.close()

    # a restart keeps it (still off) and its prototypes
    state, client = _app(project, sam_predictor)
    assert client.get(f"/api/references/{flag}").json() == off
    assert client.patch(f"/api/references/{flag}", json={"enabled": True}).json()["enabled"]
    again = _first_click(client, new, flag)
    assert again["reference"] == str(flag) and _iou(decode_rle(again["rle"]), project["new_top"]) > 0.8

    cleared = client.delete(f"/api/references/{flag}")
    assert cleared.json() == {"deleted": str(flag)}
    gone = client.get(f"/api/references/{flag}")
    assert gone.status_code == 404 and gone.json()["detail"] == f"category {flag} has no reference"
    assert state.store.get_setting(f"reference/{flag}") is None
    assert _first_click(client, new, flag)["reference"] is None
    state.close()


def test_references_per_category_and_without_category(project, sam_predictor):
    state, client = _app(project, sam_predictor)
    flag, new = project["flag"], project["ids"]["new.png"]
    other = client.post("/api/categories", json={"name": "square"}).json()["id"]
    # the uncategorised square: its own key "none", or another category's reference when one is named
    loose = client.post("/api/references", json={"instance_id": project["loose"]}).json()
    assert loose["key"] == "none" and loose["category_id"] is None and loose["negative"] == "none"
    named = client.post("/api/references", json={"instance_id": project["loose"], "category_id": other}).json()
    assert named["key"] == str(other) and named["category"] == "square"
    # a neighbour (not containing it) as the negative
    neighbour = client.post("/api/references", json={"instance_id": project["whole"],
                                                      "negative_instance_id": project["loose"]}).json()
    assert neighbour["key"] == str(flag) and neighbour["negative"] == "other"
    listed = client.get("/api/references").json()
    assert [r["key"] for r in listed["references"]] == ["none", str(flag), str(other)] and listed["available"]

    # each category's first click uses its own reference
    assert _first_click(client, new, flag)["reference"] == str(flag)
    assert _first_click(client, new, other)["reference"] == str(other)
    assert _first_click(client, new, None)["reference"] == "none"
    # a box is never decoded with a reference
    client.delete(f"/api/images/{new}/clicks")
    box = client.post(f"/api/images/{new}/box", json={"x0": 170, "y0": 50, "x1": 280, "y1": 190,
                                                       "category_id": flag}).json()
    assert box["reference"] is None
    client.delete(f"/api/images/{new}/clicks")

    # deleting a category forgets its reference; the others stay
    assert client.delete(f"/api/categories/{other}").status_code == 200
    assert state.store.get_setting(f"reference/{other}") is None
    assert [r["key"] for r in client.get("/api/references").json()["references"]] == ["none", str(flag)]
    state.close()


def test_reference_of_another_model_is_rebuilt_at_its_first_use(project, sam_predictor):
    state, client = _app(project, sam_predictor)
    flag = project["flag"]
    client.post("/api/references", json={"instance_id": project["part"], "negative_instance_id": project["whole"]})
    record = state.store.get_setting(f"reference/{flag}")
    state.store.set_setting(f"reference/{flag}", {**record, "model_id": "another-model",
                                                  "prototypes": {"positive": "AAAA", "negative": None}})
    state.close()
    state.store.close()
    state, client = _app(project, sam_predictor)
    answer = _first_click(client, project["ids"]["new.png"], flag)
    assert answer["reference"] == str(flag) and _iou(decode_rle(answer["rle"]), project["new_top"]) > 0.8
    rebuilt = state.store.get_setting(f"reference/{flag}")
    assert rebuilt["model_id"] == sam_predictor.model_id and rebuilt["prototypes"] == record["prototypes"]
    state.close()


def test_bad_reference_input_is_refused_in_one_line_and_nothing_is_stored(project, sam_predictor):
    state, client = _app(project, sam_predictor)
    flag, part, whole = project["flag"], project["part"], project["whole"]

    def refused(body: dict, status: int, detail: str) -> None:
        r = client.post("/api/references", json=body)
        assert r.status_code == status, r.text
        assert detail in r.json()["detail"] and "\n" not in r.json()["detail"], r.json()
        assert client.get("/api/references").json()["references"] == []

    refused({"instance_id": 999}, 404, "instance 999 does not exist")
    refused({"instance_id": part, "negative_instance_id": 998}, 404, "instance 998 does not exist")
    refused({"instance_id": part, "negative_instance_id": part}, 400, f"instance {part} cannot be its own negative")
    refused({"instance_id": whole, "negative_instance_id": part}, 400,
            f"instance {part} lies inside instance {whole}: nothing is left as the negative")
    refused({"instance_id": part, "category_id": 4242}, 404, "category 4242 does not exist")
    # an object on new.png as the negative of one on ref.png
    other_image = state.store.add_instance(project["ids"]["new.png"], project["new_whole"], flag)["id"]
    refused({"instance_id": part, "negative_instance_id": other_image}, 400, "is on another image")
    # an instance whose stored mask is empty (a damaged row: the store itself never writes one)
    with state.store._tx() as s:
        s.execute(update(InstanceRow).where(InstanceRow.id == part)
                  .values(rle=encode_rle(np.zeros((240, 320), bool))))
    refused({"instance_id": part}, 400, f"instance {part} has an empty mask: it cannot be a reference")

    for method, url in (("get", "/api/references/abc"), ("patch", "/api/references/-1"),
                        ("delete", "/api/references/1x")):
        r = client.request(method.upper(), url, json={"enabled": True} if method == "patch" else None)
        assert r.status_code == 400 and "use a category id or 'none'" in r.json()["detail"], r.text
    for method in ("GET", "DELETE"):
        r = client.request(method, f"/api/references/{flag}")
        assert r.status_code == 404 and r.json()["detail"] == f"category {flag} has no reference"
    assert client.get("/api/references/none/thumbnail.png").status_code == 404
    assert client.patch(f"/api/references/{flag}", json={"enabled": "maybe"}).status_code == 422
    state.close()


def test_references_need_the_sam_model(project):
    state, client = _app(project, load_predictor("grabcut"))
    listed = client.get("/api/references").json()
    assert listed["available"] is False and listed["reason"]
    r = client.post("/api/references", json={"instance_id": project["part"]})
    assert r.status_code == 400 and r.json()["detail"].startswith("references are off: a reference needs the SAM")
    assert state.store.get_setting(f"reference/{project['flag']}") is None
    # clicks work as before
    assert _first_click(client, project["ids"]["new.png"], project["flag"])["reference"] is None
    state.close()
