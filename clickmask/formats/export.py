"""Export an :class:`AnnotationSet` to one of the supported formats.

=================  ==========================================================
``fmt``            what is written under ``out_dir``
=================  ==========================================================
``coco``           ``annotations.json`` (COCO instances; polygons, or RLE for
                   masks with holes) -- :mod:`clickmask.formats.coco`
``voc``            VOC2012 layout: ``JPEGImages/``, ``SegmentationClass/``,
                   ``SegmentationObject/`` (grayscale PNGs), ``Annotations/``,
                   ``ImageSets/Segmentation/``, ``labels.txt`` --
                   :mod:`clickmask.formats.voc`
``voc-color``      the same with VOC's own palette PNGs
``instance-png``   ``instances/<stem>/<k>_<category>.png`` (0/255) and
                   ``instances/index.json`` -- :mod:`clickmask.formats.instance_png`
``labelme``        ``<stem>.json`` per image -- :mod:`clickmask.formats.labelme`
``yolo-seg``       Ultralytics layout: ``images/<split>/``, ``labels/<split>/``,
                   ``data.yaml`` -- :mod:`clickmask.formats.yolo`
``geojson``        ``<stem>.geojson`` per image, in the raster's CRS (or
                   ``crs``) -- :mod:`clickmask.formats.geo`
``shapefile``      ``<stem>.shp`` (with ``.shx``, ``.dbf``, ``.prj``, ``.cpg``)
``gpkg``           ``<stem>.gpkg`` (GeoPackage)
=================  ==========================================================

``<stem>`` is an image's ``file_name`` without its suffix, sub-folders kept
(``sub/a.jpg`` -> ``sub/a``); two images with the same stem (``a.jpg`` and
``a.png``, or names differing only in case) are an error. Every file is
written atomically (a reader sees the old file or the complete new one);
files of earlier exports are not removed. The annotations are validated first
(:func:`~clickmask.formats.annotations.validate`); with ``image_root`` every
image must exist there with its annotated size, and ``voc``, ``voc-color``
and ``yolo-seg`` put the images into the dataset (hard links, copies where
links are impossible, or converted files: see
:func:`~clickmask.formats._common.place_image`). ``tolerance`` (pixels,
Douglas-Peucker) simplifies the polygons of ``coco``, ``labelme`` and
``yolo-seg``; 0 keeps the exact pixel outlines, None the format's default
(:data:`DEFAULT_TOLERANCE`). ``bundle`` marks an export that will be moved as a
whole (zipped): no absolute paths in it (``yolo-seg``'s ``data.yaml`` has no
``path``) and ``labelme`` places the images next to the JSON files. ``crs`` (GIS formats
only) reprojects the map coordinates, e.g. ``"EPSG:4326"``.

Instances without a category are handled per format
(:data:`~clickmask.formats._common.UNASSIGNED_POLICY`): left out (``coco``,
``labelme``, ``yolo-seg``), painted void (``voc``, ``voc-color``) or kept
(``instance-png``); :class:`ExportResult` counts them and words it for the user
(``unassigned_message``). Empty instances and holes a format cannot hold are
counted too, and every such line is logged as a warning on the
``clickmask.formats`` logger.
"""

from __future__ import annotations

from pathlib import Path

from clickmask.errors import ClickmaskError
from clickmask.formats._common import ExportResult, check_image_files, count_unassigned, logger
from clickmask.formats.annotations import AnnotationSet, validate
from clickmask.formats.coco import export_coco
from clickmask.formats.geo import GEO_FORMATS, export_geo
from clickmask.formats.instance_png import export_instance_png
from clickmask.formats.labelme import export_labelme
from clickmask.formats.voc import export_voc
from clickmask.formats.yolo import export_yolo_seg
from clickmask.geometry.polygons import _check_tolerance

__all__ = ["FORMATS", "DEFAULT_TOLERANCE", "ExportResult", "export", "export_with_report"]

FORMATS: tuple[str, ...] = ("coco", "voc", "voc-color", "instance-png", "labelme", "yolo-seg", *GEO_FORMATS)
"""Export format names accepted by :func:`export`."""


#: Polygon simplification (pixels, Douglas-Peucker) when none is given: COCO keeps the exact pixel
#: outlines (its polygons and RLE then decode to the exported mask); LabelMe and YOLO get outlines
#: within a pixel of them, tens of vertices for an object instead of one per pixel step.
DEFAULT_TOLERANCE: dict[str, float] = {"coco": 0.0, "labelme": 1.0, "yolo-seg": 1.0,
                                       **{fmt: 0.0 for fmt in GEO_FORMATS}}


def export_with_report(
    annotations: AnnotationSet,
    fmt: str,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float | None = None,
    *,
    bundle: bool = False,
    crs: str | None = None,
) -> ExportResult:
    """Like :func:`export`, returning an :class:`ExportResult` (files, counts, warnings)."""
    if fmt not in FORMATS:
        raise ClickmaskError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    if crs is not None and fmt not in GEO_FORMATS:
        raise ClickmaskError(f"a coordinate reference system applies to {', '.join(GEO_FORMATS)} only, not {fmt}")
    tol = _check_tolerance(DEFAULT_TOLERANCE.get(fmt, 0.0) if tolerance is None else tolerance)
    validate(annotations)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ClickmaskError(f"export folder '{out}' is a file, not a folder")
    root = Path(image_root) if image_root is not None else None
    check_image_files(annotations, root)
    if fmt == "coco":
        result = export_coco(annotations, out, tol)
    elif fmt in ("voc", "voc-color"):
        result = export_voc(annotations, out, root, color=fmt == "voc-color")
    elif fmt == "instance-png":
        result = export_instance_png(annotations, out)
    elif fmt == "labelme":
        result = export_labelme(annotations, out, root, tol, bundle=bundle)
    elif fmt in GEO_FORMATS:
        result = export_geo(annotations, fmt, out, root, tol, crs=crs)
    else:
        result = export_yolo_seg(annotations, out, root, tol, bundle=bundle)
    count_unassigned(annotations, result)
    result.summarise()
    for line in result.warnings:
        logger.warning(line)
    return result


def export(
    annotations: AnnotationSet,
    fmt: str,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float | None = None,
    *,
    bundle: bool = False,
    crs: str | None = None,
) -> list[Path]:
    """Export ``annotations`` as ``fmt`` (one of :data:`FORMATS`) into ``out_dir``; return the written files.

    See the module docstring for the folder layout of each format, ``image_root``,
    ``tolerance``, ``bundle`` and ``crs``. Skipped instances are logged as warnings; use
    :func:`export_with_report` to get them. Raises :class:`ClickmaskError` for
    an unknown format, invalid annotations, missing or mismatched images (with
    ``image_root``) and unwritable files.
    """
    return export_with_report(annotations, fmt, out_dir, image_root, tolerance, bundle=bundle, crs=crs).files
