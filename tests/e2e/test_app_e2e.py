"""Real browser (Debian chromium via Playwright): annotate an object in the sample project and export COCO."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from page_helpers import shown_mask


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
    p = page.evaluate("([x, y]) => window.cm.viewer.toPage(x, y)", [float(x), float(y)])
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


def _open(page, store, name: str) -> dict:
    image = next(i for i in store.list_images() if i["path"] == name)
    page.locator(f"[data-testid=image-item][data-id='{image['id']}']").click()
    page.wait_for_function(f"window.cm.state.imageId === {image['id']} && window.cm.viewer.width > 0")
    return image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_a_dragged_box_segments_the_object_and_tab_shows_the_other_masks(browser, app_server):
    """Finding 3: Shift+drag (or Box mode) draws a box that segments; after a lone click Tab cycles the masks."""
    from clickmask.samples import load_samples

    server, store = app_server
    if server.predictor.is_fallback:
        pytest.skip("candidate masks need the real model")
    errors: list[str] = []
    page = _ready_page(browser, server, errors)
    image = _open(page, store, "coffee.png")
    assert page.get_by_test_id("hint").is_visible()  # an empty image says what to do
    truth = load_samples(["coffee"])[0].mask
    ys, xs = np.nonzero(truth)
    page.keyboard.down("Shift")
    page.mouse.move(*_page_point(page, xs.min() - 4, ys.min() - 4))
    page.mouse.down()
    page.mouse.move(*_page_point(page, xs.max() + 5, ys.max() + 5), steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    _wait(page, "window.cm.state.box !== null && window.cm.viewer.maskNode !== null")
    assert page.evaluate("window.cm.state.clicks.length") == 0
    assert not page.get_by_test_id("hint").is_visible()
    page.keyboard.press("Space")
    _wait(page, "window.cm.state.instances.length === 1 && window.cm.state.box === null")
    [inst] = store.list_instances(image["id"])
    assert _iou(store.instance_mask(inst["id"]), truth) >= 0.9

    # Box mode: a plain drag draws the box
    _open(page, store, "chelsea.png")
    cat = load_samples(["chelsea"])[0].mask
    ys, xs = np.nonzero(cat)
    page.get_by_test_id("mode-box").click()
    page.mouse.move(*_page_point(page, xs.max() + 3, ys.max() + 3))
    page.mouse.down()
    page.mouse.move(*_page_point(page, xs.min() - 3, ys.min() - 3), steps=8)  # dragged up and left
    page.mouse.up()
    _wait(page, "window.cm.state.box !== null && window.cm.viewer.maskNode !== null")
    page.keyboard.press("Escape")
    _wait(page, "window.cm.state.box === null && window.cm.viewer.maskNode === null")
    page.keyboard.press("c")

    # a lone click on the astronaut: the model offers other masks; Tab shows the next, Shift+Tab goes back
    _open(page, store, "astronaut.png")
    page.mouse.click(*_page_point(page, 250.5, 250.5))
    _wait(page, "window.cm.state.clicks.length === 1 && window.cm.state.choice.count >= 2")
    count = page.evaluate("window.cm.state.choice.count")
    first = page.evaluate("[window.cm.state.choice.index, window.cm.state.maskArea]")
    assert page.get_by_test_id("choice").is_visible()
    page.keyboard.press("Tab")
    _wait(page, f"window.cm.state.choice.index === {(first[0] + 1) % count}")
    assert page.evaluate("window.cm.state.maskArea") != first[1]
    assert page.get_by_test_id("choice-text").text_content() == f"mask {(first[0] + 1) % count + 1} of {count}"
    page.keyboard.press("Shift+Tab")
    _wait(page, f"window.cm.state.choice.index === {first[0]} && window.cm.state.maskArea === {first[1]}")
    page.mouse.click(*_page_point(page, 260.5, 300.5))  # a second click: the choice is made
    _wait(page, "window.cm.state.clicks.length === 2 && window.cm.state.choice.count === 0")
    assert not page.get_by_test_id("choice").is_visible()
    assert not errors, errors


def _finished_object_on_coffee(browser, app_server):
    """A new tab where coffee.png got one object (:func:`_one_object_on_coffee`): (page, store, object, page errors)."""
    server, store = app_server
    errors: list[str] = []
    page = _ready_page(browser, server, errors)
    image = _one_object_on_coffee(page, store)
    [inst] = store.list_instances(image["id"])
    return page, store, inst, errors


def test_ctrl_click_selects_a_finished_object_in_click_mode(browser, app_server):
    """Finding 8: in click mode Ctrl+click selects the object under the pointer (no click is sent); Esc deselects."""
    page, store, inst, errors = _finished_object_on_coffee(browser, app_server)
    mask = store.instance_mask(inst["id"])
    x, y = _deepest(mask)
    page.keyboard.down("Control")
    page.mouse.click(*_page_point(page, x + 0.5, y + 0.5))
    page.keyboard.up("Control")
    _wait(page, f"window.cm.state.selected === {inst['id']}")
    assert page.evaluate("window.cm.state.clicks.length") == 0
    page.keyboard.press("Escape")
    _wait(page, "window.cm.state.selected === null")
    assert not errors, errors


def test_the_layout_works_at_1024x768_with_long_names(browser, app_server, screenshots):
    """Finding 8: one toolbar row, a canvas wider than the panels together, the whole image visible after
    fit, and an object's id readable next to a long category name."""
    server, store = app_server
    page = _ready_page(browser, server)
    page.set_viewport_size({"width": 1024, "height": 768})
    long_name = "person riding a bicycle on a wet road at night " * 3
    page.locator("#category-name").fill(long_name)
    page.locator("#category-name").press("Enter")
    _wait(page, "window.cm.state.categories.length > 0 && window.cm.state.currentCategory !== null")
    image = _open(page, store, "chelsea.png")
    page.keyboard.press("f")
    page.mouse.click(*_page_point(page, 200.5, 150.5))
    _wait(page, "window.cm.state.clicks.length === 1")
    page.keyboard.press("Space")
    _wait(page, "window.cm.state.instances.length === 1")
    page.screenshot(path=str(screenshots / "layout-1024x768.png"))
    box = page.evaluate("""() => {
        const r = (s) => document.querySelector(s).getBoundingClientRect();
        const bar = document.querySelector('#toolbar');
        const name = document.querySelector('[data-testid=instance-item] .name');
        return {bar: r('#toolbar').height, barOverflow: bar.scrollWidth - bar.clientWidth,
                wrap: r('#canvas-wrap'), nameFits: name.scrollWidth <= name.clientWidth, name: name.textContent,
                page: document.documentElement.scrollWidth};
    }""")
    button = page.locator("#btn-finish").bounding_box()["height"]
    assert box["bar"] < 2 * button + 4, box  # one row of buttons
    assert box["barOverflow"] <= 0 and box["page"] <= 1024, box
    wrap = box["wrap"]
    assert wrap["width"] >= 560, box
    w, h = page.evaluate("[window.cm.viewer.width, window.cm.viewer.height]")
    top_left, bottom_right = _page_point(page, 0, 0), _page_point(page, w, h)
    assert wrap["left"] - 1 <= top_left[0] and bottom_right[0] <= wrap["left"] + wrap["width"] + 1
    assert wrap["top"] - 1 <= top_left[1] and bottom_right[1] <= wrap["top"] + wrap["height"] + 1
    assert box["nameFits"], box["name"]


