"""Real browser: finishing an object trains its category's adapter (OPO) and proposals; the panel shows them, reset clears them."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from clickmask.learning.opo import OPOConfig


def _page_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.cm.viewer.toPage(x, y)", [x, y])
    return p["x"], p["y"]


@pytest.mark.parametrize("app_server", [OPOConfig(steps=1, batch_size=1)], indirect=True)
def test_finished_object_shows_adapter_version_and_reset_clears_it(browser, app_server, screenshots):
    from clickmask.samples import load_samples

    server, store = app_server
    if not server.state.adaptation.available:
        pytest.skip(f"online adaptation is off here: {server.state.adaptation.reason}")
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # the reset asks for confirmation
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.keyboard.press("1")  # the first category for the next objects (none is chosen for the user)
    text = page.get_by_test_id("adaptation-text")
    page.wait_for_function("window.cm.state.adaptation !== null")
    assert text.inner_text() == "nothing learned yet"
    assert page.get_by_test_id("adaptation-reset").is_disabled()

    # one object of the current category on chelsea, finished with Space
    image = next(i for i in store.list_images() if i["path"] == "chelsea.png")
    page.locator(f"[data-testid=image-item][data-id='{image['id']}']").click()
    page.wait_for_function(f"window.cm.state.imageId === {image['id']} && window.cm.viewer.width > 0")
    truth = load_samples(["chelsea"])[0].mask
    dist = ndimage.distance_transform_edt(np.pad(truth, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), truth.shape)
    page.mouse.click(*_page_point(page, c + 0.5, r + 0.5))
    page.wait_for_function("window.cm.state.clicks.length === 1", timeout=60_000)
    page.keyboard.press("Space")
    page.wait_for_function("window.cm.state.instances.length === 1 && window.cm.state.clicks.length === 0")

    # training runs in the background; the panel polls until it shows the new version
    page.wait_for_function("window.cm.state.adaptation && window.cm.state.adaptation.version === 1"
                           " && !window.cm.state.adaptation.busy", timeout=300_000)
    # the app's default gate: a category's first version has not been tested on an unseen object yet
    assert text.inner_text() == "learned from 1 object, not in use yet · suggests where to click (1 object)"
    assert "clicks use the unadapted model" in text.get_attribute("title")
    category = page.evaluate("window.cm.state.currentCategory")
    assert [row["category_id"] for row in store.list_adapters()] == [category]

    # the category's first-click memory (it has learned the cat's first click): more finished objects wanted
    # the whole (token 3), not the engine's part (1)
    part, whole = np.zeros((40, 40), bool), np.zeros((40, 40), bool)
    part[15:25, 15:25], whole[5:35, 5:35] = True, True
    readings = [part, part, part, whole]
    for _ in range(4):
        server.state.granularity.learn(category, readings, 1, whole)
    page.evaluate("window.cm.refreshAdaptation()")
    page.wait_for_function("window.cm.state.adaptation.first_click.token === 3")
    assert text.inner_text() == ("learned from 1 object, not in use yet · remembers part or whole · "
                                  "suggests where to click (1 object)")
    assert "part or whole" in text.get_attribute("title") and "unadapted model" in text.get_attribute("title")
    assert "purple marker" in text.get_attribute("title")
    assert store.get_object_map(category)["objects"] == 1
    page.screenshot(path=str(screenshots / "adaptation.png"))

    page.get_by_test_id("adaptation-reset").click()
    page.wait_for_function("window.cm.state.adaptation.version === 0")
    assert text.inner_text() == "nothing learned yet"  # the first-click memory and the proposals are reset with it
    assert store.list_adapters() == [] and store.get_object_map(category) is None
    page.wait_for_function("window.cm.state.proposal === null")

    # with OPO switched off the first-click memory still works: the panel stays for it, and reset clears it
    store.set_setting("opo_enabled", False)  # what PUT /api/settings/opo_enabled {"value": false} stores
    for _ in range(2):
        server.state.granularity.learn(category, readings, 1, whole)
    page.evaluate("window.cm.refreshAdaptation()")
    page.wait_for_function("window.cm.state.adaptation.first_click.token === 3 && !window.cm.state.adaptation.enabled")
    assert page.get_by_test_id("adaptation").is_visible()
    assert text.inner_text() == "nothing learned yet (learning off) · remembers part or whole"
    page.get_by_test_id("adaptation-reset").click()
    page.wait_for_function("window.cm.state.adaptation.first_click.token === null")
    assert not page.get_by_test_id("adaptation").is_visible()
    assert not errors, errors
