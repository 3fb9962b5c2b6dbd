"""GeoTIFF reading (clickmask.io.rasters): metadata, band selection, the stretch, windows, bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

rasterio = pytest.importorskip("rasterio")
import rasterio.errors  # noqa: E402
from rasterio.transform import Affine, from_origin  # noqa: E402

from clickmask.errors import ClickmaskError, ImageReadError  # noqa: E402
from clickmask.io import rasters  # noqa: E402
from clickmask.io.images import image_size, load_image, plain_image_format  # noqa: E402
from clickmask.io.rasters import RasterReadError, Stretch  # noqa: E402

#: (CRS, transform) of the test rasters: UTM 16N at 0.5 m, WGS84 degrees, Web Mercator with a rotation term.
CRSS = {
    "EPSG:32616": from_origin(733601.0, 3725139.0, 0.5, 0.5),
    "EPSG:4326": from_origin(-43.6844, -22.9515, 4.5e-6, 4.5e-6),
    "EPSG:3857": Affine(0.3, 0.05, -4862000.0, 0.04, -0.3, -2626000.0),
}


def write_raster(path: Path, data: np.ndarray, crs: str | None = "EPSG:32616", transform: Affine | None = None,
                 nodata: float | None = None, **profile) -> Path:
    """Write (C, H, W) ``data`` as a GeoTIFF; no CRS and no transform when ``crs`` is None."""
    count, height, width = data.shape
    options = dict(driver="GTiff", width=width, height=height, count=count, dtype=data.dtype.name, nodata=nodata,
                   **profile)
    if crs is not None:
        options.update(crs=crs, transform=transform or CRSS[crs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **options) as dst:
            dst.write(data)
    return path


def float_bands(height: int = 60, width: int = 80, count: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Float32 bands with different ranges and a nodata border; returns (data, valid)."""
    rng = np.random.default_rng(1)
    data = np.stack([rng.uniform(100.0 * k, 100.0 * k + 50.0 * (k + 1), (height, width)) for k in range(count)])
    data = data.astype(np.float32)
    valid = np.ones((height, width), bool)
    valid[:5] = False
    valid[:, -3:] = False
    data[:, ~valid] = -9999.0
    return data, valid


# --------------------------------------------------------------------------- metadata


@pytest.mark.parametrize("crs", sorted(CRSS))
def test_metadata_of_each_crs(tmp_path: Path, crs: str) -> None:
    data = np.arange(3 * 20 * 30, dtype=np.uint16).reshape(3, 20, 30)
    path = write_raster(tmp_path / "r.tif", data, crs, nodata=0)
    info = rasters.read_info(path)
    assert (info.width, info.height, info.count, info.dtype, info.nodata) == (30, 20, 3, "uint16", 0.0)
    assert info.georeferenced and info.epsg == int(crs.split(":")[1]) and info.crs_name == crs
    assert "PROJCS" in info.crs_wkt or "GEOGCS" in info.crs_wkt
    want = CRSS[crs]
    assert np.allclose(info.transform, tuple(want)[:6])
    assert info.geotransform == want.to_gdal()
    # pixel corners -> map through the geotransform, and back
    xs, ys = np.array([0.0, 30.0, 12.5]), np.array([0.0, 20.0, 7.25])
    mx, my = info.pixel_to_map(xs, ys)
    assert np.allclose(mx, want.a * xs + want.b * ys + want.c) and np.allclose(my, want.d * xs + want.e * ys + want.f)
    bx, by = info.map_to_pixel(mx, my)
    assert np.allclose(bx, xs, atol=1e-6) and np.allclose(by, ys, atol=1e-6)
    assert info.to_json()["crs"] == crs and rasters.is_georeferenced_tiff(path)