def test_the_fourth_click_on_the_coco_person_keeps_the_mask(browser, app_server, data_root):
    """Finding 2: COCO128 000000000192, person 02, the reported clicks replayed in the app: the 4th click
    turned the mask into the zoom crop's rectangle (IoU 0.79 -> 0.31). No click may lose more than 0.05."""
    import shutil

    from clickmask.io.images import load_image

    server, store = app_server
    if server.predictor.is_fallback:
        pytest.skip("the zoom-in crop needs the real model")
    shutil.copy(data_root / "COCO128" / "images" / "000000000192.jpg", store.root / "000000000192.jpg")
    store.sync_images()
    truth = load_image(data_root / "COCO128" / "masks" / "000000000192_02.png")[..., 0] > 127
    errors: list[str] = []
    page = _ready_page(browser, server, errors)
    image = _open(page, store, "000000000192.jpg")
    # the mouse moves in whole page pixels: at scale 2 a click lands on the exact pixel centre the robot clicked
    page.evaluate("window.cm.viewer.stage.scale({x: 2, y: 2}); window.cm.viewer.stage.position({x: 8, y: 8})")
    ious = []
    for n, (x, y) in enumerate([(325, 244), (359, 268), (360, 381), (285, 263)], start=1):
        page.mouse.click(*_page_point(page, x + 0.5, y + 0.5))
        _wait(page, f"window.cm.state.clicks.length === {n} && !window.cm.state.clickBusy", timeout=120_000)
        sent = page.evaluate(f"window.cm.state.clicks[{n - 1}]")
        assert abs(sent["x"] - x) < 0.01 and abs(sent["y"] - y) < 0.01 and sent["positive"], sent
        ious.append(_iou(shown_mask(page, image["id"]), truth))
    assert all(b > a - 0.05 for a, b in zip(ious, ious[1:])), ious
    assert ious[3] > 0.7, ious
    assert not errors, errors


