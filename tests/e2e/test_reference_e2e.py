"""Real browser, real model: a part made the reference of its category (with the rest of its object as the
negative) makes a single click on a new object of that category give the part; switched off, the same click
gives the whole object; cleared, the panel is empty again.

The images are generated (``synthetic.two_part_objects``): objects whose two halves look clearly different
(dark ochre with thin yellow stripes over plain blue), so the part is a fair target for a reference made on
another image. The click lies in the top half just above the object's middle, where the model alone takes
the whole object.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from page_helpers import page_point, shown_mask

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from synthetic import two_part_objects  # noqa: E402

REF_BOX = (50, 40, 140, 170)  # x0, y0, x1, y1 on the reference image
NEW_BOX = (170, 70, 250, 180)  # the new object, on another image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


@pytest.fixture()
def reference_server(tmp_path):
    """A live server on two generated images; on the first, the part and the whole object are finished
    objects of category "flag". Yields (server, store, ids, the new object's part and whole masks)."""
    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer

    project = tmp_path / "parts"
    project.mkdir()
    ref, tops, wholes = two_part_objects([REF_BOX])
    new, new_tops, new_wholes = two_part_objects([NEW_BOX], seed=7)
    Image.fromarray(ref).save(project / "a_reference.png")
    Image.fromarray(new).save(project / "b_new.png")
    store = open_project(project)
    flag = store.add_category("flag")["id"]
    image = {i["path"]: i["id"] for i in store.list_images()}
    ids = {"flag": flag, "ref": image["a_reference.png"], "new": image["b_new.png"],
           "part": store.add_instance(image["a_reference.png"], tops[0], flag)["id"],
           "whole": store.add_instance(image["a_reference.png"], wholes[0], flag)["id"]}
    predictor = load_predictor(None, allow_fallback=True)
    if predictor.is_fallback:
        pytest.skip("references need the SAM model (run `clickmask models pull`)")
    state = AppState(store=store, predictor=predictor)
    with LiveServer(create_app(state)) as server:
        yield server, store, ids, new_tops[0], new_wholes[0]
    state.close()


def _single_click(page, image_id: int) -> np.ndarray:
    """Drop the object in progress, then one click in the new object's top half, just above its middle."""
    page.keyboard.press("Escape")
    page.wait_for_function("window.cm.state.clicks.length === 0")
    x0, y0, x1, y1 = NEW_BOX
    page.mouse.click(*page_point(page, (x0 + x1) / 2, (y0 + y1) // 2 - 8))
    page.wait_for_function("window.cm.state.clicks.length === 1 && window.cm.viewer.maskNode !== null "
                           "&& !window.cm.state.clickBusy")
    return shown_mask(page, image_id)


def test_a_part_reference_makes_one_click_give_the_part(browser, reference_server, screenshots):
    server, store, ids, part, whole = reference_server
    key = str(ids["flag"])
    errors: list[str] = []
    page = browser.new_page()
    page.set_default_timeout(60_000)  # two shared cores: the embeddings may take a while
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_function(f"window.cm.state.imageId === {ids['ref']} && window.cm.state.instances.length === 2")
    page.keyboard.press("1")  # category "flag"
    assert page.get_by_test_id("reference-empty").is_visible()
    assert "flag" in page.get_by_test_id("reference-empty").text_content()
    assert page.get_by_test_id("reference-badge").is_hidden()

    # the part is selected and made the reference, the rest of the whole object as its negative
    assert page.get_by_test_id("reference-use").is_disabled()
    page.locator(f"[data-testid=instance-item][data-id='{ids['part']}'] .name").click()
    negative = page.get_by_test_id("reference-negative")
    assert negative.locator("option").all_text_contents() == ["no negative", f"not the rest of #{ids['whole']}"]
    negative.select_option(str(ids["whole"]))
    page.get_by_test_id("reference-use").click()
    page.wait_for_function(f"window.cm.state.references['{key}'] !== undefined")
    page.wait_for_function("document.querySelector('#reference-thumb').complete "
                           "&& document.querySelector('#reference-thumb').naturalWidth > 0")
    text = page.get_by_test_id("reference-text").text_content()
    assert "flag" in text and f"#{ids['part']}" in text and f"not the rest of #{ids['whole']}" in text
    assert page.get_by_test_id("reference-on").is_checked()
    assert page.get_by_test_id("reference-badge").text_content() == "reference on: “flag”"
    stored = store.get_setting(f"reference/{key}")
    assert (stored["instance_id"], stored["negative_instance_id"], stored["negative"]) == \
        (ids["part"], ids["whole"], "rest")

    # a single click on the new object of the category: the part
    page.locator(f"[data-testid=image-item][data-id='{ids['new']}']").click()
    page.wait_for_function(f"window.cm.state.imageId === {ids['new']} && window.cm.viewer.width > 0")
    with_reference = _single_click(page, ids["new"])
    assert _iou(with_reference, part) > 0.85 and _iou(with_reference, whole) < 0.6, \
        (_iou(with_reference, part), _iou(with_reference, whole))
    badge = page.get_by_test_id("reference-badge")
    assert badge.is_visible() and badge.text_content() == "reference in use: “flag”"
    page.screenshot(path=str(screenshots / "reference_part.png"))

    # switched off: the same click gives the whole object, and nothing says a reference is in use
    page.get_by_test_id("reference-on").uncheck()
    page.wait_for_function(f"window.cm.state.references['{key}'].enabled === false")
    without = _single_click(page, ids["new"])
    assert _iou(without, whole) > 0.85 and _iou(without, part) < 0.6, (_iou(without, whole), _iou(without, part))
    assert badge.is_hidden() and "(off)" in page.get_by_test_id("reference-text").text_content()
    assert store.get_setting(f"reference/{key}")["enabled"] is False

    # on again: the part again; cleared: the panel is empty and the project forgets it
    page.get_by_test_id("reference-on").check()
    page.wait_for_function(f"window.cm.state.references['{key}'].enabled === true")
    assert _iou(_single_click(page, ids["new"]), part) > 0.85
    page.keyboard.press("Escape")
    page.get_by_test_id("reference-clear").click()
    page.wait_for_function(f"window.cm.state.references['{key}'] === undefined")
    assert page.get_by_test_id("reference-empty").is_visible() and badge.is_hidden()
    assert store.get_setting(f"reference/{key}") is None
    assert not errors, errors
