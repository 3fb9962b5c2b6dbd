"""Per-image display settings (clickmask.io.display): a GeoTIFF's bands and stretch, a DICOM's window;
kept in the project, applied to what the browser shows and what the model encodes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("rasterio")
pytest.importorskip("pydicom")

from display_files import PATIENT, write_ct_dicom, write_four_band_tiff  # noqa: E402

from clickmask.errors import ClickmaskError, ImageReadError  # noqa: E402
from clickmask.io.display import check_display, describe, image_kind, render  # noqa: E402
from clickmask.io.images import image_size, load_image  # noqa: E402
from clickmask.io.window import preset, window_to_uint8  # noqa: E402
from clickmask.project import open_project  # noqa: E402


def test_check_display_normalises_and_refuses() -> None:
    assert check_display("raster", None) is None
    assert check_display("raster", {"bands": [4, 3, 2]}) == {"bands": [4, 3, 2], "stretch": "auto", "low": 2.0,
                                                               "high": 98.0}
    assert check_display("raster", {"bands": [4], "stretch": "percentile", "low": 1, "high": 99.5})["high"] == 99.5
    for bad, words in [({"bands": [1, 2]}, "3 band numbers"), ({"bands": [0, 1, 2]}, "3 band numbers"),
                       ({"low": 50, "high": 10}, "below"), ({"stretch": "log"}, "stretch must be"),
                       ({"gamma": 2}, "unknown raster setting"), ({"low": float("nan")}, "number from 0")]:
        with pytest.raises(ClickmaskError, match=words):
            check_display("raster", bad)
    assert check_display("dicom", {"preset": "CT-Lung"}) == {"preset": "lung", "level": -600.0, "width": 1500.0}
    assert check_display("dicom", {"level": 50, "width": 350}) == {"preset": None, "level": 50.0, "width": 350.0}
    for bad, words in [({"preset": "liver"}, "preset must be"), ({"level": 40}, "both level and width"),
                       ({"level": 40, "width": 0}, "positive")]:
        with pytest.raises(ClickmaskError, match=words):
            check_display("dicom", bad)
    with pytest.raises(ClickmaskError, match="no display settings"):
        check_display("plain", {"bands": [1]})


def test_raster_bands_and_stretch_change_the_pixels(tmp_path: Path) -> None:
    tif = write_four_band_tiff(tmp_path / "four.tif")
    assert image_kind(tif) == "raster"
    default = render(tif, None)
    np.testing.assert_array_equal(default, load_image(tif))
    assert default[35, 45].min() > 200 and default[5, 5].max() < 50  # bands 1-3: the square is bright
    nir = render(tif, check_display("raster", {"bands": [4]}))
    assert (nir[..., 0] == nir[..., 1]).all() and nir[35, 45, 0] < 50 and nir[5, 5, 0] > 200  # gray, inverted
    tight = render(tif, check_display("raster", {"bands": [1, 2, 3], "stretch": "percentile", "low": 40, "high": 60}))
    assert not np.array_equal(tight, default)
    with pytest.raises(ImageReadError, match="band 5 does not exist"):
        render(tif, check_display("raster", {"bands": [5, 2, 1]}))
    shown = describe(tif, {"bands": [4, 3, 2], "stretch": "auto", "low": 2.0, "high": 98.0}, name="four.tif")
    assert shown["kind"] == "raster" and shown["bands"] == [4, 3, 2] and shown["count"] == 4
    assert shown["crs"] == "EPSG:32616" and shown["path"] == "four.tif"


def test_dicom_image_hounsfield_window_and_metadata(tmp_path: Path) -> None:
    dcm = write_ct_dicom(tmp_path / "ct.dcm")
    assert image_kind(dcm) == "dicom" and image_size(dcm) == (72, 64)
    hu = np.full((64, 72), -1000.0)
    yy, xx = np.mgrid[0:64, 0:72]
    hu[(yy - 32) ** 2 + (xx - 36) ** 2 < 24 ** 2] = 40.0
    hu[26:38, 30:42] = 700.0
    default = load_image(dcm)  # CT: the abdomen window
    np.testing.assert_array_equal(default[..., 0], window_to_uint8(hu, preset("ct-abdomen")))
    bone = render(dcm, check_display("dicom", {"preset": "bone"}))
    np.testing.assert_array_equal(bone[..., 1], window_to_uint8(hu, preset("ct-bone")))
    free = render(dcm, check_display("dicom", {"level": 700, "width": 10}))
    assert free[32, 36, 0] == 128 and free[32, 20, 0] == 0
    shown = describe(dcm, None, name="ct.dcm")
    assert shown["kind"] == "dicom" and shown["window"] == {"level": 40.0, "width": 400.0, "preset": "abdomen"}
    assert shown["metadata"]["patient_name"] == PATIENT and shown["modality"] == "CT"
    empty = write_ct_dicom(tmp_path / "empty.dcm", with_pixels=False)
    with pytest.raises(ImageReadError, match="empty.dcm.*no pixel data"):
        load_image(empty)
    with pytest.raises(ImageReadError, match="empty.dcm"):
        image_size(empty)


def test_settings_are_kept_per_image_in_the_project(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    write_four_band_tiff(project / "a.tif")
    write_ct_dicom(project / "b.dcm")
    store = open_project(project)
    ids = {i["path"]: i["id"] for i in store.list_images()}
    assert set(ids) == {"a.tif", "b.dcm"}
    store.set_display(ids["a.tif"], {"bands": [4, 3, 2], "stretch": "auto", "low": 2.0, "high": 98.0})
    store.close()
    store = open_project(project)
    assert store.display(ids["a.tif"])["bands"] == [4, 3, 2] and store.display(ids["b.dcm"]) is None
    store.set_display(ids["a.tif"], None)
    assert store.display(ids["a.tif"]) is None


def _client(project: Path):
    from clickmask.engine.loader import load_predictor
    from clickmask.server import AppState
    from page_client import page_client

    store = open_project(project)
    state = AppState(store=store, predictor=load_predictor("grabcut"))
    return page_client(state), state, store


def test_the_api_changes_what_the_browser_and_the_model_get(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    write_four_band_tiff(project / "a.tif")
    write_ct_dicom(project / "b.dcm")
    client, state, store = _client(project)
    ids = {i["path"]: i["id"] for i in client.get("/api/images").json()["images"]}
    tif = ids["a.tif"]
    shown = client.get(f"/api/images/{tif}/display").json()
    assert shown["kind"] == "raster" and shown["bands"] == [1, 2, 3] and shown["settings"] is None
    before = state.load_image(tif).copy()
    jpeg_before = client.get(f"/api/images/{tif}/file").content
    changed = client.put(f"/api/images/{tif}/display", json={"settings": {"bands": [4]}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["bands"] == [4] and store.display(tif)["bands"] == [4]
    after = state.load_image(tif)
    assert not np.array_equal(before, after) and after[35, 45, 0] < 50
    from clickmask.engine.embedding_cache import image_key

    assert image_key(before) != image_key(after)  # the embedding cache computes the new pixels' embedding
    jpeg_after = client.get(f"/api/images/{tif}/file").content
    assert jpeg_after != jpeg_before
    assert np.asarray(Image.open(io.BytesIO(jpeg_after)))[5, 5, 0] > 200
    assert client.get(f"/api/images/{tif}/raster").json()["bands"] == [4]
    bad = client.put(f"/api/images/{tif}/display", json={"settings": {"bands": [7, 1, 2]}})
    assert bad.status_code >= 400 and "band 7 does not exist" in bad.text and store.display(tif)["bands"] == [4]
    assert client.put(f"/api/images/{tif}/display", json={"settings": None}).json()["bands"] == [1, 2, 3]
    # the DICOM: a preset, its metadata for the panel; no settings for a plain image
    dcm = ids["b.dcm"]
    described = client.get(f"/api/images/{dcm}/display").json()
    assert described["metadata"]["patient_id"] == "P-0042"
    lung = client.put(f"/api/images/{dcm}/display", json={"settings": {"preset": "lung"}}).json()
    assert lung["window"] == {"level": -600.0, "width": 1500.0, "preset": "lung"}
    assert int(state.load_image(dcm)[5, 5, 0]) == int(window_to_uint8(np.array(-1000.0), preset("ct-lung")))
    # a click segments on the windowed pixels; the export never carries the patient's name
    r = client.post(f"/api/images/{dcm}/clicks", json={"x": 36.5, "y": 32.5, "positive": True})
    assert r.status_code == 200, r.text
    assert client.post(f"/api/images/{dcm}/finish", json={"category_id": None}).status_code == 200
    exported = client.post("/api/export", json={"format": "coco"})
    assert exported.status_code == 200, exported.text
    text = "".join(p.read_text(errors="ignore") for p in (project / ".clickmask" / "exports").rglob("*.json"))
    assert text and PATIENT not in text and "P-0042" not in text
    assert PATIENT not in json.dumps(client.get("/api/images").json())


def test_settings_that_no_longer_fit_the_file_fall_back_to_the_defaults(tmp_path: Path) -> None:
    project = tmp_path / "p"
    project.mkdir()
    write_four_band_tiff(project / "a.tif")
    client, state, store = _client(project)
    image_id = store.list_images()[0]["id"]
    assert client.put(f"/api/images/{image_id}/display", json={"settings": {"bands": [4]}}).status_code == 200
    import rasterio

    with rasterio.open(project / "a.tif", "w", driver="GTiff", width=20, height=10, count=3, dtype="uint8",
                       crs="EPSG:32616", transform=rasterio.transform.from_origin(0, 0, 1, 1)) as dst:
        dst.write(np.full((3, 10, 20), 7, np.uint8))
    state.images = type(state.images)()  # the file changed on disk: a new server would decode it afresh
    assert state.load_image(image_id).shape == (10, 20, 3)
    assert store.display(image_id) is None and store.image(image_id)["error"] is None