def test_raster_without_crs_works_in_pixels(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "plain.tif", np.full((1, 10, 12), 7, np.uint16), crs=None)
    info = rasters.read_info(path)
    assert not info.georeferenced and info.crs_wkt is None and info.epsg is None
    assert info.transform == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert "no coordinate reference system" in info.coordinate_note and "pixel coordinates" in info.coordinate_note
    assert info.to_json()["georeferenced"] is False
    assert not rasters.is_georeferenced_tiff(path)  # load_image keeps its plain TIFF path for it
    assert rasters.load_raster(path).shape == (10, 12, 3)


def test_cog_with_overviews(tmp_path: Path) -> None:
    from rasterio.shutil import copy as gdal_copy

    data = (np.indices((600, 700)).sum(axis=0) % 251).astype(np.uint8)[np.newaxis].repeat(3, axis=0)
    source = write_raster(tmp_path / "src.tif", data, "EPSG:3857")
    cog = tmp_path / "cog.tif"
    gdal_copy(source, cog, driver="COG", blocksize=256, overview_resampling="nearest")
    info = rasters.read_info(cog)
    assert info.block_shapes[0] == (256, 256) and info.overviews
    assert info.epsg == 3857
    np.testing.assert_array_equal(rasters.load_raster(cog), np.moveaxis(data, 0, -1))


# --------------------------------------------------------------------------- stretch maths


def test_percentile_limits_ignore_invalid_and_non_finite() -> None:
    values = np.array([[[0.0, 1.0, 2.0, 3.0], [4.0, np.nan, 1000.0, -1000.0]]], np.float32)
    valid = np.array([[[True, True, True, True], [True, True, False, False]]])
    limits = rasters.percentile_limits(values, valid, Stretch("percentile", 0.0, 100.0))
    assert limits.tolist() == [[0.0, 4.0]]  # NaN and the two invalid extremes are left out
    limits = rasters.percentile_limits(values, valid, Stretch("percentile", 25.0, 75.0))
    assert limits.tolist() == [[1.0, 3.0]]
    assert rasters.percentile_limits(values, valid, Stretch("minmax")).tolist() == [[0.0, 4.0]]


def test_limits_of_uint8_are_the_values_and_flat_bands_fall_back() -> None:
    data = np.array([[[10, 20], [30, 40]]], np.uint8)
    assert rasters.percentile_limits(data).tolist() == [[0.0, 255.0]]  # auto = none for uint8
    assert rasters.percentile_limits(data, stretch=Stretch("percentile", 0, 100)).tolist() == [[10.0, 40.0]]
    flat = np.zeros((1, 100, 1), np.uint16)
    flat[0, 0, 0] = 500  # 2nd..98th percentiles coincide: min..max instead
    assert rasters.percentile_limits(flat).tolist() == [[0.0, 500.0]]
    assert rasters.percentile_limits(np.zeros((1, 2, 2), np.uint16), np.zeros((1, 2, 2), bool)).tolist() == [[0, 0]]


def test_stretch_to_uint8_formula() -> None:
    values = np.array([[[0.0, 50.0, 100.0, 150.0]], [[-5.0, 0.0, 5.0, 10.0]], [[7.0, 7.0, 7.0, 7.0]]], np.float32)
    limits = np.array([[0.0, 100.0], [0.0, 10.0], [7.0, 7.0]])
    valid = np.array([[[True, True, True, False]]] * 3)
    out = rasters.stretch_to_uint8(values, limits, valid)
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    assert out[0, :, 0].tolist() == [0, 128, 255, 0]  # 127.5 rounds half to even; the invalid pixel is 0
    assert out[0, :, 1].tolist() == [0, 0, 128, 0]  # clipped below
    assert out[0, :, 2].tolist() == [0, 0, 0, 0]  # a constant band is 0
    gray = rasters.stretch_to_uint8(values[:1], limits[:1])
    assert gray.shape == (1, 4, 3) and (gray[..., 0] == gray[..., 2]).all() and gray[0, 3, 0] == 255
    with pytest.raises(ValueError):
        rasters.stretch_to_uint8(values[:2], limits[:2])
    with pytest.raises(ValueError):
        Stretch("percentile", 90, 10)


