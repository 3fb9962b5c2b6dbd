"""Real browser (Debian chromium via Playwright): annotate an object in the sample project and export COCO."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage



def _deepest(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the pixel farthest from the region's border."""
    dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), mask.shape)
    return int(c), int(r)


def _wait(page, condition: str, timeout: float = 30_000) -> None:
    """Wait for a JS condition; on timeout fail with the app's last message."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(condition, timeout=timeout)
    except PlaywrightTimeout:
        info = page.evaluate("[document.querySelector('#toast').textContent, JSON.stringify(window.cm.state.clicks), "
                             "window.cm.state.instances.length]")
        pytest.fail(f"timed out waiting for {condition}; app state: {info}")


def _page_point(page, x: float, y: float) -> tuple[float, float]:
    p = page.evaluate("([x, y]) => window.cm.viewer.toPage(x, y)", [x, y])
    return p["x"], p["y"]


def test_click_segment_edit_categorise_export(browser, app_server, screenshots):
    from clickmask.samples import load_samples

    server, store = app_server
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.locator("[data-testid=image-item]").count() == 4

    chelsea = store.list_images()[[i["path"] for i in store.list_images()].index("chelsea.png")]
    page.locator(f"[data-testid=image-item][data-id='{chelsea['id']}']").click()
    page.wait_for_function(f"window.cm.state.imageId === {chelsea['id']} && window.cm.viewer.width > 0")
    truth = load_samples(["chelsea"])[0].mask

    # positive click on the cat -> a mask appears
    x, y = _deepest(truth)
    page.mouse.click(*_page_point(page, x + 0.5, y + 0.5))
    page.wait_for_function("window.cm.state.clicks.length === 1 && window.cm.viewer.maskNode !== null", timeout=60_000)
    # negative click on the background
    bx, by = _deepest(~truth)
    page.mouse.click(*_page_point(page, bx + 0.5, by + 0.5), button="right")
    page.wait_for_function("window.cm.state.clicks.length === 2 && !window.cm.state.clicks[1].positive", timeout=30_000)
    page.screenshot(path=str(screenshots / "1-clicks.png"))

    # Space finishes the object
    page.keyboard.press("Space")
    _wait(page, "window.cm.state.instances.length === 1 && window.cm.state.clicks.length === 0")
    inst = store.list_instances(chelsea["id"])[0]
    mask = store.instance_mask(inst["id"])
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.5, f"the finished mask does not match the cat (IoU {iou:.2f})"

    # polygon mode: select the object and drag its first vertex
    page.keyboard.press("p")
    page.locator("[data-testid=instance-item] .name").first.click()
    page.wait_for_function("window.cm.viewer.vertexPage(0) !== null")
    before = page.evaluate("window.cm.state.instances[0].polygons[0].exterior[0]")
    vx, vy = (lambda p: (p["x"], p["y"]))(page.evaluate("window.cm.viewer.vertexPage(0)"))
    page.mouse.move(vx, vy)
    page.mouse.down()
    page.mouse.move(vx + 25, vy + 20, steps=6)
    page.mouse.up()
    page.wait_for_function(f"window.cm.state.instances[0].version > {inst['version']}", timeout=15_000)
    after = page.evaluate("window.cm.state.instances[0].polygons[0].exterior[0]")
    assert after != before and after[0] > before[0] and after[1] > before[1]
    assert store.instance(inst["id"])["polygons"][0]["exterior"][0] == after

    # assign a category
    page.locator("[data-testid=instance-category]").first.select_option(label="cat")
    cat_id = {c["name"]: c["id"] for c in store.list_categories()}["cat"]
    page.wait_for_function(f"window.cm.state.instances[0].category_id === {cat_id}")
    deadline = time.monotonic() + 10  # the UI may show the category before the write lands
    while store.instance(inst["id"])["category_id"] != cat_id and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.instance(inst["id"])["category_id"] == cat_id
    page.screenshot(path=str(screenshots / "2-polygon.png"))

    # brush onto the selected object, then Ctrl+Z takes the stroke back
    area = store.instance(inst["id"])["area"]
    page.keyboard.press("b")
    page.mouse.move(*_page_point(page, 5, truth.shape[0] - 5))
    page.mouse.down()
    page.mouse.move(*_page_point(page, 40, truth.shape[0] - 5), steps=5)
    page.mouse.up()
    _wait(page, f"window.cm.state.instances[0].area > {area}")
    page.keyboard.press("Control+z")
    _wait(page, f"window.cm.state.instances[0].area === {area}")
    assert store.instance(inst["id"])["area"] == area

    # export COCO from the UI and check the file
    page.locator("[data-testid=export-format]").select_option("coco")
    page.locator("[data-testid=export]").click()
    page.wait_for_function("window.cm.state.exportResult !== null", timeout=30_000)
    result = page.evaluate("window.cm.state.exportResult")
    jsons = [Path(result["dir"]) / f for f in result["files"] if f.endswith(".json")]
    assert jsons, result
    coco = json.loads(jsons[0].read_text())
    assert [c["name"] for c in coco["categories"] if c["id"] == coco["annotations"][0]["category_id"]] == ["cat"]
    assert len(coco["annotations"]) == 1
    image = [i for i in coco["images"] if i["id"] == coco["annotations"][0]["image_id"]][0]
    assert image["file_name"] == "chelsea.png" and (image["height"], image["width"]) == truth.shape
    assert abs(coco["annotations"][0]["area"] - store.instance(inst["id"])["area"]) <= 1
    page.screenshot(path=str(screenshots / "3-exported.png"))

    # the wheel zooms about the pointer
    scale = page.evaluate("window.cm.viewer.stage.scaleX()")
    page.mouse.move(*_page_point(page, x, y))
    page.mouse.wheel(0, -300)
    page.wait_for_function(f"window.cm.viewer.stage.scaleX() > {scale}")

    # a second tab changes the object; the stale first tab is told when it writes
    other = browser.new_page()
    other.goto(server.url + f"#image={chelsea['id']}")
    other.wait_for_selector("body[data-ready='1']", timeout=30_000)
    other.locator("[data-testid=instance-category]").first.select_option(label="cup")
    other.wait_for_function("window.cm.state.instances[0].category_id !== null && "
                            f"window.cm.state.instances[0].category_id !== {cat_id}")
    page.locator("[data-testid=instance-item] button", has_text="hide").click()
    _wait(page, "document.querySelector('#toast').textContent.includes('changed elsewhere')")
    assert not store.instance(inst["id"])["hidden"]
    other.close()
    assert not errors, errors
    page.close()


def _ready_page(browser, server, errors: list[str] | None = None):
    """A new tab on the app, ready; page errors go to ``errors``."""
    page = browser.new_page()
    page.set_default_timeout(60_000)
    if errors is not None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    return page


def _one_object_on_coffee(page, store) -> dict:
    """Open coffee.png, press 1 (the first category), click once and finish: returns the image."""
    image = next(i for i in store.list_images() if i["path"] == "coffee.png")
    page.locator(f"[data-testid=image-item][data-id='{image['id']}']").click()
    page.wait_for_function(f"window.cm.state.imageId === {image['id']} && window.cm.viewer.width > 0")
    page.keyboard.press("1")
    page.mouse.click(*_page_point(page, 200, 150))
    page.wait_for_function("window.cm.state.clicks.length === 1")
    page.keyboard.press("Space")
    _wait(page, "window.cm.state.instances.length === 1 && window.cm.state.clicks.length === 0")
    return image


def test_number_keys_never_change_a_finished_object_by_surprise(browser, app_server):
    """Finishing deselects; 1-9 then pick the next object's category; a deliberately selected object changes, with a word."""
    server, store = app_server
    errors: list[str] = []
    page = _ready_page(browser, server, errors)
    assert page.evaluate("window.cm.state.currentCategory") is None  # nothing chosen for the user
    assert page.locator("input[name=current-category]:checked").count() == 0
    cats = store.list_categories()

    image = _one_object_on_coffee(page, store)
    [inst] = store.list_instances(image["id"])
    assert inst["category_id"] == cats[0]["id"]
    assert page.evaluate("window.cm.state.selected") is None  # finishing deselects

    page.keyboard.press("4")  # the category of the NEXT object
    _wait(page, f"window.cm.state.currentCategory === {cats[3]['id']}")
    time.sleep(0.5)  # a wrong write would have landed by now
    assert store.instance(inst["id"])["category_id"] == cats[0]["id"]

    page.locator("[data-testid=instance-item] .name").first.click()  # selected on purpose
    page.keyboard.press("3")
    _wait(page, f"window.cm.state.instances[0].category_id === {cats[2]['id']}")
    assert store.instance(inst["id"])["category_id"] == cats[2]["id"]
    assert f"is now “{cats[2]['name']}”" in page.locator("#toast").text_content()
    page.keyboard.press("Escape")
    _wait(page, "window.cm.state.selected === null")
    assert not errors, errors


