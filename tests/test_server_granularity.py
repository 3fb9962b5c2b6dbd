"""First-click granularity in the app: the category's memory picks the first click's mask token, learns on
finish, is stored in the project and is reset with the category's adaptation."""

from __future__ import annotations

import pytest
from PIL import Image

from clickmask.engine.refine import InferenceOptions, RefinedPredictor
from clickmask.project import open_project
from clickmask.server import AppState
from clickmask.server.granularity import SETTING
from synthetic import scene
from page_client import page_client


@pytest.fixture()
def project(tmp_path):
    Image.fromarray(scene([(20, 30, 80, 90)])).save(tmp_path / "a.png")
    Image.fromarray(scene([(150, 60, 210, 120)])).save(tmp_path / "b.png")
    return tmp_path


def _first_token(state, image_id):
    return state.sessions[(image_id, "")].first_prediction.info


def test_memory_sets_the_first_token_learns_on_finish_and_resets(project, sam_predictor):
    store = open_project(project)
    predictor = RefinedPredictor(sam_predictor, InferenceOptions.parse("first=central"))
    state = AppState(store=store, predictor=predictor)
    client = page_client(state)
    ids = {i["path"]: i["id"] for i in client.get("/api/images").json()["images"]}
    a, b = ids["a.png"], ids["b.png"]
    cat = client.post("/api/categories", json={"name": "box"}).json()["id"]
    status = client.get(f"/api/categories/{cat}/adaptation").json()["first_click"]
    assert status == {"objects": 0, "token": None}

    # the engine's own choice for this click, then the same object finished with the category: recorded
    client.post(f"/api/images/{a}/clicks", json={"x": 50, "y": 60, "positive": True, "category_id": cat})
    info = _first_token(state, a)
    own = info["first_default"]
    assert info["first_token"] == own
    client.post(f"/api/images/{a}/finish", json={"category_id": cat})
    assert client.get(f"/api/categories/{cat}/adaptation").json()["first_click"]["objects"] == 1
    assert store.get_setting(SETTING)[str(cat)]["objects"] == 1

    # a memory that has learned another token (stored in the project) is used for the category's first clicks
    forced = 3 if own != 3 else 2
    counts = [0, 0, 0, 0]
    counts[forced] = 4
    store.set_setting(SETTING, {str(cat): {"counts": counts, "gain": 0.5, "wins": 2, "losses": 1, "objects": 4, "min_objects": 2}})
    state2 = AppState(store=store, predictor=predictor)
    client2 = page_client(state2)
    assert client2.get(f"/api/categories/{cat}/adaptation").json()["first_click"] == {"objects": 4, "token": forced}
    client2.post(f"/api/images/{b}/clicks", json={"x": 180, "y": 90, "positive": True, "category_id": cat})
    assert _first_token(state2, b)["first_token"] == forced
    client2.delete(f"/api/images/{b}/clicks")
    client2.post(f"/api/images/{b}/clicks", json={"x": 180, "y": 90, "positive": True})  # no category
    assert _first_token(state2, b)["first_token"] == _first_token(state2, b)["first_default"]
    client2.delete(f"/api/images/{b}/clicks")

    # reset with the adaptation: the engine's choice again, and the stored memory is gone
    body = client2.delete(f"/api/categories/{cat}/adaptation").json()
    assert body["first_click"] == {"objects": 0, "token": None}
    assert str(cat) not in store.get_setting(SETTING)
    client2.post(f"/api/images/{b}/clicks", json={"x": 180, "y": 90, "positive": True, "category_id": cat})
    assert _first_token(state2, b)["first_token"] == _first_token(state2, b)["first_default"]


def test_unreadable_stored_memory_is_logged_and_replaced(project, sam_predictor, caplog):
    store = open_project(project)
    store.set_setting(SETTING, {"1": {"counts": "nonsense"}})
    state = AppState(store=store, predictor=sam_predictor)
    assert state.granularity.preferred(1) is None
    assert SETTING in caplog.text and "unreadable" in caplog.text