def test_multiband_float_with_nodata(tmp_path: Path) -> None:
    data, valid = float_bands()
    path = write_raster(tmp_path / "f.tif", data, "EPSG:32616", nodata=-9999.0)
    info = rasters.read_info(path)
    assert (info.count, info.dtype, info.nodata) == (4, "float32", -9999.0)
    view = rasters.open_view(path)
    assert view.bands == (1, 2, 3)
    for k in range(3):  # the limits are the percentiles of the valid pixels only
        lo, hi = np.percentile(data[k][valid].astype(np.float64), (2, 98))
        assert view.limits[k] == pytest.approx((lo, hi))
    image = rasters.load_raster(path)
    assert image.shape == (60, 80, 3) and image.dtype == np.uint8
    assert (image[~valid] == 0).all()
    expected = np.clip(np.rint((data[1][valid] - view.limits[1, 0]) * (255.0 / np.ptp(view.limits[1]))), 0, 255)
    assert np.abs(image[..., 1][valid].astype(int) - expected).max() <= 1
    assert (image[..., 0][valid] == 255).mean() == pytest.approx(0.02, abs=0.01)  # 2% above the 98th percentile
    # through the project's image loader too (it is georeferenced), and its size from the header
    np.testing.assert_array_equal(load_image(path), image)
    assert image_size(path) == (80, 60)
    assert plain_image_format(path) is None


def test_band_selection(tmp_path: Path) -> None:
    data, valid = float_bands()
    path = write_raster(tmp_path / "f.tif", data, "EPSG:4326", nodata=-9999.0)
    gray = rasters.load_raster(path, bands=[4])
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    swapped = rasters.load_raster(path, bands=(3, 2, 1))
    straight = rasters.load_raster(path)
    np.testing.assert_array_equal(swapped, straight[..., ::-1])
    two = write_raster(tmp_path / "two.tif", data[:2], "EPSG:4326", nodata=-9999.0)
    assert rasters.open_view(two).bands == (1,)


@pytest.mark.parametrize("bands, problem", [
    ((5,), "band 5 does not exist (the raster has bands 1..4)"),
    ((0,), "band 0 does not exist"),
    ((1, 2), "unsupported band layout [1, 2]"),
    ((1, 2, 3, 4), "unsupported band layout"),
    (("1",), "is not an integer"),
])
def test_bad_band_selection(tmp_path: Path, bands, problem: str) -> None:
    path = write_raster(tmp_path / "f.tif", float_bands()[0], "EPSG:32616")
    with pytest.raises(RasterReadError) as err:
        rasters.load_raster(path, bands=bands)
    message = str(err.value)
    assert problem in message and str(path) in message and "\n" not in message


def test_complex_data_is_an_unsupported_layout(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "sar.tif", np.ones((1, 4, 4), np.complex64), "EPSG:32616")
    with pytest.raises(ClickmaskError, match="unsupported band data type complex64"):
        rasters.load_raster(path)


# --------------------------------------------------------------------------- windows


def test_read_window_matches_the_whole_raster(tmp_path: Path) -> None:
    data, _ = float_bands(90, 120)
    path = write_raster(tmp_path / "f.tif", data, "EPSG:32616", nodata=-9999.0, tiled=True,
                        blockxsize=32, blockysize=32)
    whole = rasters.load_raster(path)
    view = rasters.open_view(path)
    np.testing.assert_array_equal(rasters.read_window(path, (40, 10, 33, 50), view=view), whole[10:60, 40:73])
    np.testing.assert_array_equal(rasters.read_window(path, (40, 10, 33, 50)), whole[10:60, 40:73])
    edge = rasters.read_window(path, (100, 80, 30, 20), view=view)  # partly outside: black there
    assert edge.shape == (20, 30, 3)
    np.testing.assert_array_equal(edge[:10, :20], whole[80:, 100:])
    assert (edge[10:] == 0).all() and (edge[:, 20:] == 0).all()
    assert (rasters.read_window(path, (500, 500, 8, 8), view=view) == 0).all()