def test_finished_objects_show_their_outline_and_new_categories_get_distinct_colours(browser, app_server):
    server, store = app_server
    page = _ready_page(browser, server)
    for name in ("helmet", "flag", "shuttle"):  # typed in, the colour picker left alone
        page.locator("#category-name").fill(name)
        page.locator("#category-name").press("Enter")
        _wait(page, f"window.cm.state.categories.some((c) => c.name === '{name}')")
    colors = [c["color"] for c in store.list_categories()]
    assert len(set(colors)) == len(colors), colors

    _one_object_on_coffee(page, store)
    shape = "window.cm.viewer.annLayer.findOne('.instance')"
    drawn = page.evaluate(f"[{shape}.stroke(), {shape}.strokeWidth(), {shape}.fill(), "
                          "window.cm.viewer.annLayer.opacity()]")
    assert drawn[0] == colors[0] and drawn[1] >= 2 and drawn[3] == 1, drawn  # a full-strength outline
    page.locator("[data-testid=fill]").fill("0")  # no fill: the outline alone still shows the object
    _wait(page, f"{shape}.fill().endsWith(',0)')")
    assert page.evaluate(f"{shape}.stroke()") == colors[0]


def test_dragging_a_vertex_out_and_back_changes_pixels_near_it_only(browser, app_server):
    from clickmask.samples import load_samples

    server, store = app_server
    page = _ready_page(browser, server)
    chelsea = next(i for i in store.list_images() if i["path"] == "chelsea.png")
    page.locator(f"[data-testid=image-item][data-id='{chelsea['id']}']").click()
    page.wait_for_function(f"window.cm.state.imageId === {chelsea['id']} && window.cm.viewer.width > 0")
    truth = load_samples(["chelsea"])[0].mask
    page.mouse.click(*_page_point(page, *(v + 0.5 for v in _deepest(truth))))
    page.wait_for_function("window.cm.state.clicks.length === 1")
    page.keyboard.press("Space")
    _wait(page, "window.cm.state.instances.length === 1 && window.cm.state.clicks.length === 0")
    inst = store.list_instances(chelsea["id"])[0]
    before = store.instance_mask(inst["id"])

    page.keyboard.press("p")
    page.locator("[data-testid=instance-item] .name").first.click()
    page.wait_for_function("window.cm.viewer.vertexPage(0) !== null")
    vx, vy = page.evaluate("window.cm.state.instances[0].polygons[0].exterior[0]")
    for dx, dy, version in ((25, 20, inst["version"]), (0, 0, inst["version"] + 1)):  # out, then back
        p = page.evaluate("window.cm.viewer.vertexPage(0)")
        page.mouse.move(p["x"], p["y"])
        page.mouse.down()
        target = _page_point(page, vx + dx, vy + dy)
        page.mouse.move(*target, steps=6)
        page.mouse.up()
        page.wait_for_function(f"window.cm.state.instances[0].version > {version}", timeout=15_000)
    changed = np.argwhere(store.instance_mask(inst["id"]) != before)
    far = changed[np.abs(changed - [vy, vx]).max(axis=1) > 40] if len(changed) else changed
    assert len(far) == 0, f"{len(far)} pixels changed far from the vertex, e.g. {far[:5].tolist()}"

    # eraser: a stroke that erases nothing leaves no empty step in the history
    undo = store.history_state(chelsea["id"])["undo"]
    page.keyboard.press("e")
    page.mouse.click(*_page_point(page, 2, 2))  # far outside the cat
    time.sleep(1.0)
    assert store.history_state(chelsea["id"])["undo"] == undo


def test_rescan_finds_images_added_while_the_app_runs(browser, app_server):
    from PIL import Image

    server, store = app_server
    page = _ready_page(browser, server)
    before = page.locator("[data-testid=image-item]").count()
    Image.fromarray(np.full((30, 40, 3), 120, np.uint8)).save(store.root / "added-later.png")
    page.get_by_test_id("rescan").click()
    page.wait_for_function(f"document.querySelectorAll('[data-testid=image-item]').length === {before + 1}")
    assert "1 new image found" in page.locator("#toast").text_content()
    assert any(i["path"] == "added-later.png" for i in store.list_images())
    assert page.evaluate("document.querySelector('link[rel=icon]') !== null")
