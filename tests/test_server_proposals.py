"""ICP in the app: proposals through the API, learning on finish, banks stored in the project."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clickmask.engine.loader import load_predictor
from clickmask.project import open_project
from clickmask.server import AppState
from synthetic import scene
from page_client import page_client


@pytest.fixture()
def project(tmp_path):
    Image.fromarray(scene([(20, 30, 80, 90)])).save(tmp_path / "a.png")
    Image.fromarray(scene([(150, 60, 210, 120), (30, 100, 80, 150)])).save(tmp_path / "b.png")
    return tmp_path


def _ids(client):
    return {i["path"]: i["id"] for i in client.get("/api/images").json()["images"]}


def _one_box_finished(project, predictor):
    """An app on the project with category "box" and one box of a.png finished: (state, client, ids, category)."""
    state = AppState(store=open_project(project), predictor=predictor)
    client = page_client(state)
    ids = _ids(client)
    cat = client.post("/api/categories", json={"name": "box"}).json()
    client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 50, "y": 60, "positive": True})
    client.post(f"/api/images/{ids['a.png']}/finish", json={"category_id": cat["id"]})
    return state, client, ids, cat


def test_proposal_learned_from_a_finished_object_and_stored(project, sam_predictor, monkeypatch):
    from clickmask.server import proposals

    from_map, from_bank = [], []
    real_map, real_bank = proposals.map_checked_proposal, proposals.checked_proposal
    monkeypatch.setattr(proposals, "map_checked_proposal",
                        lambda omap, predictor, *a, **k: from_map.append(predictor) or real_map(omap, predictor, *a, **k))
    monkeypatch.setattr(proposals, "checked_proposal",
                        lambda bank, predictor, *a, **k: from_bank.append(predictor) or real_bank(bank, predictor, *a, **k))
    state = AppState(store=open_project(project), predictor=sam_predictor)
    client = page_client(state)
    ids = _ids(client)
    cat = client.post("/api/categories", json={"name": "box"}).json()
    other = client.post("/api/categories", json={"name": "other"}).json()
    url_b = f"/api/images/{ids['b.png']}/proposal?category_id={cat['id']}"
    assert client.get(url_b).json() == {"proposal": None, "bank_size": 0}
    assert client.get(f"/api/images/{ids['b.png']}/proposal?category_id=999").status_code == 404

    # the user's own first click on image a, then finish with the category: the object map and the bank learn it
    client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 50, "y": 60, "positive": True})
    client.post(f"/api/images/{ids['a.png']}/finish", json={"category_id": cat["id"]})
    body = client.get(url_b).json()
    assert body["bank_size"] == 1
    x, y = body["proposal"]["x"], body["proposal"]["y"]
    right, left = (150, 60, 210, 120), (30, 100, 80, 150)
    box = next((b for b in (right, left) if b[0] <= x < b[2] and b[1] <= y < b[3]), None)
    assert box is not None, body
    # the proposal comes from the map with the app's model, and previews that box's mask
    assert len(from_map) == 1 and from_map[0] is state.predictor and from_bank == []
    assert body["proposal"]["checked"] is True
    preview = state._offered[ids["b.png"]][cat["id"]].prediction().mask
    truth = np.zeros_like(preview)
    truth[box[1]:box[3], box[0]:box[2]] = True
    assert (preview & truth).sum() / (preview | truth).sum() > 0.8
    assert client.get(f"/api/images/{ids['b.png']}/proposal?category_id={other['id']}").json()["proposal"] is None

    # accept the proposal (a positive click there) and finish: the next proposal is the other box
    client.post(f"/api/images/{ids['b.png']}/clicks", json={"x": x, "y": y, "positive": True})
    client.post(f"/api/images/{ids['b.png']}/finish", json={"category_id": cat["id"]})
    body = client.get(url_b).json()
    assert body["bank_size"] == 2
    x2, y2 = body["proposal"]["x"], body["proposal"]["y"]
    other_box = left if box == right else right
    assert other_box[0] <= x2 < other_box[2] and other_box[1] <= y2 < other_box[3], body

    # the banks and maps are in the project: a new server process sees them
    state2 = AppState(store=open_project(project), predictor=sam_predictor)
    assert state2.proposals.size(cat["id"]) == 2
    assert len(state2.proposals.banks().bank(str(cat["id"])).objects) == 2
    assert state2.proposals.object_map(cat["id"]).objects == 2
    # a map learned with another model is not used: the checked bank proposes instead
    stored = state2.store.get_object_map(cat["id"])
    state2.store.put_object_map(cat["id"], 2, "another-model", stored["data"])
    state3 = AppState(store=open_project(project), predictor=sam_predictor)
    assert not state3.proposals.object_map(cat["id"]).ready
    assert state3.proposal(ids["b.png"], cat["id"])["proposal"] is not None
    assert len(from_bank) == 1 and from_bank[0] is state3.predictor
    client2 = page_client(state2)
    assert client2.delete(f"/api/categories/{cat['id']}/click-bank").json()["bank_size"] == 0
    assert client2.get(url_b).json() == {"proposal": None, "bank_size": 0}
    assert state2.store.get_object_map(cat["id"]) is None


def test_accepting_a_checked_proposal_shows_the_checks_mask_without_a_decoder_run(project, sam_predictor, monkeypatch):
    """Enter on a checked proposal (a positive first click exactly there) starts the object from the
    mask the check found; any other first click is predicted as usual."""
    state, client, ids, cat = _one_box_finished(project, sam_predictor)
    offer = client.get(f"/api/images/{ids['b.png']}/proposal?category_id={cat['id']}").json()["proposal"]
    assert offer["checked"] is True
    checked = state._offered[ids["b.png"]][cat["id"]]
    # the offer previews the check's mask (row-major runs, starting with background)
    from clickmask.server.imaging import mask_runs

    assert offer["mask"] == mask_runs(checked.prediction().mask) and sum(offer["mask"]["runs"][1::2]) > 2000
    predicted = []
    real_predict = state.predictor.predict
    monkeypatch.setattr(state.predictor, "predict", lambda *a, **k: predicted.append(a) or real_predict(*a, **k))

    url = f"/api/images/{ids['b.png']}/clicks?format=png"
    body = {"x": offer["x"], "y": offer["y"], "positive": True, "category_id": cat["id"]}
    client.post(url, json=body)
    assert predicted == []
    shown = state.current_mask(ids["b.png"])
    raw = checked.prediction().mask  # the check's mask, before the engine's boundary snapping
    assert raw.sum() > 2000 and (shown & raw).sum() / (shown | raw).sum() > 0.9
    first = state.sessions[(ids["b.png"], "")].first_prediction
    assert first.info["proposal_token"] == checked.token
    # the next click refines it with the usual decoder run
    client.post(url, json={"x": 5, "y": 5, "positive": False, "category_id": cat["id"]})
    assert len(predicted) == 1 and len(state.clicks_of(ids["b.png"])) == 2
    client.delete(f"/api/images/{ids['b.png']}/clicks")
    # a first click a pixel away, or a negative one, is an ordinary click
    client.post(url, json={**body, "x": offer["x"] + 1})
    assert len(predicted) == 2
    client.delete(f"/api/images/{ids['b.png']}/clicks")
    # once that object is annotated, the offer's click lies on it: accepting predicts as usual
    client.post(url, json=body)
    client.post(f"/api/images/{ids['b.png']}/finish", json={"category_id": cat["id"]})
    client.post(url, json=body)
    assert len(predicted) == 3


def test_a_late_proposal_for_the_image_just_left_keeps_the_open_images_offer(project, sam_predictor, monkeypatch):
    """The user moves on to b.png while a.png's proposal is still being checked: Enter on b stays instant."""
    from clickmask.server import state as state_module

    state, client, ids, cat = _one_box_finished(project, sam_predictor)
    offer = client.get(f"/api/images/{ids['b.png']}/proposal?category_id={cat['id']}").json()["proposal"]
    client.get(f"/api/images/{ids['a.png']}/proposal?category_id={cat['id']}")  # the late answer for a.png
    assert set(state._offered) == {ids["a.png"], ids["b.png"]}
    predicted = []
    real_predict = state.predictor.predict
    monkeypatch.setattr(state.predictor, "predict", lambda *a, **k: predicted.append(a) or real_predict(*a, **k))
    body = {"x": offer["x"], "y": offer["y"], "positive": True, "category_id": cat["id"]}
    client.post(f"/api/images/{ids['b.png']}/clicks", json=body)
    assert predicted == []  # the offer was still there: no decoder run
    # only the OFFER_IMAGES images asked about last keep offers (each holds an image-sized mask)
    monkeypatch.setattr(state_module, "OFFER_IMAGES", 1)
    client.get(f"/api/images/{ids['a.png']}/proposal?category_id={cat['id']}")
    assert list(state._offered) == [ids["a.png"]]


