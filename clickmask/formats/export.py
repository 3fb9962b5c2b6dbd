"""Export an :class:`AnnotationSet` to one of the supported formats.

=================  ==========================================================
``fmt``            files written under ``out_dir``
=================  ==========================================================
``coco``           ``annotations.json`` (COCO instances; polygons, or RLE for
                   masks with holes) -- :mod:`clickmask.formats.coco`
``voc``            ``SegmentationClass/<stem>.png`` (8/16-bit class ids) and
                   ``labels.txt`` -- :mod:`clickmask.formats.voc`
``voc-color``      ``SegmentationClass/<stem>.png`` (palette PNG) and
                   ``labels.txt`` with colours -- :mod:`clickmask.formats.voc`
``instance-png``   ``instances/<stem>/<k>_<category>.png`` (0/255) and
                   ``instances/index.json`` -- :mod:`clickmask.formats.instance_png`
``labelme``        ``<stem>.json`` per image -- :mod:`clickmask.formats.labelme`
``yolo-seg``       ``labels/<stem>.txt`` and ``data.yaml`` -- :mod:`clickmask.formats.yolo`
=================  ==========================================================

``<stem>`` is an image's ``file_name`` without its suffix, sub-folders kept
(``sub/a.jpg`` -> ``sub/a``); two images with the same stem (``a.jpg`` and
``a.png``, or names differing only in case) are an error. Every file is
written atomically (a reader sees the old file or the complete new one);
files of earlier exports are not removed. The annotations are validated first
(:func:`~clickmask.formats.annotations.validate`); with ``image_root`` every
image must exist there with its annotated size. ``tolerance`` (pixels,
Douglas-Peucker) simplifies the polygons of ``coco``, ``labelme`` and
``yolo-seg``; 0 keeps the exact pixel outlines. Instances a format cannot hold
(unassigned, empty, holes in YOLO) are reported as warnings on the
``clickmask.formats`` logger and in :class:`ExportResult`.
"""

from __future__ import annotations

from pathlib import Path

from clickmask.errors import ClickmaskError
from clickmask.formats._common import ExportResult, check_image_files, logger
from clickmask.formats.annotations import AnnotationSet, validate
from clickmask.formats.coco import export_coco
from clickmask.formats.instance_png import export_instance_png
from clickmask.formats.labelme import export_labelme
from clickmask.formats.voc import export_voc, export_voc_color
from clickmask.formats.yolo import export_yolo_seg
from clickmask.geometry.polygons import _check_tolerance

__all__ = ["FORMATS", "ExportResult", "export", "export_with_report"]

FORMATS: tuple[str, ...] = ("coco", "voc", "voc-color", "instance-png", "labelme", "yolo-seg")
"""Export format names accepted by :func:`export`."""


def export_with_report(
    annotations: AnnotationSet,
    fmt: str,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float = 0.0,
) -> ExportResult:
    """Like :func:`export`, returning an :class:`ExportResult` (files, skip counts, warnings)."""
    if fmt not in FORMATS:
        raise ClickmaskError(f"unknown export format {fmt!r}; valid formats: {', '.join(FORMATS)}")
    tol = _check_tolerance(tolerance)
    validate(annotations)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ClickmaskError(f"export folder '{out}' is a file, not a folder")
    check_image_files(annotations, Path(image_root) if image_root is not None else None)
    if fmt == "coco":
        result = export_coco(annotations, out, tol)
    elif fmt == "voc":
        result = export_voc(annotations, out)
    elif fmt == "voc-color":
        result = export_voc_color(annotations, out)
    elif fmt == "instance-png":
        result = export_instance_png(annotations, out)
    elif fmt == "labelme":
        result = export_labelme(annotations, out, image_root, tol)
    else:
        result = export_yolo_seg(annotations, out, tol)
    result.summarise()
    for line in result.warnings:
        logger.warning(line)
    return result


def export(
    annotations: AnnotationSet,
    fmt: str,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float = 0.0,
) -> list[Path]:
    """Export ``annotations`` as ``fmt`` (one of :data:`FORMATS`) into ``out_dir``; return the written files.

    See the module docstring for the folder layout of each format. Skipped
    instances are logged as warnings; use :func:`export_with_report` to get them.
    Raises :class:`ClickmaskError` for an unknown format, invalid annotations,
    missing or mismatched images (with ``image_root``) and unwritable files.
    """
    return export_with_report(annotations, fmt, out_dir, image_root, tolerance).files
