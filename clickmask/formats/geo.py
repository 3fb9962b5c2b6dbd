"""GIS vector files: GeoJSON, ESRI Shapefile and GeoPackage, written and read with pyogrio and shapely.

Export layout (one vector file per image, since every raster has its own CRS)::

    <out_dir>/<stem>.geojson                          --format geojson
    <out_dir>/<stem>.shp .shx .dbf .prj .cpg          --format shapefile
    <out_dir>/<stem>.gpkg   (layer <stem's name>)     --format gpkg

One feature per object with a category, in drawing order (increasing
``z_order``), its geometry a MultiPolygon (every part of the object, holes
kept), and the attributes ``category`` (name), ``cat_id`` (category id),
``object_id`` (the project's object id; the instance number when there is none)
and ``image`` (the image's file name). The names fit the Shapefile's 10
characters, so every format has the same fields. Objects without a category
are left out and counted, like COCO.

Coordinates. The polygons are the exact pixel outlines of the masks
(``tolerance`` 0, the default) or simplified ones (:mod:`clickmask.geometry`),
with pixel corners at integer coordinates: ``(0, 0)`` is the top-left corner
of the top-left pixel and ``(W, H)`` the bottom-right corner of the last one.
For a georeferenced image (a GeoTIFF with a CRS, read from the image folder
with :func:`clickmask.io.rasters.read_info`) each vertex goes through the
raster's geotransform, ``X = a*x + b*y + c``, ``Y = d*x + e*y + f``, so a
vertex lands on the map position of that pixel corner (as GDAL defines the
geotransform), and the file carries the raster's CRS. With ``crs`` (for example
``"EPSG:4326"``) the map coordinates are then reprojected with GDAL through
rasterio. Exteriors are counter-clockwise and holes clockwise in the output
coordinates (RFC 7946's rule), except in a Shapefile, whose specification
wants the opposite and which GDAL writes that way. An
image without a CRS (a PNG, a JPEG, a plain TIFF), or an export without the
image folder, is written in pixel coordinates (x right, y down) with no CRS,
and a warning says so; a ``crs`` export leaves such images out (warned too).

Import (:func:`read_vector`, :func:`import_vector`) reads any vector file
pyogrio reads, reprojects its polygons to the raster's CRS (a file without a
CRS is taken to be in the raster's CRS, or in pixels for a raster without
one; a GeoJSON file without a ``crs`` member is WGS84 as RFC 7946 says, except
on a raster without a CRS, where it is pixels as this module writes it), maps them to pixel coordinates through the inverse geotransform and
rasterises each feature with :func:`clickmask.geometry.polygons_to_mask`
(pixel centres inside), which gives back exactly the exported masks.
Points and lines are skipped and counted. A CRS that cannot be transformed to
the raster's is one :class:`~clickmask.errors.ClickmaskError` naming the file.

Writing is atomic: every file is written into a temporary folder next to the
target and then moved into place (a Shapefile's ``.shp`` last, so a complete
``.shp`` always has its companions; older companions the new export does not
have, such as a ``.prj``, are removed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.formats._common import ExportResult, instance_polygons, output_stems, window_of
from clickmask.formats.annotations import AnnotationSet, Category, ImageAnnotation, Instance, drawing_order
from clickmask.geometry import Polygon, polygons_to_mask
from clickmask.io.pyramid import is_large

__all__ = [
    "GEO_FORMATS",
    "FIELDS",
    "VectorLayer",
    "mask_geometry",
    "export_geo",
    "write_vector",
    "read_vector",
    "reproject",
    "import_vector",
]

#: Format name -> (OGR driver, file suffix).
GEO_FORMATS: dict[str, tuple[str, str]] = {
    "geojson": ("GeoJSON", ".geojson"),
    "shapefile": ("ESRI Shapefile", ".shp"),
    "gpkg": ("GPKG", ".gpkg"),
}
#: The attribute fields of every feature, in order.
FIELDS: tuple[str, ...] = ("category", "cat_id", "object_id", "image")
_SHAPEFILE_SUFFIXES = (".dbf", ".shx", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".shp")


# --------------------------------------------------------------------------- #
# Geometry
# --------------------------------------------------------------------------- #
def _to_shapely(polygons: list[Polygon]) -> Any:
    import shapely

    parts = [shapely.Polygon(p.exterior, [h for h in p.holes if len(h) >= 3])
             for p in polygons if len(p.exterior) >= 3]
    return shapely.MultiPolygon(parts) if parts else None


def mask_geometry(mask: np.ndarray, tolerance: float = 0.0, offset: tuple[int, int] = (0, 0)) -> Any:
    """A shapely MultiPolygon of an (H, W) mask in pixel-corner coordinates (the mask's pixel (0, 0) at
    ``offset``), or None when empty."""
    shift = np.array([float(offset[0]), float(offset[1])])
    polygons = instance_polygons(np.asarray(mask, dtype=bool), tolerance)
    return _to_shapely([Polygon(p.exterior + shift, [h + shift for h in p.holes]) for p in polygons])


def _affine(geometry: Any, transform: tuple[float, ...]) -> Any:
    """Apply ``(a, b, c, d, e, f)``: ``X = a*x + b*y + c``, ``Y = d*x + e*y + f``."""
    import shapely

    a, b, c, d, e, f = transform

    def apply(xy: np.ndarray) -> np.ndarray:
        x, y = xy[:, 0], xy[:, 1]
        return np.column_stack([a * x + b * y + c, d * x + e * y + f])

    return shapely.transform(geometry, apply)


def _inverse(transform: tuple[float, ...], where: str) -> tuple[float, ...]:
    a, b, c, d, e, f = transform
    det = a * e - b * d
    if det == 0:
        raise ClickmaskError(f"{where}: the geotransform cannot be inverted")
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    return (ia, ib, -(ia * c + ib * f), id_, ie, -(id_ * c + ie * f))


def _crs(text: str, where: str) -> Any:
    from rasterio.crs import CRS

    try:
        return CRS.from_user_input(text)
    except Exception as exc:  # noqa: BLE001 - CRSError and GDAL errors
        raise ClickmaskError(f"{where}: unknown coordinate reference system {_short(text)!r} ({_short(exc)})") from None


def _short(value: Any, limit: int = 120) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reproject(geometries: list[Any], src_crs: str, dst_crs: str, where: str) -> list[Any]:
    """Reproject shapely geometries from ``src_crs`` to ``dst_crs`` (any text rasterio's CRS reads).

    Raises a one-line ClickmaskError (naming ``where``) when either CRS is
    unknown or no transformation between them exists (for example a Mars CRS
    onto an Earth raster), or when a point does not transform to finite values.
    """
    import shapely
    from rasterio.warp import transform as warp

    src, dst = _crs(src_crs, where), _crs(dst_crs, where)
    if src == dst:
        return list(geometries)

    def apply(xy: np.ndarray) -> np.ndarray:
        if len(xy) == 0:
            return xy
        try:
            xs, ys = warp(src, dst, xy[:, 0].tolist(), xy[:, 1].tolist())
        except Exception as exc:  # noqa: BLE001 - CPLE_NotSupportedError and friends
            raise ClickmaskError(
                f"{where}: cannot transform coordinates from {_crs_label(src)} to {_crs_label(dst)} ({_short(exc)})"
            ) from None
        out = np.column_stack([np.asarray(xs, np.float64), np.asarray(ys, np.float64)])
        if not np.isfinite(out).all():
            raise ClickmaskError(f"{where}: some coordinates have no position in {_crs_label(dst)}")
        return out

    return [None if g is None else shapely.transform(g, apply) for g in geometries]


def _crs_label(crs: Any) -> str:
    with contextlib.suppress(Exception):
        epsg = crs.to_epsg()
        if epsg:
            return f"EPSG:{epsg}"
    with contextlib.suppress(Exception):
        name = crs.to_dict().get("proj") or ""
        if name:
            return name
    return _short(crs.to_wkt(), 60)


def _oriented(geometries: list[Any]) -> list[Any]:
    """Exteriors counter-clockwise, holes clockwise (RFC 7946)."""
    import shapely

    return [None if g is None else shapely.orient_polygons(g, exterior_cw=False) for g in geometries]


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #
@dataclass
class VectorLayer:
    """Features of one vector file: shapely geometries, their attribute rows and the CRS (WKT or None)."""

    geometries: list[Any] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)
    cat_ids: list[int | None] = field(default_factory=list)
    object_ids: list[int | None] = field(default_factory=list)
    images: list[str | None] = field(default_factory=list)
    crs: str | None = None
    crs_declared: bool = True


def _write_error(path: Path, exc: BaseException) -> ClickmaskError:
    return ClickmaskError(f"cannot write '{path}': {_short(exc)}")


def _int_column(values: list[int | None]) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array([v is None for v in values], dtype=bool)
    return np.array([0 if v is None else int(v) for v in values], dtype=np.int64), mask


def write_vector(path: Path, fmt: str, layer: VectorLayer) -> list[Path]:
    """Write ``layer`` as ``fmt`` (a :data:`GEO_FORMATS` name) to ``path`` atomically; return the files."""
    import shapely
    from pyogrio.raw import write

    driver, _suffix = GEO_FORMATS[fmt]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    geometry = np.array([shapely.to_wkb(g) for g in layer.geometries], dtype=object)
    cat_ids, cat_mask = _int_column(layer.cat_ids)
    object_ids, object_mask = _int_column(layer.object_ids)
    field_data = [np.array(layer.categories, dtype=object), cat_ids, object_ids, np.array(layer.images, dtype=object)]
    field_mask = [None, cat_mask, object_mask, None]
    temp = Path(tempfile.mkdtemp(prefix=f".{target.name[:100]}.tmp-", dir=target.parent))
    try:
        try:
            with warnings.catch_warnings():  # pyogrio warns of a missing CRS: the export's own warning says it
                warnings.simplefilter("ignore")
                write(str(temp / target.name), geometry, field_data, list(FIELDS), field_mask=field_mask,
                      layer=target.stem, driver=driver, geometry_type="MultiPolygon", crs=layer.crs,
                      encoding="UTF-8" if fmt == "shapefile" else None)
        except Exception as exc:  # noqa: BLE001 - GDAL write errors
            raise _write_error(target, exc) from None
        return _move_into_place(temp, target, fmt)
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _move_into_place(temp: Path, target: Path, fmt: str) -> list[Path]:
    written = sorted(temp.iterdir(), key=lambda p: (p.suffix.lower() == ".shp", p.name))
    try:
        for file in written:
            with open(file, "rb+") as handle:
                os.fsync(handle.fileno())
        if fmt == "shapefile":  # companions of an earlier export that this one does not have
            for suffix in _SHAPEFILE_SUFFIXES:
                old = target.with_suffix(suffix)
                if not (temp / old.name).exists():
                    old.unlink(missing_ok=True)
        moved = []
        for file in written:
            os.replace(file, target.parent / file.name)
            moved.append(target.parent / file.name)
    except OSError as exc:
        raise _write_error(target, exc) from None
    return moved


# --------------------------------------------------------------------------- #
# Export
# --------------------------------------------------------------------------- #
def _raster_info(image_root: Path | None, img: ImageAnnotation) -> Any:
    """The image's RasterInfo when it is a georeferenced raster in ``image_root``, else None."""
    if image_root is None:
        return None
    from clickmask.io.rasters import is_georeferenced_tiff, read_info

    path = Path(image_root) / img.file_name
    if not is_georeferenced_tiff(path):
        return None
    info = read_info(path)
    if (info.width, info.height) != (img.width, img.height):
        raise ClickmaskError(f"image '{path}' is {info.width}x{info.height} but its annotation says "
                             f"{img.width}x{img.height} (WxH)")
    return info


def export_geo(
    annotations: AnnotationSet,
    fmt: str,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float = 0.0,
    *,
    crs: str | None = None,
) -> ExportResult:
    """Write one ``fmt`` vector file per image (see the module docstring); ``crs`` None keeps the raster's."""
    if fmt not in GEO_FORMATS:
        raise ClickmaskError(f"unknown GIS format {fmt!r}; use one of {', '.join(GEO_FORMATS)}")
    if crs is not None:
        _crs(crs, "export")
    out = Path(out_dir)
    result = ExportResult(fmt)
    names = {c.id: c.name for c in annotations.categories}
    suffix = GEO_FORMATS[fmt][1]
    pixel_images: list[str] = []
    for img, stem in zip(annotations.images, output_stems(annotations)):
        info = _raster_info(image_root, img)
        if info is None:
            if crs is not None:
                result.warnings.append(f"{fmt}: image '{img.file_name}' has no coordinate reference system, "
                                       f"so it was left out of the {crs} export")
                continue
            pixel_images.append(img.file_name)
        layer = VectorLayer()
        for number, i in enumerate(drawing_order(img), start=1):
            inst = img.instances[i]
            kept = window_of(inst, result)  # a large image's object: traced on its window, then placed
            if kept is None:
                continue
            geometry = mask_geometry(kept[0], tolerance, kept[1])
            if geometry is None:
                result.skipped_empty += 1
                continue
            layer.geometries.append(geometry)
            layer.categories.append(names[inst.category_id])
            layer.cat_ids.append(int(inst.category_id))
            layer.object_ids.append(int(inst.id) if inst.id is not None else number)
            layer.images.append(img.file_name)
        where = f"image '{img.file_name}'"
        if info is not None:
            layer.geometries = [_affine(g, info.transform) for g in layer.geometries]
            layer.crs = info.crs_wkt
            if crs is not None:
                layer.geometries = reproject(layer.geometries, info.crs_wkt, crs, where)
                layer.crs = _crs(crs, where).to_wkt()
        layer.geometries = _oriented(layer.geometries)
        result.files.extend(write_vector(out / f"{stem}{suffix}", fmt, layer))
    if pixel_images:
        why = "" if image_root is not None else " (no image folder was given)"
        shown = ", ".join(f"'{n}'" for n in pixel_images[:3]) + (" ..." if len(pixel_images) > 3 else "")
        result.warnings.append(f"{fmt}: {len(pixel_images)} image(s) without a coordinate reference system{why} "
                               f"were written in pixel coordinates (x right, y down): {shown}")
    return result


# --------------------------------------------------------------------------- #
# Reading and import
# --------------------------------------------------------------------------- #
def read_vector(path: Path, layer: str | int | None = None) -> VectorLayer:
    """The features of a vector file: shapely geometries, the attributes of :data:`FIELDS` where present, the CRS.

    Raises a one-line ClickmaskError for a missing or unreadable file.
    """
    import shapely
    from pyogrio.raw import read

    source = Path(path)
    if not source.exists():
        raise ClickmaskError(f"cannot read vector file '{source}': file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            meta, _fids, geometry, field_data = read(str(source), layer=layer)
    except Exception as exc:  # noqa: BLE001 - DataSourceError, DataLayerError, GDAL errors
        raise ClickmaskError(f"cannot read vector file '{source}': {_short(exc)}") from None
    count = len(geometry) if geometry is not None else 0
    columns = {str(name): values for name, values in zip(meta["fields"], field_data)}

    def column(name: str) -> list[Any]:
        values = columns.get(name)
        if values is None:
            return [None] * count
        return [None if v is None or (isinstance(v, float) and np.isnan(v)) else v for v in values.tolist()]

    return VectorLayer(
        crs_declared=not _undeclared_geojson_crs(source, meta),
        geometries=[None if g is None else shapely.from_wkb(g) for g in (geometry if count else [])],
        categories=[None if v is None else str(v) for v in column("category")],
        cat_ids=[None if v is None else int(v) for v in column("cat_id")],
        object_ids=[None if v is None else int(v) for v in column("object_id")],
        images=[None if v is None else str(v) for v in column("image")],
        crs=meta.get("crs") or None,
    )


def _undeclared_geojson_crs(source: Path, meta: dict[str, Any]) -> bool:
    """True for a GeoJSON file without a ``crs`` member (GDAL then reports WGS84, as RFC 7946 says)."""
    if source.suffix.lower() not in (".geojson", ".json") or meta.get("crs") != "EPSG:4326":
        return False
    import json

    try:
        with open(source, encoding="utf-8-sig") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "crs" not in data


def _feature_box(polygons: list[Polygon], width: int, height: int) -> tuple[int, int, int, int] | None:
    """The pixel box ``(x0, y0, x1, y1)`` of the polygons, cut to the raster; None when outside it."""
    points = np.concatenate([p.exterior for p in polygons])
    x0, y0 = (max(0, int(np.floor(v))) for v in points.min(axis=0))
    x1, y1 = int(np.ceil(points[:, 0].max())), int(np.ceil(points[:, 1].max()))
    x1, y1 = min(width, x1), min(height, y1)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _pixel_polygons(geometry: Any) -> list[Polygon]:
    """Polygon parts of a shapely geometry (pixel coordinates) as clickmask Polygons; others dropped."""
    import shapely

    parts = shapely.get_parts(geometry)
    polygons: list[Polygon] = []
    for part in parts:
        if part.geom_type == "MultiPolygon" or part.geom_type == "GeometryCollection":
            polygons.extend(_pixel_polygons(part))
        elif part.geom_type == "Polygon" and not part.is_empty:
            exterior = np.asarray(part.exterior.coords, dtype=np.float64)[:-1]
            holes = [np.asarray(r.coords, dtype=np.float64)[:-1] for r in part.interiors]
            polygons.append(Polygon(exterior, holes))
    return polygons


def import_vector(source: Path, raster: Any, file_name: str | None = None) -> AnnotationSet:
    """Rasterise the polygons of a vector file onto a raster: an AnnotationSet with one image.

    ``raster`` is a :class:`~clickmask.io.rasters.RasterInfo` or a path to a
    raster (read with :func:`~clickmask.io.rasters.read_info`); ``file_name``
    the image's name in the result (default: the raster's file name).
    Categories come from the ``category`` / ``cat_id`` attributes (an id is
    made up for a name without one; features without a name get no category);
    the ``object_id`` attribute is kept as the instance's id. Features that
    give no pixel (points, lines, polygons outside the raster) are skipped.
    """
    from clickmask.io.rasters import RasterInfo, read_info

    info = raster if isinstance(raster, RasterInfo) else read_info(raster)
    name = file_name or Path(info.path).name
    layer = read_vector(Path(source))
    where = f"vector file '{source}'"
    geometries = layer.geometries
    if not info.georeferenced and not layer.crs_declared:
        layer.crs = None  # a GeoJSON without a crs member on a raster without a CRS: pixel coordinates
    if layer.crs is not None:
        if not info.georeferenced:
            raise ClickmaskError(f"{where} is in {_short(layer.crs, 40)} but raster '{info.path}' has no coordinate "
                                 "reference system, so its features cannot be placed on it")
        geometries = reproject(geometries, layer.crs, info.crs_wkt, where)
    inverse = _inverse(info.transform, f"raster '{info.path}'")
    categories: dict[str, Category] = {}
    used_ids = {i for i in layer.cat_ids if i is not None and i >= 1}
    next_id = 1
    image = ImageAnnotation(file_name=name, width=info.width, height=info.height, instances=[])
    windowed = is_large(info.width, info.height)  # a large raster's features: masks of their boxes only
    for k, geometry in enumerate(geometries):
        if geometry is None:
            continue
        polygons = _pixel_polygons(_affine(geometry, inverse))
        if not polygons:
            continue
        offset = _feature_box(polygons, info.width, info.height) if windowed else None
        if offset is None and windowed:
            continue  # outside the raster
        if offset is None:
            mask = polygons_to_mask(polygons, (info.height, info.width))
        else:
            x0, y0, x1, y1 = offset
            shift = np.array([float(x0), float(y0)])
            mask = polygons_to_mask([Polygon(p.exterior - shift, [h - shift for h in p.holes]) for p in polygons],
                                    (y1 - y0, x1 - x0))
            offset = (x0, y0)
        if not mask.any():
            continue
        category_id = None
        cat_name = layer.categories[k]
        if cat_name:
            if cat_name not in categories:
                wanted = layer.cat_ids[k]
                if wanted is None or wanted < 1 or any(c.id == wanted for c in categories.values()):
                    while next_id in used_ids or any(c.id == next_id for c in categories.values()):
                        next_id += 1
                    wanted = next_id
                categories[cat_name] = Category(id=int(wanted), name=cat_name)
            category_id = categories[cat_name].id
        image.instances.append(Instance(mask=mask, category_id=category_id, z_order=len(image.instances),
                                        id=layer.object_ids[k], offset=offset))
    return AnnotationSet(categories=sorted(categories.values(), key=lambda c: c.id), images=[image])