def _drag(page, start: tuple[float, float], end: tuple[float, float], steps: int = 3) -> None:
    """Press the mouse at image pixel ``start``, move to ``end`` and let go (a brush stroke in brush mode)."""
    page.mouse.move(*_page_point(page, *start))
    page.mouse.down()
    page.mouse.move(*_page_point(page, *end), steps=steps)
    page.mouse.up()


def _slow_requests(page, method: str, url_end: str, ms: int) -> None:
    """From now on the page's ``method`` requests to URLs ending in ``url_end`` wait ``ms`` before they leave."""
    page.evaluate("""([method, urlEnd, ms]) => {
        const plain = window.fetch;
        window.fetch = async (url, init) => {
            if (init && init.method === method && String(url).endsWith(urlEnd))
                await new Promise((r) => setTimeout(r, ms));
            return plain(url, init);
        };
    }""", [method, url_end, ms])


def _one_click_on_coffee(browser, app_server):
    """A new tab on coffee.png with one click on the cup, answered: (page, store, image, page errors)."""
    server, store = app_server
    errors: list[str] = []
    page = _ready_page(browser, server, errors)
    image = _open(page, store, "coffee.png")
    page.mouse.click(*_page_point(page, 300.5, 200.5))
    _wait(page, "window.cm.state.clicks.length === 1 && !window.cm.state.clickBusy")
    return page, store, image, errors


def test_an_undone_click_comes_back_and_the_unfinished_object_survives_a_reload(browser, app_server):
    """Ctrl+Z takes a click back, Ctrl+Y brings it back with the same mask; a reloaded page shows the
    object in progress again (the server keeps its prompts in the project)."""
    page, store, image, errors = _one_click_on_coffee(browser, app_server)
    page.mouse.click(*_page_point(page, 20.5, 20.5), button="right")
    _wait(page, "window.cm.state.clicks.length === 2 && !window.cm.state.clickBusy")
    area = page.evaluate("window.cm.state.maskArea")
    page.keyboard.press("Control+z")
    _wait(page, "window.cm.state.clicks.length === 1")
    page.keyboard.press("Control+y")
    _wait(page, f"window.cm.state.clicks.length === 2 && window.cm.state.maskArea === {area}")
    kept = store.unfinished(image["id"])["clicks"]
    assert kept[0][2] and not kept[1][2] and abs(kept[1][0] - 20) < 1 and abs(kept[1][1] - 20) < 1, kept
    page.reload()
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    _wait(page, f"window.cm.state.clicks.length === 2 && window.cm.state.maskArea === {area}")
    assert not errors, errors