def test_limits_come_from_a_decimated_read(tmp_path: Path, monkeypatch) -> None:
    data, _ = float_bands(200, 300, count=3)
    path = write_raster(tmp_path / "f.tif", data, "EPSG:32616", nodata=-9999.0)
    monkeypatch.setattr(rasters, "LIMIT_SAMPLE_SIZE", 50)
    view = rasters.open_view(path)
    exact = [np.percentile(data[k][data[k] != -9999.0], (2, 98)) for k in range(3)]
    for k in range(3):  # a 50 x 33 sample: close to the exact percentiles, but not them
        assert np.abs(view.limits[k] - exact[k]).max() <= 0.05 * np.ptp(exact[k])
    a = rasters.read_window(path, (0, 0, 150, 200), view=view)
    b = rasters.read_window(path, (150, 0, 150, 200), view=view)
    np.testing.assert_array_equal(np.concatenate([a, b], axis=1), rasters.read_window(path, (0, 0, 300, 200),
                                                                                      view=view))


# --------------------------------------------------------------------------- bad input


def test_truncated_tiff_is_one_clear_error(tmp_path: Path) -> None:
    data, _ = float_bands(200, 200)
    whole = write_raster(tmp_path / "whole.tif", data, "EPSG:32616", nodata=-9999.0)
    cut = tmp_path / "cut.tif"
    raw = whole.read_bytes()
    cut.write_bytes(raw[: len(raw) // 2])
    for read in (rasters.load_raster, load_image):
        with pytest.raises(ImageReadError) as err:
            read(cut)
        message = str(err.value)
        assert message.startswith(f"cannot read raster '{cut}'") and "truncated" in message and "\n" not in message


@pytest.mark.parametrize("content, problem", [
    (b"II*\x00" + b"\xff" * 40, "corrupt or unsupported raster"),
    (b"not a raster at all, just text", "not a raster format GDAL reads"),
    (b"", "file is empty"),
])
def test_corrupt_files(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.tif"
    path.write_bytes(content)
    with pytest.raises(RasterReadError) as err:
        rasters.read_info(path)
    assert problem in str(err.value) and str(path) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ImageReadError):  # the plain image path refuses it as well
        load_image(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RasterReadError, match="file not found"):
        rasters.read_info(tmp_path / "nothing.tif")


def test_png_and_plain_tiff_paths_are_unchanged(tmp_path: Path) -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (12, 16, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).save(tmp_path / "a.tif")
    for name in ("a.png", "a.tif"):
        np.testing.assert_array_equal(load_image(tmp_path / name), rgb)
        assert not rasters.is_georeferenced_tiff(tmp_path / name)


# --------------------------------------------------------------------------- real tiles


def test_real_remote_sensing_tile(data_root: Path) -> None:
    folder = data_root / "RemoteSensing"
    tiles = sorted((folder / "images").glob("*.tif")) if folder.is_dir() else []
    if not tiles:
        pytest.skip(f"no RemoteSensing tiles under {data_root}")
    for tile in tiles[:2]:
        info = rasters.read_info(tile)
        assert info.georeferenced and info.epsg is not None, info.coordinate_note
        image = load_image(tile)
        mask = np.asarray(Image.open(folder / "masks" / f"{tile.stem}.png"))
        assert image.shape == (*mask.shape[:2], 3) and image.dtype == np.uint8 and image.std() > 5
        if info.dtype == "uint8" and info.count == 3 and info.nodata is None:  # as any viewer shows it
            np.testing.assert_array_equal(image, np.asarray(Image.open(tile).convert("RGB")))