def test_model_without_embedding_gives_no_proposal(project):
    state = AppState(store=open_project(project), predictor=load_predictor("grabcut"))
    client = page_client(state)
    ids = _ids(client)
    cat = client.post("/api/categories", json={"name": "box"}).json()
    client.post(f"/api/images/{ids['a.png']}/clicks", json={"x": 50, "y": 60, "positive": True})
    assert client.post(f"/api/images/{ids['a.png']}/finish", json={"category_id": cat["id"]}).status_code == 200
    assert client.get(f"/api/images/{ids['b.png']}/proposal?category_id={cat['id']}").json()["proposal"] is None


def test_a_click_does_not_wait_for_a_proposal_being_checked(project, sam_predictor, monkeypatch):
    """The object check (several decoder runs) happens outside the click lock: a click on another
    image is answered while a proposal is still being computed."""
    import threading

    from clickmask.server import proposals

    state, client, ids, cat = _one_box_finished(project, sam_predictor)

    entered, release = threading.Event(), threading.Event()
    real = proposals.map_checked_proposal

    def slow_check(*args, **kwargs):
        entered.set()
        assert release.wait(30), "the test never released the proposal"
        return real(*args, **kwargs)

    monkeypatch.setattr(proposals, "map_checked_proposal", slow_check)
    answer = {}
    worker = threading.Thread(target=lambda: answer.update(
        state.proposal(ids["b.png"], cat["id"])))
    worker.start()
    try:
        assert entered.wait(30)
        done = threading.Event()
        clicker = threading.Thread(target=lambda: (state.click(ids["a.png"], 50, 60, True), done.set()))
        clicker.start()
        assert done.wait(30), "the click waited for the proposal"
        # nor do the bank and the map: their size (and learning a finished object) is answered meanwhile
        sized = threading.Event()
        threading.Thread(target=lambda: (state.proposals.size(cat["id"]), sized.set()), daemon=True).start()
        assert sized.wait(30), "the bank stayed locked during the check"
        learned = threading.Event()
        threading.Thread(target=lambda: (state.finish(ids["a.png"], cat["id"]), learned.set()), daemon=True).start()
        assert learned.wait(30), "learning waited for the proposal"
    finally:
        release.set()
        worker.join(30)
    assert answer["proposal"] is not None and answer["bank_size"] == 1