def test_a_click_right_after_esc_starts_the_new_object(browser, app_server):
    """Esc drops the object in progress and a quick click starts the next one, even when the drop is slow
    to reach the server: the click is neither added to the dropped object nor dropped with it."""
    page, store, image, errors = _one_click_on_coffee(browser, app_server)
    _slow_requests(page, "DELETE", "/clicks", 800)  # the drop is slow to leave, as on a busy network
    page.keyboard.press("Escape")
    page.mouse.click(*_page_point(page, 100.5, 250.5))
    _wait(page, "window.cm.state.clicks.length === 1 && !window.cm.state.clickBusy "
                "&& window.cm.state.clicks[0].x < 200")
    time.sleep(1.5)  # a drop that overtook the click would have landed by now
    assert page.evaluate("window.cm.state.clicks.length") == 1
    kept = store.unfinished(image["id"])["clicks"]
    assert len(kept) == 1 and abs(kept[0][0] - 100) < 1 and abs(kept[0][1] - 250) < 1, kept
    assert shown_mask(page, image["id"]).any()
    assert not errors, errors


def test_two_quick_brush_strokes_on_an_object_are_both_kept(browser, app_server):
    """A second stroke sent before the first one's answer arrives is an edit too, not a "changed elsewhere"."""
    page, store, inst, errors = _finished_object_on_coffee(browser, app_server)
    page.locator("[data-testid=instance-item] .name").first.click()
    page.keyboard.press("b")
    _slow_requests(page, "POST", "/stroke", 600)  # the second stroke starts before the first one lands
    for x in (20, 560):
        _drag(page, (x, 20), (x + 30, 20))
    _wait(page, f"window.cm.state.instances[0].version === {inst['version'] + 2}")
    mask = store.instance_mask(inst["id"])
    assert mask[20, 20:50].all() and mask[20, 560:590].all()
    assert "changed elsewhere" not in page.locator("#toast").text_content()

    # with nothing selected, the first stroke makes a new object and a quick second one paints onto it
    page.keyboard.press("Escape")
    _wait(page, "window.cm.state.selected === null")
    for x in (40, 400):
        _drag(page, (x, 380), (x + 30, 380))
    _wait(page, "window.cm.state.instances.length === 2 && window.cm.state.instances[1].version === 2")
    new = [i for i in store.list_instances(inst["image_id"]) if i["id"] != inst["id"]]
    assert len(new) == 1
    mask = store.instance_mask(new[0]["id"])
    assert mask[380, 40:70].all() and mask[380, 400:430].all()

    # Delete removes the selected object (an edit too: after the strokes, with their version)
    page.keyboard.press("Delete")
    _wait(page, "window.cm.state.instances.length === 1 && window.cm.state.selected === null")
    assert [i["id"] for i in store.list_instances(inst["image_id"])] == [inst["id"]]
    assert not errors, errors


def test_export_downloads_a_zip_and_import_takes_a_file_from_anywhere(browser, app_server, tmp_path):
    """Findings 6 and 9: the export as a downloaded zip (a YOLO dataset here), and Import with a file picker."""
    import zipfile

    server, store = app_server
    errors: list[str] = []
    page = _ready_page(browser, server, errors)
    image = _one_object_on_coffee(page, store)
    page.get_by_test_id("export-format").select_option("yolo-seg")
    with page.expect_download() as info:
        page.get_by_test_id("download").click()
    zipped = tmp_path / info.value.suggested_filename
    info.value.save_as(zipped)
    assert zipped.suffix == ".zip"
    names = zipfile.ZipFile(zipped).namelist()
    top = names[0].split("/")[0]
    assert f"{top}/data.yaml" in names and any(n.startswith(f"{top}/labels/") and n.endswith("coffee.txt") for n in names)
    assert any(n.startswith(f"{top}/images/") and n.endswith("coffee.png") for n in names), names

    # a COCO file from elsewhere: exported, the object deleted, then imported through the file picker
    page.get_by_test_id("export-format").select_option("coco")
    page.get_by_test_id("export").click()
    _wait(page, "window.cm.state.exportResult !== null && window.cm.state.exportResult.format === 'coco'")
    result = page.evaluate("window.cm.state.exportResult")
    coco = Path(result["dir"]) / next(f for f in result["files"] if f.endswith(".json"))
    outside = tmp_path / "from-another-tool.json"
    outside.write_bytes(coco.read_bytes())
    [inst] = store.list_instances(image["id"])
    store.delete_instance(inst["id"], inst["version"])
    page.get_by_test_id("import").click()
    page.get_by_test_id("import-dialog").wait_for(state="visible")
    page.get_by_test_id("import-file").set_input_files(str(outside))
    _wait(page, "window.cm.state.importResult && window.cm.state.importResult.added === 1")
    assert not page.get_by_test_id("import-dialog").is_visible()
    _wait(page, "window.cm.state.instances.length === 1")
    assert len(store.list_instances(image["id"])) == 1
    assert not errors, errors


