"""Real browser: a 4-band GeoTIFF project (bands, map coordinates under the pointer, a click, a GeoJSON
export read back with pyogrio) and a DICOM image (a window preset; its patient fields in the panel only)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rasterio")
pytest.importorskip("pydicom")
pyogrio = pytest.importorskip("pyogrio")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from display_files import PATIENT, write_ct_dicom, write_four_band_tiff  # noqa: E402
from page_helpers import export_with_button, page_point  # noqa: E402

X0, Y0, GSD = 733600.0, 3725100.0, 0.5  # the GeoTIFF's top-left corner (EPSG:32616) and pixel size


@pytest.fixture()
def project_server(tmp_path):
    """A live server on a project of one generated file (``request.param``-free: call with the writer)."""
    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState, create_app
    from clickmask.server.live import LiveServer

    servers = []

    def start(name: str, write):
        project = tmp_path / "project"
        project.mkdir()
        write(project / name)
        store = open_project(project)
        store.add_category("building")
        state = AppState(store=store, predictor=load_predictor(None, allow_fallback=True))
        live = LiveServer(create_app(state))
        server = live.__enter__()
        servers.append((live, state))
        return server, store, state

    yield start
    for live, state in servers:
        live.__exit__(None, None, None)
        state.adaptation.close()


def _page(browser, server, errors):
    page = browser.new_page()
    page.set_default_timeout(60_000)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server.url)
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    page.wait_for_function("window.cm.viewer.width > 0 && window.cm.state.display !== null")
    return page



def test_geotiff_bands_map_coordinates_click_and_geojson(browser, project_server):
    server, store, state = project_server("four.tif", lambda p: write_four_band_tiff(p, 160, 128))
    errors: list[str] = []
    page = _page(browser, server, errors)
    image_id = store.list_images()[0]["id"]
    assert page.get_by_test_id("display").is_visible()
    assert page.locator("#band-r option").count() == 4 and page.get_by_test_id("band-r").input_value() == "1"
    assert "EPSG:32616" in page.get_by_test_id("raster-crs").text_content()
    before = state.load_image(image_id).copy()

    # bands 4, 3, 2 (near infrared as red) and a wider stretch: the browser and the model get the new pixels
    for test_id, band in (("band-r", "4"), ("band-g", "3"), ("band-b", "2")):
        page.get_by_test_id(test_id).select_option(band)
    page.get_by_test_id("stretch-low").fill("1")
    page.get_by_test_id("display-apply").click()
    page.wait_for_function("window.cm.state.display.bands.join() === '4,3,2' && window.cm.viewer.width > 0")
    assert store.display(image_id) == {"bands": [4, 3, 2], "stretch": "percentile", "low": 1.0, "high": 98.0}
    after = state.load_image(image_id)
    assert after[35, 45, 0] < 60 < before[35, 45, 0]  # band 4 is dark on the square
    assert "d=" in page.evaluate("window.cm.viewer.imageNode.image().src")

    # the pointer's map coordinates (pixel corners through the geotransform) in the status line
    page.mouse.move(*page_point(page, 45.5, 35.5))
    coords = page.get_by_test_id("coords")
    coords.wait_for(state="visible")
    text = coords.text_content()
    at = page.evaluate("window.cm.viewer.pointer()")  # the pointer in image pixels (the mouse moves by whole screen pixels)
    assert abs(at["x"] - 45.5) < 1 and abs(at["y"] - 35.5) < 1
    words = text.split()
    shown_x, shown_y = float(words[words.index("X") + 1]), float(words[words.index("Y") + 1])
    assert "EPSG:32616" in text and f"x {int(at['x'])}, y {int(at['y'])} px" in text, text
    assert abs(shown_x - (X0 + GSD * at["x"])) < 0.006 and abs(shown_y - (Y0 - GSD * at["y"])) < 0.006, text

    # a click on the square (columns 30..60, rows 20..50), Space, then a GeoJSON export
    page.keyboard.press("1")
    page.mouse.click(*page_point(page, 45.5, 35.5))
    page.wait_for_function("window.cm.state.clicks.length === 1 && window.cm.viewer.maskNode !== null")
    page.keyboard.press("Space")
    page.wait_for_function("window.cm.state.instances.length === 1 && window.cm.state.clicks.length === 0")
    folder, files = export_with_button(page, "geojson")
    geojson = folder / next(f for f in files if f.endswith(".geojson"))
    from pyogrio.raw import read as ogr_read

    meta, _, geometry, fields = ogr_read(geojson)
    assert "32616" in meta["crs"] and len(geometry) == 1
    assert fields[list(meta["fields"]).index("category")][0] == "building"
    import shapely

    shape = shapely.from_wkb(geometry[0])
    truth = shapely.box(X0 + 30 * GSD, Y0 - 50 * GSD, X0 + 60 * GSD, Y0 - 20 * GSD)
    assert shape.intersection(truth).area / shape.union(truth).area > 0.85, shape.bounds
    assert not errors, errors


def test_dicom_window_preset_and_metadata_panel(browser, project_server):
    server, store, state = project_server("ct.dcm", write_ct_dicom)
    errors: list[str] = []
    page = _page(browser, server, errors)
    image_id = store.list_images()[0]["id"]
    assert page.get_by_test_id("window-preset").input_value() == "abdomen"
    assert PATIENT in page.get_by_test_id("dicom-meta").text_content()
    assert state.load_image(image_id)[32, 36, 0] == 255  # bone square, abdomen window: white
    page.get_by_test_id("window-preset").select_option("bone")
    page.wait_for_function("window.cm.state.display.window.preset === 'bone'")
    assert store.display(image_id) == {"preset": "bone", "level": 400.0, "width": 1800.0}
    from clickmask.io.window import preset, window_to_uint8

    assert state.load_image(image_id)[32, 36, 0] == window_to_uint8(np.array(700.0), preset("ct-bone"))
    # a free window from the fields
    page.get_by_test_id("window-level").fill("0")
    page.get_by_test_id("window-width").fill("2000")
    page.get_by_test_id("display-apply").click()
    page.wait_for_function("window.cm.state.display.window.level === 0 && window.cm.state.display.window.width === 2000")
    assert page.get_by_test_id("window-preset").input_value() == ""
    # and by mouse: a drag up on the pad raises the level, to the right widens the window
    box = page.get_by_test_id("window-pad").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 30, cy - 20, steps=4)
    page.mouse.up()
    page.wait_for_function("window.cm.state.display.window.level > 0 && window.cm.state.display.window.width > 2000")
    assert store.display(image_id)["preset"] is None and store.display(image_id)["level"] > 0
    # the model segments what the user sees: a click on the bone square
    page.mouse.click(*page_point(page, 36.5, 32.5))
    page.wait_for_function("window.cm.state.clicks.length === 1 && window.cm.viewer.maskNode !== null")
    page.mouse.move(*page_point(page, 10.5, 5.5))
    assert "no CRS" in page.get_by_test_id("coords").text_content()
    assert not errors, errors