def test_resetting_the_categorys_learning_forgets_its_proposals(project, sam_predictor):
    """The panel's reset (DELETE .../adaptation) forgets the proposals with the adapter and first-click memory."""
    state, client, ids, cat = _one_box_finished(project, sam_predictor)
    assert client.get(f"/api/categories/{cat['id']}/adaptation").json()["proposals"] == 1
    assert state.store.get_object_map(cat["id"]) is not None
    body = client.delete(f"/api/categories/{cat['id']}/adaptation").json()
    assert body["proposals"] == 0 and state.store.get_object_map(cat["id"]) is None
    assert client.get(f"/api/images/{ids['b.png']}/proposal?category_id={cat['id']}").json() == {
        "proposal": None, "bank_size": 0}


def test_a_deleted_categorys_proposals_do_not_pass_to_a_new_one(project, sam_predictor):
    """SQLite may give a new category the id of the one just deleted: it starts with nothing learned."""
    state, client, ids, cat = _one_box_finished(project, sam_predictor)
    state.granularity.learn(cat["id"], [np.ones((4, 4), bool)] * 4, 1, np.ones((4, 4), bool))
    assert client.delete(f"/api/categories/{cat['id']}").status_code == 200
    new = client.post("/api/categories", json={"name": "dog"}).json()
    assert client.get(f"/api/images/{ids['b.png']}/proposal?category_id={new['id']}").json() == {
        "proposal": None, "bank_size": 0}
    status = client.get(f"/api/categories/{new['id']}/adaptation").json()
    assert status["proposals"] == 0 and status["first_click"]["objects"] == 0
    import json

    assert str(cat["id"]) not in json.loads(state.store.get_setting("icp_click_banks"))["categories"]


def test_proposals_skip_objects_of_any_category_the_border_and_a_low_confidence(project, sam_predictor):
    """Finding 4: no proposal on an object already annotated (whatever its category) or on the image's
    border band; a proposal carries its confidence and the user's level hides weaker ones."""
    from clickmask.engine.clicks import Click
    from clickmask.learning.proposal import CheckedProposal
    from clickmask.server.proposals import off_border

    state, client, ids, cat = _one_box_finished(project, sam_predictor)
    url = f"/api/images/{ids['b.png']}/proposal?category_id={cat['id']}"
    first = client.get(url).json()["proposal"]
    assert 0 <= first["confidence"] <= 1
    right, left = (150, 60, 210, 120), (30, 100, 80, 150)
    hit = next(b for b in (right, left) if b[0] <= first["x"] < b[2] and b[1] <= first["y"] < b[3])
    # that box annotated as ANOTHER category: the next proposal is the other box
    other = client.post("/api/categories", json={"name": "other"}).json()
    client.post(f"/api/images/{ids['b.png']}/clicks", json={"x": (hit[0] + hit[2]) // 2,
                                                             "y": (hit[1] + hit[3]) // 2, "positive": True})
    client.post(f"/api/images/{ids['b.png']}/finish", json={"category_id": other["id"]})
    second = client.get(url).json()["proposal"]
    rest = left if hit == right else right
    assert rest[0] <= second["x"] < rest[2] and rest[1] <= second["y"] < rest[3], second

    assert client.put("/api/settings/proposal_confidence", json={"value": 1.5}).status_code == 400
    assert client.put("/api/settings/proposal_confidence", json={"value": 1.0}).status_code == 200
    if second["confidence"] < 1.0:
        assert client.get(url).json()["proposal"] is None  # below the user's level: not shown

    hw = (200, 300)  # border band: 2% of the shorter side, at least 4 px
    assert off_border(CheckedProposal(Click(3, 100, True)), hw) is None
    assert off_border(CheckedProposal(Click(150, 197, True)), hw) is None
    assert off_border(CheckedProposal(Click(4, 4, True)), hw) is not None
