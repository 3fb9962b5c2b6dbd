"""Very large images: the tile pyramid (clickmask.io.pyramid), windowed segmentation (clickmask.engine.tiles),
windowed masks in the store (RLE without an image-sized mask) and the server's tiles and clicks."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from large_files import ORIGIN, PIXEL, Square, write_large_geotiff  # noqa: E402

from clickmask.engine.clicks import Click  # noqa: E402
from clickmask.engine.tiles import (MIN_WINDOW, Window, WindowedSession, grown_window, square_window,  # noqa: E402
                                    touches_inner_edge, window_for_click)
from clickmask.errors import ClickmaskError, ImageReadError  # noqa: E402
from clickmask.geometry import decode_rle, encode_rle, encode_rle_window  # noqa: E402
from clickmask.io.pyramid import TILE, LargeImage, is_large  # noqa: E402

SIZE = 20000
FIELD = (11264, 11264, 14336, 13312)  # the textured part; the rest of the file is sparse (black)
SMALL = Square(12000, 12000, 100, (200, 70, 50))  # the 100 x 100 px object of the issue
OTHER = Square(12400, 11800, 100, (60, 60, 200))


def bar_mask(shape, offset):
    """The bar: 1400 x 160 px, wider than a first click's window."""
    out = np.zeros(shape, bool)
    x0, y0 = 12700 - offset[0], 12800 - offset[1]
    out[max(y0, 0): max(y0 + 160, 0), max(x0, 0): max(x0 + 1400, 0)] = True
    return out


@pytest.fixture(scope="module")
def large_tif(tmp_path_factory) -> Path:
    """A 20000 x 20000 GeoTIFF (UTM 33N) with the objects above, written window by window."""
    path = tmp_path_factory.mktemp("large") / "big.tif"
    squares = [SMALL, OTHER]
    write_large_geotiff(path, SIZE, FIELD, squares)
    # the bar, painted into its windows (a Square is square; the bar is not)
    from rasterio.windows import Window as RWindow

    from large_files import field_pixels

    with rasterio.open(path, "r+") as ds:
        x0, y0, x1, y1 = 12288, 12288, 14336, 13312
        pixels = field_pixels(x0, y0, x1 - x0, y1 - y0, squares)
        m = bar_mask((y1 - y0, x1 - x0), (x0, y0))
        pixels[:, m] = np.array([230, 230, 230], np.uint8)[:, None]
        ds.write(pixels, window=RWindow(x0, y0, x1 - x0, y1 - y0))
    return path


@pytest.fixture(scope="module")
def pyramid(large_tif, tmp_path_factory) -> LargeImage:
    return LargeImage(large_tif, cache=tmp_path_factory.mktemp("pyramids")).prepare()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


# ---------------------------------------------------------------- the pyramid


