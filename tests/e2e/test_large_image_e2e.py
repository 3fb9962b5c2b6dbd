"""Real browser: a 20000 x 20000 GeoTIFF opens as tiles (only visible tiles are fetched, never the
whole image), the user zooms in on a 100 px building, clicks it, finishes it and exports GeoJSON,
which pyogrio reads back at the right map coordinates."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from large_files import ORIGIN, PIXEL, Square, write_large_geotiff  # noqa: E402
from page_helpers import export_with_button, page_point  # noqa: E402

SIZE = 20000
BUILDING = Square(12000, 12000, 100, (200, 70, 50))
NEIGHBOUR = Square(12400, 11800, 100, (60, 60, 200))


@pytest.fixture()
def large_server(tmp_path):
    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer

    project = tmp_path / "project"
    project.mkdir()
    write_large_geotiff(project / "city.tif", SIZE, (11264, 11264, 13312, 13312), [BUILDING, NEIGHBOUR])
    store = open_project(project)
    store.add_category("building")
    state = AppState(store=store, predictor=load_predictor(None), pyramid_cache=tmp_path / "pyramids")
    live = LiveServer(create_app(state))
    server = live.__enter__()
    yield server, store
    live.__exit__(None, None, None)
    state.adaptation.close()



def _tiles_shown(page) -> None:
    page.wait_for_function("(() => { const t = window.cm.viewer.tileStatus(); "
                           "return t && t.wanted > 0 && t.loaded === t.wanted; })()")


def test_large_geotiff_tiles_zoom_click_and_geojson(browser, large_server):
    server, store = large_server
    errors: list[str] = []
    requests: list[str] = []
    page = browser.new_page()
    page.set_default_timeout(90_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_function("window.cm.viewer.width === 20000 && window.cm.state.tiles !== null")
    _tiles_shown(page)
    assert not [u for u in requests if "/file" in u]  # the whole image is never sent
    first = [u for u in requests if "/tiles/" in u]
    levels = {int(u.split("/tiles/")[1].split("/")[0]) for u in first}
    assert 1 <= len(first) <= 40 and min(levels) >= 3, first  # the fitted view: coarse levels only

    # zoom in with the wheel on the building until the screen shows full-resolution pixels
    x, y = BUILDING.x + 50, BUILDING.y + 50
    page.mouse.move(*page_point(page, x, y))
    for _ in range(40):
        if page.evaluate("window.cm.viewer.stage.scaleX()") >= 1:
            break
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(30)
    assert page.evaluate("window.cm.viewer.tileLevel()") == 0
    _tiles_shown(page)
    status = page.evaluate("window.cm.viewer.tileStatus()")
    assert status["wanted"] <= 40, status  # the visible tiles of level 0 (and the coarsest one below)
    fetched = len([u for u in requests if "/tiles/" in u])
    # of 1600 tiles at full resolution alone; intermediate levels fetched during a slow zoom (a loaded
    # machine pauses past the 80 ms wait between wheel steps) stay far below that
    assert fetched < 400, fetched

    # a click on the building: its mask on the window around it, at the building's own scale
    page.keyboard.press("1")
    page.mouse.click(*page_point(page, x, y))
    page.wait_for_function("window.cm.state.clicks.length === 1 && window.cm.viewer.maskNode !== null")
    node = page.evaluate("(() => { const m = window.cm.viewer.maskNode; return {x: m.x(), y: m.y(), w: m.width()}; })()")
    assert node["x"] > 10000 and node["y"] > 10000 and node["w"] < 4200, node
    page.keyboard.press("Space")
    page.wait_for_function("window.cm.state.instances.length === 1 && window.cm.state.clicks.length === 0")

    folder, files = export_with_button(page, "geojson")
    geojson = folder / next(f for f in files if f.endswith(".geojson"))
    from pyogrio.raw import read as ogr_read
    import shapely

    meta, _, geometry, fields = ogr_read(geojson)
    assert "32633" in meta["crs"] and len(geometry) == 1
    assert fields[list(meta["fields"]).index("category")][0] == "building"
    shape = shapely.from_wkb(geometry[0])
    x0, y0 = ORIGIN[0] + BUILDING.x * PIXEL, ORIGIN[1] - BUILDING.y * PIXEL
    truth = shapely.box(x0, y0 - BUILDING.side * PIXEL, x0 + BUILDING.side * PIXEL, y0)
    assert shape.intersection(truth).area / shape.union(truth).area >= 0.85, shape.bounds

    # the patch grid: go through the image patch by patch, mark one done (kept in the project)
    assert page.get_by_test_id("grid").is_visible()
    page.wait_for_function("window.cm.state.grid && window.cm.state.grid.objects[55] === 1")  # 2048 px patches
    page.get_by_test_id("grid-next").click()
    assert page.evaluate("window.cm.state.patch") == 0
    view = page.evaluate("window.cm.viewer.view()")
    assert view[0] == 0 and view[1] == 0 and 2048 <= max(view[2], view[3]) < 4000, view
    page.keyboard.press("k")
    page.wait_for_function("window.cm.state.grid.done.length === 1")
    assert store.get_setting(f"grid/{store.list_images()[0]['id']}") == {"patch": 2048, "done": [0]}
    page.keyboard.press("n")
    assert page.evaluate("window.cm.state.patch") == 1
    assert "2 of 100" in page.get_by_test_id("grid-text").text_content()
    assert not errors, errors
    assert os.path.getsize(store.root / "city.tif") < 50_000_000  # the test image itself stays small