def test_the_outline_tolerance_in_the_panel_sets_how_many_handles_an_object_gets(browser, app_server):
    """Finding 7: simplified outlines with the tolerance in the UI (fewer handles for a coarser outline)."""
    server, store = app_server
    page = _ready_page(browser, server)
    image = _open(page, store, "chelsea.png")
    counts = []
    for tolerance in ("0.5", "4"):
        page.get_by_test_id("polygon-tolerance").fill(tolerance)
        page.get_by_test_id("polygon-tolerance").press("Enter")
        _wait(page, f"document.querySelector('#toast').textContent.includes('within {tolerance} px')")
        assert store.get_setting("polygon_tolerance") == float(tolerance)
        page.mouse.click(*_page_point(page, 200.5, 150.5))
        _wait(page, "window.cm.state.clicks.length === 1 && !window.cm.state.clickBusy")
        page.keyboard.press("Space")
        _wait(page, f"window.cm.state.instances.length === {len(counts) + 1}")
        newest = max(store.list_instances(image["id"]), key=lambda i: i["id"])
        counts.append(sum(len(p["exterior"]) + sum(map(len, p["holes"])) for p in newest["polygons"]))
    assert counts[1] < counts[0] / 2, counts
    page.keyboard.press("p")
    page.locator("[data-testid=instance-item] .name").first.click()  # the newest object is listed first
    page.wait_for_function("window.cm.viewer.vertexPage(0) !== null")
    assert page.evaluate("window.cm.viewer.uiLayer.find('.handle').length") == counts[1]


def test_the_status_line_is_in_step_with_the_mask(browser, app_server):
    """Finding 9: once the mask shows, the status no longer says "segmenting…", even when a status poll
    that the server answered during the click arrives later (status answers are delayed here)."""
    server, store = app_server
    page = browser.new_page()
    page.add_init_script("""(() => {
        const fetch0 = window.fetch;
        window.fetch = (url, init) => String(url).includes('/api/status')
            ? fetch0(url, init).then((r) => new Promise((ok) => setTimeout(() => ok(r), 600)))
            : fetch0(url, init);
    })();""")
    predictor = server.state.predictor
    predict = predictor.predict

    def slow_predict(*args, **kwargs):  # each click keeps the server busy longer than a status poll period
        time.sleep(1.0)
        return predict(*args, **kwargs)

    predictor.predict = slow_predict
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    _open(page, store, "coffee.png")
    for n, (x, y) in enumerate([(300, 200), (150, 120), (420, 300)], start=1):
        page.mouse.click(*_page_point(page, x + 0.5, y + 0.5))
        _wait(page, f"window.cm.state.clicks.length === {n} && !window.cm.state.clickBusy")
        texts = page.evaluate("""async () => {
            const seen = [];
            for (let i = 0; i < 25; i++) {
                seen.push(document.querySelector('#busy-text').textContent);
                await new Promise((ok) => setTimeout(ok, 60));
            }
            return seen;
        }""")
        assert not any("segmenting" in t for t in texts), texts