def test_levels_tiles_and_windows_match_the_file(pyramid, large_tif):
    assert is_large(SIZE, SIZE) and not is_large(4000, 3000)
    assert pyramid.levels == 8 and pyramid.level_size(7) == (157, 157) and pyramid.ready
    with rasterio.open(large_tif) as ds:
        truth = ds.read(window=rasterio.windows.Window(11990, 11990, 300, 200)).transpose(1, 2, 0)
    assert np.array_equal(pyramid.read(11990, 11990, 12290, 12190), truth)
    tile = pyramid.tile(0, 12000 // TILE, 12000 // TILE)  # full resolution: the file's pixels
    x0 = 12000 // TILE * TILE
    assert tile.shape == (TILE, TILE, 3)
    assert np.array_equal(tile, pyramid.read(x0, x0, x0 + TILE, x0 + TILE))
    edge = pyramid.tile(3, 9, 9)  # level 3 is 2500 px wide: the last tile is 196 px
    assert edge.shape == (196, 196, 3)
    top = pyramid.tile(7, 0, 0)
    assert top.shape == (157, 157, 3) and top[:50, :50].max() == 0 and top[90:100, 90:100].mean() > 50
    with pytest.raises(ImageReadError, match="no tile"):
        pyramid.tile(3, 10, 0)
    with pytest.raises(ImageReadError, match="not inside"):
        pyramid.read(19990, 0, 20010, 10)


def test_overviews_are_made_once_in_the_cache_never_next_to_the_file(large_tif, tmp_path):
    before = sorted(p.name for p in large_tif.parent.iterdir())
    image = LargeImage(large_tif, cache=tmp_path)
    assert not image.ready
    image.prepare()
    assert sorted(p.name for p in large_tif.parent.iterdir()) == before
    folders = [p for p in tmp_path.iterdir()]
    assert len(folders) == 1 and (folders[0] / "done").is_file() and not folders[0].name.startswith(".")
    assert LargeImage(large_tif, cache=tmp_path).ready  # a second open finds them


def test_a_truncated_tiff_is_one_clear_error(large_tif, tmp_path):
    bad = tmp_path / "cut.tif"
    bad.write_bytes(large_tif.read_bytes()[:5000])
    with pytest.raises(ImageReadError, match="cut.tif") as info:
        LargeImage(bad, cache=tmp_path).prepare()
    assert "\n" not in str(info.value)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing half-made left in the cache


# ---------------------------------------------------------------- windowed masks


def test_window_rle_equals_the_full_masks_rle():
    rng = np.random.default_rng(3)
    for _ in range(400):
        big_h, big_w = rng.integers(1, 14, 2)
        h, w = rng.integers(1, big_h + 1), rng.integers(1, big_w + 1)
        y0, x0 = rng.integers(0, big_h - h + 1), rng.integers(0, big_w - w + 1)
        m = rng.random((h, w)) < rng.random()
        full = np.zeros((big_h, big_w), bool)
        full[y0: y0 + h, x0: x0 + w] = m
        assert encode_rle_window(m, (x0, y0), (big_h, big_w)) == encode_rle(full)
    with pytest.raises(ClickmaskError, match="does not fit"):
        encode_rle_window(np.ones((3, 3), bool), (8, 0), (10, 10))


def test_windows_are_placed_inside_the_image_and_grow_around_a_cut_object():
    w = square_window(50, 19990, 1024, (SIZE, SIZE))
    assert (w.x0, w.y1, w.width, w.height) == (0, SIZE, 1024, 1024)
    assert window_for_click(Click(5000, 5000, True), (SIZE, SIZE), view=[4000, 4500, 6500, 5500]).width == 2500
    assert window_for_click(Click(5000, 5000, True), (SIZE, SIZE), view=[4900, 4900, 5100, 5100]).width == MIN_WINDOW
    assert window_for_click(Click(5000, 5000, True), (SIZE, SIZE), view=[0, 0, SIZE, SIZE]).width == 4096
    cur = Window(1000, 1000, 2024, 2024)
    mask = np.zeros((1024, 1024), bool)
    mask[500:600, 0:1024] = True  # reaches the left and right edges
    assert touches_inner_edge(mask, cur, (SIZE, SIZE))
    assert not touches_inner_edge(mask, Window(0, 0, 1024, 1024), (1024, 1024))
    grown = grown_window(cur, mask, [], (SIZE, SIZE))
    assert grown.width == 2048 and grown.x0 <= 1000 and grown.x1 >= 2024


@pytest.fixture(scope="module")
def predictor(model_spec):
    from clickmask.engine.embedding_cache import EmbeddingCache
    from clickmask.engine.refine import RefinedPredictor
    from clickmask.engine.sam_onnx import SamOnnxPredictor

    return RefinedPredictor(SamOnnxPredictor(model_spec, EmbeddingCache(None, max_items=4)))


def test_a_click_segments_a_100px_object_that_the_whole_image_downscale_loses(pyramid, predictor):
    session = WindowedSession(predictor, lambda w: pyramid.read(w.x0, w.y0, w.x1, w.y1), (SIZE, SIZE))
    session.add_click(Click(SMALL.x + 50, SMALL.y + 50, True))
    mask = session.current_mask()
    assert session.window.width == MIN_WINDOW and mask.shape == (MIN_WINDOW, MIN_WINDOW)
    assert _iou(mask, SMALL.mask(mask.shape, session.offset)) >= 0.85

    # the same click on the whole image scaled to the encoder's 1024 px: the object is 5 px there
    import cv2

    scale = 1024 / SIZE
    predictor.set_image(pyramid.read(0, 0, SIZE, SIZE, (1024, 1024)))
    small = predictor.predict([Click((SMALL.x + 50) * scale, (SMALL.y + 50) * scale, True)]).mask
    truth = cv2.resize(SMALL.mask((SIZE, SIZE)).astype(np.uint8), (1024, 1024), interpolation=cv2.INTER_AREA) > 0
    assert _iou(small, truth) < 0.5


def test_an_object_wider_than_its_window_is_one_object(pyramid, predictor):
    session = WindowedSession(predictor, lambda w: pyramid.read(w.x0, w.y0, w.x1, w.y1), (SIZE, SIZE))
    session.add_click(Click(12700 + 700, 12800 + 80, True))
    mask = session.current_mask()
    assert session.window.width > MIN_WINDOW  # moved to a larger window around the mask
    assert _iou(mask, bar_mask(mask.shape, session.offset)) >= 0.85
    # a click outside the window moves the object again; the clicks stay in image coordinates
    clicks = session.clicks
    assert clicks[0].x == 13400 and clicks[0].y == 12880


# ---------------------------------------------------------------- the server


@pytest.fixture()
def client(large_tif, tmp_path, model_spec):
    from page_client import page_client

    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState

    project = tmp_path / "project"
    project.mkdir()
    os.link(large_tif, project / "big.tif")  # the project refuses links that leave it
    store = open_project(project)
    state = AppState(store=store, predictor=load_predictor(None), pyramid_cache=tmp_path / "pyramids")
    yield page_client(state), store
    state.close()


def test_server_opens_a_large_image_as_tiles_and_stores_a_windowed_object(client):
    c, store = client
    image_id = c.get("/api/images").json()["images"][0]["id"]
    info = c.post(f"/api/images/{image_id}/open").json()
    assert info["tiles"]["levels"] == 8 and info["width"] == SIZE
    tile = c.get(f"/api/images/{image_id}/tiles/7/0/0.jpg")
    assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
    assert c.get(f"/api/images/{image_id}/tiles/7/1/0.jpg").status_code == 422
    preview = c.get(f"/api/images/{image_id}/file")
    assert preview.status_code == 200 and len(preview.content) < 2_000_000

    r = c.post(f"/api/images/{image_id}/clicks",
               json={"x": 12050, "y": 12050, "positive": True, "view": [11500, 11600, 12700, 12400]}).json()
    assert r["offset"] == r["runs"]["offset"] and r["runs"]["size"] == [1200, 1200]
    assert 9000 < r["area"] < 11000
    rle = c.get(f"/api/images/{image_id}/mask", params={"format": "rle"}).json()
    assert rle["rle"]["size"] == [SIZE, SIZE] and rle["bbox"][:2] == pytest.approx([12000, 12000], abs=3)
    cat = c.post("/api/categories", json={"name": "building"}).json()
    inst = c.post(f"/api/images/{image_id}/finish", json={"category_id": cat["id"]}).json()
    assert inst["bbox"] == pytest.approx([12000, 12000, 100, 100], abs=3)
    full = decode_rle(store.instance(inst["id"])["rle"])
    assert _iou(full, SMALL.mask((SIZE, SIZE))) >= 0.85
    ext = np.asarray(inst["polygons"][0]["exterior"])
    assert ext[:, 0].min() == pytest.approx(12000, abs=3) and ext[:, 1].max() == pytest.approx(12100, abs=3)

    # exports read the objects as their boxes: COCO's RLE is the stored one, GeoJSON is in map coordinates
    coco = c.post("/api/export", json={"format": "coco"}).json()
    data = json.loads((Path(coco["dir"]) / "annotations.json").read_text())
    ann = data["annotations"][0]
    assert ann["area"] == inst["area"] and ann["bbox"] == pytest.approx(inst["bbox"])
    xs = np.asarray(ann["segmentation"][0])[0::2]
    assert xs.min() == pytest.approx(inst["bbox"][0], abs=1) and xs.max() == pytest.approx(sum(inst["bbox"][::2]), abs=1)
    geo = c.post("/api/export", json={"format": "geojson"}).json()
    import shapely
    from pyogrio.raw import read as ogr_read

    _, _, geometry, _ = ogr_read(Path(geo["dir"]) / geo["files"][0])
    x0, y0 = ORIGIN[0] + 12000 * PIXEL, ORIGIN[1] - 12000 * PIXEL
    truth = shapely.box(x0, y0 - 100 * PIXEL, x0 + 100 * PIXEL, y0)
    shape = shapely.from_wkb(geometry[0])
    assert shape.intersection(truth).area / shape.union(truth).area >= 0.85

    # the GeoJSON read back onto the raster gives the same object, rasterised on its box only
    from clickmask.geometry import decode_rle_window
    from clickmask.project.exchange import import_annotations

    assert import_annotations(store, Path(geo["dir"]) / geo["files"][0], "geojson")["added"] == 1
    first, back = store.list_instances(image_id)
    box = (11990, 11990, 12110, 12110)
    a, b = (decode_rle_window(store.instance(i["id"])["rle"], box) for i in (first, back))
    assert a.sum() > 9000 and _iou(a, b) >= 0.99
    c.post(f"/api/images/{image_id}/undo")

    # edits of a large image's object work on its box: a polygon edit moves one edge, a brush adds a strip
    inst = store.instance(inst["id"])
    ring = np.asarray(inst["polygons"][0]["exterior"])
    moved = ring.copy()
    moved[moved[:, 0] > 12090, 0] += 20  # the right edge 20 px further right
    edited = c.patch(f"/api/instances/{inst['id']}", json={"version": inst["version"], "polygons": [
        {"exterior": moved.tolist(), "holes": []}]}).json()
    assert edited["bbox"][2] == pytest.approx(inst["bbox"][2] + 20, abs=1)
    assert edited["area"] == pytest.approx(inst["area"] + 20 * inst["bbox"][3], rel=0.05)
    full = decode_rle_window(store.instance(inst["id"])["rle"], (11900, 11900, 12300, 12300))
    assert full.sum() == edited["area"]
    painted = c.post(f"/api/instances/{inst['id']}/stroke", json={
        "version": edited["version"], "points": [[12050, 11980], [12050, 11960]], "radius": 4}).json()
    assert painted["bbox"][1] == pytest.approx(11956, abs=1) and painted["area"] > edited["area"]
    c.post(f"/api/images/{image_id}/undo")
    c.post(f"/api/images/{image_id}/undo")

    # the patch grid: objects per patch, done marks checked and kept, a new patch side starts over
    grid = c.get(f"/api/images/{image_id}/grid").json()
    assert (grid["patch"], grid["cols"], grid["rows"], grid["done"]) == (2048, 10, 10, [])
    assert grid["objects"][5 * 10 + 5] == 1 and sum(grid["objects"]) == 1
    assert c.put(f"/api/images/{image_id}/grid", json={"done": [55, 3]}).json()["done"] == [3, 55]
    bad = c.put(f"/api/images/{image_id}/grid", json={"done": [100]})
    assert bad.status_code == 400 and "patch 100 does not exist" in bad.json()["detail"]
    assert c.put(f"/api/images/{image_id}/grid", json={"patch": 999}).status_code == 400
    assert store.get_setting(f"grid/{image_id}") == {"patch": 2048, "done": [3, 55]}
    again = c.put(f"/api/images/{image_id}/grid", json={"patch": 4096}).json()
    assert (again["cols"], again["done"]) == (5, [])

    # a brush stroke on a large image is stored from its window too
    s = c.post(f"/api/images/{image_id}/stroke", json={"points": [[15000, 15000], [15040, 15000]], "radius": 5})
    assert s.status_code == 200 and s.json()["bbox"] == pytest.approx([14995, 14995, 50, 10], abs=1)


def test_a_png_is_read_through_a_tiled_copy(tmp_path):
    """A PNG (not tiled: GDAL would decode it from the top for every window) is copied to a tiled TIFF
    in the cache once; windows and tiles then come from the copy, pixel for pixel."""
    import cv2

    w, h = 3000, 2000  # LargeImage does not care about the size; the app uses it above LARGE_PIXELS only
    yy, xx = np.mgrid[0:h, 0:w]
    rgb = np.stack([(xx // 7) % 256, (yy // 5) % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    image = LargeImage(path, cache=tmp_path / "cache")
    assert not image.ready
    assert np.array_equal(image.read(2500, 1900, 2800, 2000), rgb[1900:2000, 2500:2800])
    assert image.ready and list((tmp_path / "cache").glob("*/image.tif"))
    assert image.tile(image.levels - 1, 0, 0).shape[:2] == image.level_size(image.levels - 1)[::-1]


def test_a_large_16_bit_raster_is_stretched_from_its_overviews(tmp_path, model_spec):
    """A 16-bit single-band raster over 40 MP: the display panel's percentiles come from the overviews
    (no read of the whole file), and the tiles are stretched with them."""
    from page_client import page_client
    from rasterio.transform import from_origin
    from rasterio.windows import Window as RWindow

    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState

    project = tmp_path / "project"
    project.mkdir()
    w, h = 7168, 6144
    with rasterio.open(project / "dem.tif", "w", driver="GTiff", width=w, height=h, count=1, dtype="uint16",
                       tiled=True, blockxsize=512, blockysize=512, compress="deflate", SPARSE_OK="TRUE",
                       nodata=0, crs="EPSG:32633", transform=from_origin(500000, 4600000, 1, 1)) as ds:
        yy, xx = np.mgrid[0:2048, 0:2048]
        ds.write((1000 + xx + yy // 2).astype(np.uint16)[None], window=RWindow(2048, 2048, 2048, 2048))
    state = AppState(store=open_project(project), predictor=load_predictor(None), pyramid_cache=tmp_path / "pyr")
    c = page_client(state)
    image_id = c.get("/api/images").json()["images"][0]["id"]
    assert c.post(f"/api/images/{image_id}/open").json()["tiles"]["levels"] == 6
    shown = c.get(f"/api/images/{image_id}/display").json()
    assert shown["stretch"]["mode"] == "percentile" and shown["bands"] == [1]
    lo, hi = shown["stretch"]["limits"][0]
    assert 1000 <= lo < hi <= 4100  # nodata (0) left out
    import cv2

    top = cv2.imdecode(np.frombuffer(c.get(f"/api/images/{image_id}/tiles/5/0/0.jpg").content, np.uint8), 1)
    assert top[:20, :20].max() < 10 and top[80:120, 80:120].mean() > 60  # nodata black, the field stretched
    changed = c.put(f"/api/images/{image_id}/display", json={"settings": {"stretch": "minmax"}})
    assert changed.status_code == 200 and changed.json()["stretch"]["mode"] == "minmax"
    state.close()


def test_an_unfinished_object_of_a_large_image_survives_a_restart(large_tif, tmp_path, model_spec):
    """The object's prompts are kept with its window: a new server replays it on the same window."""
    from page_client import page_client

    from clickmask.engine.loader import load_predictor
    from clickmask.project import open_project
    from clickmask.server import AppState

    project = tmp_path / "project"
    project.mkdir()
    os.link(large_tif, project / "big.tif")
    predictor = load_predictor(None)
    first = AppState(store=open_project(project), predictor=predictor, pyramid_cache=tmp_path / "pyr")
    c = page_client(first)
    image_id = c.get("/api/images").json()["images"][0]["id"]
    before = c.post(f"/api/images/{image_id}/clicks", json={"x": 12050, "y": 12050, "positive": True,
                                                           "view": [11300, 11300, 12800, 12800]}).json()
    assert first.store.unfinished(image_id)["window"] == [11300, 11300, 12800, 12800]
    first.close()
    second = AppState(store=open_project(project), predictor=predictor, pyramid_cache=tmp_path / "pyr")
    after = page_client(second).get(f"/api/images/{image_id}/mask").json()
    assert after["offset"] == before["offset"] == [11300, 11300] and after["runs"] == before["runs"]
    second.close()
