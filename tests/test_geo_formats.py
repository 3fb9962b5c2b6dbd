"""GIS vector export and import (clickmask.formats.geo): GeoJSON, Shapefile, GeoPackage.

The exported files are read back with pyogrio and shapely directly (not with
clickmask's reader) and rasterised with rasterio, as a GIS user's tools would.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

rasterio = pytest.importorskip("rasterio")
pyogrio = pytest.importorskip("pyogrio")
shapely = pytest.importorskip("shapely")
import rasterio.errors  # noqa: E402
from pyogrio.raw import read as ogr_read  # noqa: E402
from pyogrio.raw import write as ogr_write  # noqa: E402
from rasterio.crs import CRS  # noqa: E402
from rasterio.features import rasterize  # noqa: E402
from rasterio.transform import Affine, from_origin  # noqa: E402
from rasterio.warp import transform_geom  # noqa: E402
from scipy.spatial import cKDTree  # noqa: E402

from clickmask.cli import main  # noqa: E402
from clickmask.errors import ClickmaskError  # noqa: E402
from clickmask.formats import AnnotationSet, Category, ImageAnnotation, Instance, export_with_report  # noqa: E402
from clickmask.formats.geo import import_vector, read_vector  # noqa: E402
from clickmask.geometry import mask_to_polygons  # noqa: E402
from clickmask.project import open_project  # noqa: E402
from clickmask.project.exchange import export_project_report, import_annotations  # noqa: E402

W, H = 120, 100
CRSS = {
    "EPSG:32616": from_origin(733601.0, 3725139.0, 0.5, 0.5),
    "EPSG:4326": from_origin(-43.6844, -22.9515, 4.5e-6, 4.5e-6),
    "EPSG:3857": Affine(0.3, 0.05, -4862000.0, 0.04, -0.3, -2626000.0),  # with rotation terms
}
MAIN_FILE = {"geojson": ".geojson", "shapefile": ".shp", "gpkg": ".gpkg"}


def write_raster(path: Path, crs: str | None, transform: Affine | None = None) -> Path:
    options = dict(driver="GTiff", width=W, height=H, count=3, dtype="uint8")
    if crs is not None:
        options.update(crs=crs, transform=transform or CRSS[crs])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **options) as dst:
            dst.write(np.full((3, H, W), 90, np.uint8))
    return path


def object_masks() -> list[np.ndarray]:
    """A box with a hole, an object of three parts (one with a hole), a disc, pixels touching at corners."""
    holed = np.zeros((H, W), bool)
    holed[10:50, 10:60] = True
    holed[20:30, 20:30] = False
    parts = np.zeros((H, W), bool)
    parts[60:70, 5:25] = True
    parts[75:95, 30:55] = True
    parts[80:88, 38:46] = False
    parts[5:8, 100:118] = True
    yy, xx = np.mgrid[:H, :W]
    disc = (yy - 70) ** 2 + (xx - 90) ** 2 <= 17 ** 2
    diagonal = np.zeros((H, W), bool)
    diagonal[52, 70] = diagonal[53, 71] = diagonal[54, 70] = True
    return [holed, parts, disc, diagonal]


def annotation_set(file_name: str = "tile.tif") -> AnnotationSet:
    masks = object_masks()
    instances = [Instance(m, 1 + k % 2, z_order=k, id=100 + k) for k, m in enumerate(masks)]
    instances.append(Instance(masks[2], None, z_order=9))  # no category: left out
    return AnnotationSet([Category(1, "building"), Category(2, "tree")],
                         [ImageAnnotation(file_name, W, H, instances)])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def read_back(path: Path) -> tuple[dict, list, dict]:
    """(meta, shapely geometries, fields) with pyogrio and shapely alone."""
    meta, _fids, geometry, field_data = ogr_read(str(path))
    return meta, [shapely.from_wkb(g) for g in geometry], dict(zip(meta["fields"], field_data))


def to_pixels(geometry, transform: Affine):
    a, b, c, d, e, f = tuple(~transform)[:6]
    return shapely.transform(geometry, lambda xy: np.column_stack([a * xy[:, 0] + b * xy[:, 1] + c,
                                                                   d * xy[:, 0] + e * xy[:, 1] + f]))


def assert_same_vertices(geometry, mask: np.ndarray) -> None:
    """Every vertex of the exact pixel outline is within 0.01 px of an exported one, and vice versa."""
    want = np.concatenate([r for p in mask_to_polygons(mask) for r in (p.exterior, *p.holes)])
    got = shapely.get_coordinates(geometry)
    assert cKDTree(got).query(want)[0].max() < 0.01
    assert cKDTree(want).query(got)[0].max() < 0.01


def assert_layer_matches(geometries, fields, transform: Affine, crs_of_file: str, raster_crs: str) -> None:
    masks = object_masks()
    assert len(geometries) == len(masks)  # the uncategorised object is left out
    assert list(fields["category"]) == ["building", "tree", "building", "tree"]
    assert list(fields["cat_id"]) == [1, 2, 1, 2] and list(fields["object_id"]) == [100, 101, 102, 103]
    assert set(fields["image"]) == {"tile.tif"}
    for geometry, mask in zip(geometries, masks):
        if crs_of_file != raster_crs:
            geometry = shapely.geometry.shape(transform_geom(crs_of_file, raster_crs, shapely.geometry.mapping(geometry),
                                                             precision=-1))
        pixels = to_pixels(geometry, transform)
        assert_same_vertices(pixels, mask)
        back = rasterize([(geometry, 1)], out_shape=(H, W), transform=transform, dtype="uint8") == 1
        assert iou(back, mask) >= 0.99


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("fmt", sorted(MAIN_FILE))
@pytest.mark.parametrize("crs", sorted(CRSS))
def test_round_trip_in_the_raster_crs(tmp_path: Path, fmt: str, crs: str) -> None:
    write_raster(tmp_path / "tile.tif", crs)
    result = export_with_report(annotation_set(), fmt, tmp_path / "out", image_root=tmp_path)
    main_file = tmp_path / "out" / f"tile{MAIN_FILE[fmt]}"
    assert main_file in result.files and all(f.is_file() for f in result.files)
    assert result.unassigned == 1 and result.skipped_unassigned == 1
    meta, geometries, fields = read_back(main_file)
    assert CRS.from_user_input(meta["crs"]) == CRS.from_user_input(crs)
    assert_layer_matches(geometries, fields, CRSS[crs], crs, crs)
    # holes and parts are kept
    assert [len(shapely.get_parts(g)) for g in geometries] == [1, 3, 1, 1]
    assert shapely.get_num_interior_rings(shapely.get_parts(geometries[0]))[0] == 1
    assert sorted(shapely.get_num_interior_rings(shapely.get_parts(geometries[1])).tolist()) == [0, 0, 1]
    # clickmask's own import gives back the masks exactly
    back = import_vector(main_file, tmp_path / "tile.tif")
    assert [c.name for c in back.categories] == ["building", "tree"]
    instances = back.images[0].instances
    assert [i.id for i in instances] == [100, 101, 102, 103] and [i.category_id for i in instances] == [1, 2, 1, 2]
    for inst, mask in zip(instances, object_masks()):
        assert iou(inst.mask, mask) >= 0.99
        np.testing.assert_array_equal(inst.mask, mask)


@pytest.mark.parametrize("fmt", sorted(MAIN_FILE))
@pytest.mark.parametrize("crs", ["EPSG:32616", "EPSG:3857"])
def test_reprojected_to_wgs84_and_back(tmp_path: Path, fmt: str, crs: str) -> None:
    write_raster(tmp_path / "tile.tif", crs)
    export_with_report(annotation_set(), fmt, tmp_path / "out", image_root=tmp_path, crs="EPSG:4326")
    meta, geometries, fields = read_back(tmp_path / "out" / f"tile{MAIN_FILE[fmt]}")
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 4326
    lon, lat = shapely.get_coordinates(geometries[0]).T
    assert (np.abs(lon) <= 180).all() and (np.abs(lat) <= 90).all()
    for g in geometries:  # RFC 7946: exteriors counter-clockwise; the Shapefile specification: clockwise
        assert all(part.exterior.is_ccw == (fmt != "shapefile") for part in shapely.get_parts(g))
    assert_layer_matches(geometries, fields, CRSS[crs], "EPSG:4326", crs)
    back = import_vector(tmp_path / "out" / f"tile{MAIN_FILE[fmt]}", tmp_path / "tile.tif")
    for inst, mask in zip(back.images[0].instances, object_masks()):
        assert iou(inst.mask, mask) >= 0.99


def test_vector_in_another_crs_is_reprojected_onto_the_raster(tmp_path: Path) -> None:
    write_raster(tmp_path / "tile.tif", "EPSG:32616")
    export_with_report(annotation_set(), "gpkg", tmp_path / "out", image_root=tmp_path, crs="EPSG:3857")
    back = import_vector(tmp_path / "out" / "tile.gpkg", tmp_path / "tile.tif")
    for inst, mask in zip(back.images[0].instances, object_masks()):
        assert iou(inst.mask, mask) >= 0.99


def test_raster_without_crs_is_exported_in_pixels(tmp_path: Path) -> None:
    write_raster(tmp_path / "tile.tif", None)
    result = export_with_report(annotation_set(), "geojson", tmp_path / "out", image_root=tmp_path)
    assert any("pixel coordinates" in w and "'tile.tif'" in w for w in result.warnings)
    meta, geometries, fields = read_back(tmp_path / "out" / "tile.geojson")
    assert "crs" not in json.loads((tmp_path / "out" / "tile.geojson").read_text(encoding="utf-8"))
    assert_layer_matches(geometries, fields, Affine.identity(), "", "")
    back = import_vector(tmp_path / "out" / "tile.geojson", tmp_path / "tile.tif")
    for inst, mask in zip(back.images[0].instances, object_masks()):
        np.testing.assert_array_equal(inst.mask, mask)
    # a reprojected export cannot place it: left out, and said so
    result = export_with_report(annotation_set(), "geojson", tmp_path / "wgs", image_root=tmp_path, crs="EPSG:4326")
    assert result.files == [] and "left out of the EPSG:4326 export" in result.warnings[0]


def test_shapefile_files_are_complete_and_replaced_atomically(tmp_path: Path) -> None:
    write_raster(tmp_path / "tile.tif", "EPSG:32616")
    out = tmp_path / "out"
    files = export_with_report(annotation_set(), "shapefile", out, image_root=tmp_path).files
    assert sorted(f.suffix for f in files) == [".cpg", ".dbf", ".prj", ".shp", ".shx"]
    assert files[-1].suffix == ".shp"  # moved last: a .shp always has its companions
    # the same image name exported without its raster (pixel coordinates): the old .prj must go
    export_with_report(annotation_set(), "shapefile", out)
    assert sorted(p.name for p in out.iterdir()) == ["tile.cpg", "tile.dbf", "tile.shp", "tile.shx"]
    assert read_back(out / "tile.shp")[0]["crs"] is None


def test_empty_image_gets_an_empty_layer(tmp_path: Path) -> None:
    write_raster(tmp_path / "tile.tif", "EPSG:32616")
    empty = AnnotationSet([Category(1, "building")], [ImageAnnotation("tile.tif", W, H, [])])
    for fmt in MAIN_FILE:
        files = export_with_report(empty, fmt, tmp_path / fmt, image_root=tmp_path).files
        main_file = tmp_path / fmt / f"tile{MAIN_FILE[fmt]}"
        assert main_file in files and read_back(main_file)[1] == []


# --------------------------------------------------------------------------- bad input


def test_untransformable_crs_is_one_clear_error(tmp_path: Path) -> None:
    write_raster(tmp_path / "tile.tif", "EPSG:32616")
    mars = tmp_path / "mars.gpkg"
    square = shapely.MultiPolygon([shapely.box(10.0, 10.0, 10.001, 10.001)])
    ogr_write(str(mars), np.array([shapely.to_wkb(square)], dtype=object), [np.array(["crater"], dtype=object)],
              ["category"], driver="GPKG", geometry_type="MultiPolygon",
              crs=CRS.from_user_input("IAU_2015:49900").to_wkt())
    with pytest.raises(ClickmaskError) as err:
        import_vector(mars, tmp_path / "tile.tif")
    message = str(err.value)
    assert f"vector file '{mars}'" in message and "cannot transform coordinates" in message and "EPSG:32616" in message
    assert "\n" not in message


def test_vector_with_crs_onto_raster_without_one(tmp_path: Path) -> None:
    write_raster(tmp_path / "geo.tif", "EPSG:32616")
    write_raster(tmp_path / "plain.tif", None)
    export_with_report(annotation_set("geo.tif"), "geojson", tmp_path / "out", image_root=tmp_path)
    with pytest.raises(ClickmaskError, match="has no coordinate reference system"):
        import_vector(tmp_path / "out" / "geo.geojson", tmp_path / "plain.tif")


def test_unknown_crs_and_unreadable_vector(tmp_path: Path) -> None:
    write_raster(tmp_path / "tile.tif", "EPSG:32616")
    with pytest.raises(ClickmaskError, match="unknown coordinate reference system 'EPSG:999999'"):
        export_with_report(annotation_set(), "geojson", tmp_path / "out", image_root=tmp_path, crs="EPSG:999999")
    with pytest.raises(ClickmaskError, match="applies to geojson, shapefile, gpkg only"):
        export_with_report(annotation_set(), "coco", tmp_path / "out", crs="EPSG:4326")
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [', encoding="utf-8")
    with pytest.raises(ClickmaskError, match="cannot read vector file"):
        read_vector(broken)
    with pytest.raises(ClickmaskError, match="file not found"):
        read_vector(tmp_path / "nothing.gpkg")


# --------------------------------------------------------------------------- project and command line


def test_project_export_and_import_through_the_cli(tmp_path: Path, capsys) -> None:
    project = tmp_path / "p"
    project.mkdir()
    write_raster(project / "tile.tif", "EPSG:32616")
    store = open_project(project)
    building = store.add_category("building")["id"]
    masks = object_masks()
    for mask in masks[:2]:
        store.add_instance(1, mask, building)
    assert main(["export", str(project), "--format", "gpkg", "--out", str(tmp_path / "o"), "--crs", "EPSG:4326"]) == 0
    assert "wrote 1 files" in capsys.readouterr().out
    meta, geometries, fields = read_back(tmp_path / "o" / "tile.gpkg")
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 4326 and len(geometries) == 2
    fresh = open_project(project, url=f"sqlite:///{tmp_path / 'other.db'}")
    assert main(["import", str(project), "--format", "gpkg", str(tmp_path / "o" / "tile.gpkg"),
                 "--db", f"sqlite:///{tmp_path / 'other.db'}"]) == 0
    got = [fresh.instance_mask(i["id"]) for i in fresh.list_instances(1)]
    assert len(got) == 2 and all(iou(g, m) >= 0.99 for g, m in zip(got, masks[:2]))
    assert [c["name"] for c in fresh.list_categories()] == ["building"]
    # a vector file that names no project image is refused, nothing imported
    stray = tmp_path / "o" / "elsewhere.gpkg"
    (tmp_path / "o" / "tile.gpkg").rename(stray)
    with pytest.raises(ClickmaskError, match="nothing was imported"):
        _rename_image_field(stray)
        import_annotations(fresh, stray, "gpkg")
    assert len(fresh.list_instances(1)) == 2


def _rename_image_field(path: Path) -> None:
    """Rewrite a vector file with its ``image`` attribute pointing at an image that is not in the project."""
    meta, _fids, geometry, field_data = ogr_read(str(path))
    fields = dict(zip(meta["fields"], field_data))
    fields["image"] = np.array(["other.tif"] * len(geometry), dtype=object)
    path.unlink()
    ogr_write(str(path), geometry, list(fields.values()), list(fields), driver="GPKG",
              geometry_type="MultiPolygon", crs=meta["crs"])


def test_project_export_in_pixels_for_png_images(tmp_path: Path) -> None:
    from PIL import Image

    from clickmask.io.rasters import describe_image

    project = tmp_path / "p"
    project.mkdir()
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(project / "photo.png")
    described = describe_image(project / "photo.png", name="photo.png")
    assert described["georeferenced"] is False and "pixel coordinates" in described["coordinate_note"]
    store = open_project(project)
    store.add_instance(1, object_masks()[0], store.add_category("thing")["id"])
    result = export_project_report(store, "geojson", tmp_path / "o")
    assert any("pixel coordinates" in w for w in result.warnings)
    assert import_annotations(open_project(project, url=f"sqlite:///{tmp_path / 'b.db'}"),
                              tmp_path / "o" / "photo.geojson", "geojson")["added"] == 1


# --------------------------------------------------------------------------- real tiles


def test_real_tile_instances_round_trip(data_root: Path, tmp_path: Path) -> None:
    from PIL import Image

    folder = data_root / "RemoteSensing"
    tiles = sorted((folder / "images").glob("*.tif")) if folder.is_dir() else []
    tiles = [t for t in tiles if (folder / "instances" / f"{t.stem}.png").is_file()]
    if not tiles:
        pytest.skip(f"no RemoteSensing tiles with instance maps under {data_root}")
    tile = tiles[0]
    ids = np.asarray(Image.open(folder / "instances" / f"{tile.stem}.png")).astype(np.int64)
    with rasterio.open(tile) as src:
        height, width, crs = src.height, src.width, src.crs
    masks = [ids == k for k in np.unique(ids) if k and (ids == k).sum() >= 100]
    aset = AnnotationSet([Category(1, "building")], [ImageAnnotation(tile.name, width, height,
                                                                     [Instance(m, 1, id=n) for n, m in
                                                                      enumerate(masks, 1)])])
    export_with_report(aset, "geojson", tmp_path / "out", image_root=tile.parent)
    meta, geometries, _ = read_back(tmp_path / "out" / f"{tile.stem}.geojson")
    assert CRS.from_user_input(meta["crs"]) == crs and len(geometries) == len(masks)
    back = import_vector(tmp_path / "out" / f"{tile.stem}.geojson", tile)
    for inst, mask in zip(back.images[0].instances, masks):
        assert iou(inst.mask, mask) >= 0.99


# --------------------------------------------------------------------------- the app


def test_app_lists_the_gis_formats_and_zips_them_reprojected(tmp_path: Path) -> None:
    import io
    import zipfile

    from clickmask.engine.loader import load_predictor
    from clickmask.server import AppState
    from page_client import page_client

    project = tmp_path / "p"
    project.mkdir()
    write_raster(project / "tile.tif", "EPSG:32616")
    store = open_project(project)
    store.add_instance(1, object_masks()[1], store.add_category("building")["id"])
    client = page_client(AppState(store=store, predictor=load_predictor("grabcut")))
    listed = {f["name"]: f for f in client.get("/api/export/formats").json()["formats"]}
    assert {"geojson", "shapefile", "gpkg"} <= set(listed) and listed["gpkg"]["unassigned_policy"] == "skipped"
    response = client.get("/api/export/shapefile.zip", params={"crs": "EPSG:4326"})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        archive.extractall(tmp_path / "unzipped")
    (shp,) = (tmp_path / "unzipped").rglob("tile.shp")
    assert sorted(p.suffix for p in shp.parent.iterdir()) == [".cpg", ".dbf", ".prj", ".shp", ".shx"]
    meta, geometries, _ = read_back(shp)
    assert CRS.from_user_input(meta["crs"]).to_epsg() == 4326 and len(shapely.get_parts(geometries[0])) == 3
    bad = client.get("/api/export/geojson.zip", params={"crs": "EPSG:999999"})
    assert bad.status_code >= 400 and "unknown coordinate reference system" in bad.text
    # the GeoTIFF goes to the browser (and the model) through the raster path
    from PIL import Image

    image_id = client.get("/api/images").json()["images"][0]["id"]
    shown = client.get(f"/api/images/{image_id}/file")
    assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
    pixels = np.asarray(Image.open(io.BytesIO(shown.content)))
    assert pixels.shape == (H, W, 3) and abs(float(pixels.mean()) - 90.0) < 2.0
    # its coordinates for the app: CRS and geotransform, never the absolute path
    described = client.get(f"/api/images/{image_id}/raster").json()
    assert described["georeferenced"] is True and described["crs"] == "EPSG:32616"
    assert described["geotransform"] == list(CRSS["EPSG:32616"].to_gdal()) and described["path"] == "tile.tif"
    assert described["bands"] == [1, 2, 3] and described["stretch"]["mode"] == "none"
    assert str(tmp_path) not in json.dumps(described)


def test_bad_input_in_a_project_is_one_line_and_the_rest_keeps_working(tmp_path: Path, capsys) -> None:
    project = tmp_path / "p"
    project.mkdir()
    write_raster(project / "tile.tif", "EPSG:32616")
    raw = write_raster(tmp_path / "whole.tif", "EPSG:32616").read_bytes()
    (project / "cut.tif").write_bytes(raw[: len(raw) // 3])  # a truncated GeoTIFF
    store = open_project(project)
    ids = {i["path"]: i["id"] for i in store.list_images()}
    store.add_instance(ids["tile.tif"], object_masks()[0], store.add_category("building")["id"])
    assert main(["export", str(project), "--format", "geojson", "--out", str(tmp_path / "o")]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["tile.geojson"]
    error = store.image(ids["cut.tif"])["error"]
    assert "cut.tif" in error and "truncated" in error and "\n" not in error
    # a vector file in a CRS that cannot be transformed: one line, status 2, nothing imported
    mars = tmp_path / "tile.gpkg"
    ogr_write(str(mars), np.array([shapely.to_wkb(shapely.MultiPolygon([shapely.box(1.0, 1.0, 1.001, 1.001)]))],
                                  dtype=object), [np.array(["crater"], dtype=object)], ["category"], driver="GPKG",
              geometry_type="MultiPolygon", crs=CRS.from_user_input("IAU_2015:49900").to_wkt())
    capsys.readouterr()
    assert main(["import", str(project), "--format", "gpkg", str(mars)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("clickmask: error: vector file") and "cannot transform" in err and err.count("\n") == 0
    assert len(store.list_instances(ids["tile.tif"])) == 1 and [c["name"] for c in store.list_categories()] == [
        "building"]
