"""Project store: categories, instances, versions, history across restarts, settings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clickmask.errors import ClickmaskError
from clickmask.geometry import decode_rle
from clickmask.project import ConflictError, NotFoundError, open_project
from clickmask.project.masks import apply_stroke


def _folder(tmp_path: Path, n: int = 2) -> Path:
    for i in range(n):
        Image.fromarray(np.full((20, 30, 3), 40 * i, np.uint8)).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def _mask(r0=5, r1=10, c0=5, c1=15) -> np.ndarray:
    m = np.zeros((20, 30), bool)
    m[r0:r1, c0:c1] = True
    return m


def test_images_are_registered_with_status_and_counts(tmp_path):
    store = open_project(_folder(tmp_path))
    images = store.list_images()
    assert [i["path"] for i in images] == ["img0.png", "img1.png"]
    assert all(i["status"] == "new" and i["instances"] == 0 for i in images)
    assert (tmp_path / ".clickmask" / "project.db").is_file()
    store.add_instance(images[0]["id"], _mask())
    assert store.image(images[0]["id"])["status"] == "in_progress"
    assert store.set_status(images[0]["id"], "done")["status"] == "done"
    assert store.counts() == {"new": 1, "in_progress": 0, "done": 1, "images": 2, "instances": 1, "errors": 0,
                              "uncategorised": 1}
    with pytest.raises(ClickmaskError, match="invalid status"):
        store.set_status(images[0]["id"], "finished")


def test_wal_mode_and_integrity(tmp_path):
    store = open_project(_folder(tmp_path))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert store.integrity_ok()


def test_instance_keeps_holes_and_exact_rle(tmp_path):
    store = open_project(_folder(tmp_path))
    mask = _mask()
    mask[7, 8] = False
    mask[2:4, 20:25] = True  # second part
    inst = store.add_instance(1, mask)
    assert np.array_equal(decode_rle(inst["rle"]), mask)
    assert inst["area"] == int(mask.sum())
    assert len(inst["polygons"]) == 2 and sum(len(p["holes"]) for p in inst["polygons"]) == 1


def test_version_conflict_and_not_found(tmp_path):
    store = open_project(_folder(tmp_path))
    inst = store.add_instance(1, _mask())
    tab_a = store.update_instance(inst["id"], inst["version"], hidden=True)
    with pytest.raises(ConflictError, match="changed elsewhere"):
        store.update_instance(inst["id"], inst["version"], hidden=False)  # stale tab B
    with pytest.raises(ConflictError):
        store.delete_instance(inst["id"], inst["version"])
    store.delete_instance(inst["id"], tab_a["version"])
    with pytest.raises(NotFoundError):
        store.update_instance(inst["id"], tab_a["version"], hidden=False)
    with pytest.raises(NotFoundError):
        store.add_instance(99, _mask())


def test_ids_are_never_reused_and_undo_stays_on_its_image(tmp_path):
    store = open_project(_folder(tmp_path))
    x = store.add_instance(1, _mask())
    store.delete_instance(x["id"], x["version"])
    y = store.add_instance(2, _mask(0, 3, 0, 3))
    assert y["id"] > x["id"]
    with pytest.raises(NotFoundError):  # a stale tab's edit of the deleted object
        store.update_instance(x["id"], 1, hidden=True)
    assert store.undo(1)["action"] == "delete"  # brings x back on image 1, leaves image 2 alone
    assert [i["id"] for i in store.list_instances(1)] == [x["id"]]
    assert np.array_equal(store.instance_mask(y["id"]), _mask(0, 3, 0, 3))
    assert store.instance(y["id"])["image_id"] == 2


def test_a_schema_1_database_gets_ids_above_every_id_its_history_used(tmp_path):
    """Projects made before AUTOINCREMENT: the table is rebuilt; deleted ids stay unused."""
    from sqlalchemy import text

    folder = _folder(tmp_path)
    store = open_project(folder)
    keep = store.add_instance(1, _mask())
    gone = store.add_instance(1, _mask(0, 3, 0, 3))
    store.delete_instance(gone["id"], gone["version"])
    with store.engine.begin() as conn:  # turn the table back into what schema 1 created
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE name='instances'")).scalar()
        conn.execute(text("ALTER TABLE instances RENAME TO old"))
        conn.execute(text(sql.replace("AUTOINCREMENT", "")))
        conn.execute(text("INSERT INTO instances SELECT * FROM old"))
        conn.execute(text("DROP TABLE old"))
        conn.execute(text("DELETE FROM sqlite_sequence"))
        conn.execute(text("UPDATE settings SET value = '1' WHERE key = 'schema_version'"))
    store.close()
    store = open_project(folder)
    assert store.get_setting("schema_version") == 2
    assert store.instance(keep["id"])["version"] == keep["version"]
    assert store.add_instance(2, _mask())["id"] > gone["id"]
    assert store.undo(1)["action"] == "delete" and len(store.list_instances(1)) == 2
    assert store.integrity_ok()


def test_polygon_edit_and_brush(tmp_path):
    store = open_project(_folder(tmp_path))
    inst = store.add_instance(1, _mask())
    square = [{"exterior": [[2, 2], [12, 2], [12, 12], [2, 12]], "holes": []}]
    edited = store.update_instance(inst["id"], inst["version"], polygons=square)
    assert edited["area"] == 100 and edited["polygons"][0]["exterior"][1] == [12.0, 2.0]
    mask = decode_rle(edited["rle"])
    painted = apply_stroke(mask, [[20, 10], [25, 10]], 2.0, erase=False)
    assert painted[10, 22] and painted.sum() > mask.sum()
    erased = apply_stroke(painted, [[5, 5]], 1.5, erase=True)
    assert not erased[5, 5] and erased[10, 10]
    with pytest.raises(ClickmaskError):
        store.update_instance(inst["id"], edited["version"], polygons=[{"exterior": [[1, 1]]}])


def test_reorder_undo_redo_survive_restart(tmp_path):
    folder = _folder(tmp_path)
    store = open_project(folder)
    a = store.add_instance(1, _mask())
    b = store.add_instance(1, _mask(0, 3, 0, 3))
    assert [i["id"] for i in store.list_instances(1)] == [a["id"], b["id"]]
    store.reorder(1, [b["id"], a["id"]])
    assert [i["id"] for i in store.list_instances(1)] == [b["id"], a["id"]]
    with pytest.raises(ConflictError):
        store.reorder(1, [a["id"]])
    store.close()

    store = open_project(folder)  # "restart"
    assert store.undo(1)["action"] == "reorder"
    assert [i["id"] for i in store.list_instances(1)] == [a["id"], b["id"]]
    assert store.undo(1)["action"] == "add"
    assert [i["id"] for i in store.list_instances(1)] == [a["id"]]
    store.close()

    store = open_project(folder)
    assert store.history_state(1) == {"undo": 1, "redo": 2}
    assert store.redo(1)["action"] == "add"
    restored = store.instance(b["id"])
    assert np.array_equal(decode_rle(restored["rle"]), _mask(0, 3, 0, 3))
    store.add_instance(1, _mask(15, 18, 0, 4))  # a new edit drops the redo branch
    assert store.redo(1) is None
    assert store.history_state(1)["redo"] == 0


def test_categories_crud_and_file(tmp_path):
    store = open_project(_folder(tmp_path))
    cat = store.add_category("cat", "#FF0000")
    assert cat["color"] == "#ff0000"
    dog = store.add_category("dog")
    with pytest.raises(ConflictError):
        store.add_category("cat")
    with pytest.raises(ClickmaskError, match="invalid colour"):
        store.update_category(cat["id"], color="red")
    store.update_category(cat["id"], name="kitten", color="#00ff00")
    inst = store.add_instance(1, _mask(), dog["id"])
    store.delete_category(dog["id"])
    assert store.instance(inst["id"])["category_id"] is None
    path = store.save_categories(tmp_path / "cats.json")
    assert json.loads(path.read_text())["categories"][0]["name"] == "kitten"

    (tmp_path / "labels.txt").write_text("# comment\nperson #123456\ntraffic light\nkitten #0000ff\n")
    cats = store.load_categories(tmp_path / "labels.txt")
    assert [(c["name"], c["color"]) for c in cats][:2] == [("kitten", "#0000ff"), ("person", "#123456")]
    assert len(cats) == 3
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ClickmaskError, match="bad.json"):
        store.load_categories(tmp_path / "bad.json")


def test_settings_and_bad_inputs(tmp_path):
    store = open_project(_folder(tmp_path))
    store.set_setting("shortcuts", {"finish": "Space"})
    assert store.get_setting("shortcuts") == {"finish": "Space"}
    assert store.get_setting("missing", 3) == 3
    with pytest.raises(ClickmaskError, match="no such folder"):
        open_project(tmp_path / "nope")
    with pytest.raises(ClickmaskError, match="empty"):
        store.add_instance(1, np.zeros((20, 30), bool))
    with pytest.raises(ClickmaskError, match="cannot open the project database"):
        open_project(tmp_path, url="nosuchdialect://x")


def test_object_maps_are_stored_per_category_and_go_with_it(tmp_path):
    store = open_project(_folder(tmp_path))
    cat = store.add_category("box")["id"]
    assert store.get_object_map(cat) is None
    with pytest.raises(NotFoundError):
        store.put_object_map(999, 1, "m", b"x")
    store.put_object_map(cat, 1, "model-a", b"first")
    store.put_object_map(cat, 2, "model-a", b"second")
    store.close()
    store = open_project(tmp_path)  # survives a restart
    assert store.get_object_map(cat) == {"category_id": cat, "objects": 2, "model_id": "model-a", "data": b"second"}
    store.delete_object_map(cat)
    store.delete_object_map(cat)  # no error when there is none
    assert store.get_object_map(cat) is None
    store.put_object_map(cat, 1, "model-a", b"again")
    store.delete_category(cat)  # the map goes with its category
    assert store.get_object_map(cat) is None


def test_a_polygon_edit_changes_pixels_only_where_the_outline_moved(tmp_path):
    """Moving one vertex (out, and back) changes pixels near it only, never along the rest of the object."""
    store = open_project(_folder(tmp_path))
    yy, xx = np.mgrid[:20, :30]
    blob = (yy - 10) ** 2 / 64 + (xx - 15) ** 2 / 144 < 1  # curved: its simplified outline is not the mask
    inst = store.add_instance(1, blob, tolerance=1.0)
    polygons = inst["polygons"]
    ring = polygons[0]["exterior"]
    vx, vy = ring[0]
    moved = [{"exterior": [[vx + 3, vy + 2], *ring[1:]], "holes": []}]
    out = store.update_instance(inst["id"], inst["version"], polygons=moved)
    changed = np.argwhere(decode_rle(out["rle"]) != blob)
    assert len(changed) and np.abs(changed - [vy, vx]).max() <= 8  # rows/cols near the vertex only
    back = store.update_instance(inst["id"], out["version"], polygons=polygons)
    changed = np.argwhere(decode_rle(back["rle"]) != blob)
    assert len(changed) <= 6 and (not len(changed) or np.abs(changed - [vy, vx]).max() <= 8)


def test_an_edit_that_changes_nothing_is_no_undo_step(tmp_path):
    store = open_project(_folder(tmp_path))
    inst = store.add_instance(1, _mask())
    same = store.update_instance(inst["id"], inst["version"], mask=_mask())  # an eraser stroke beside it
    assert same["version"] == inst["version"] and store.history_state(1) == {"undo": 1, "redo": 0}
    hidden = store.update_instance(inst["id"], inst["version"], hidden=True)
    assert hidden["version"] == inst["version"] + 1 and store.history_state(1)["undo"] == 2
