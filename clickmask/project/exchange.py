"""Export a project with :mod:`clickmask.formats` and import annotations into it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from clickmask.errors import ClickmaskError, ImageReadError
from clickmask.formats import (
    FORMATS,
    AnnotationSet,
    Category,
    ExportResult,
    ImageAnnotation,
    Instance,
    export_with_report,
    import_coco,
    import_labelme,
)
from clickmask.formats.geo import GEO_FORMATS, import_vector, read_vector
from clickmask.io.images import image_size, load_image
from clickmask.geometry import decode_rle_window
from clickmask.io.pyramid import is_large
from clickmask.project.masks import decode_mask
from clickmask.project.store import ProjectStore


def ensure_size(store: ProjectStore, image: dict[str, Any]) -> dict[str, Any]:
    """Fill in an image's width/height (or error) by decoding it once."""
    if image["width"] is None and image["error"] is None:
        try:
            h, w = load_image(store.image_path(image["id"])).shape[:2]
            store.set_image_info(image["id"], w, h, None)
        except ImageReadError as exc:
            store.set_image_info(image["id"], None, None, str(exc))
        image = store.image(image["id"])
    return image


def annotation_set(store: ProjectStore, only_annotated: bool = False) -> Any:
    """The project as a :class:`clickmask.formats.AnnotationSet` (unreadable images left out)."""
    cats = [Category(id=c["id"], name=c["name"], color=c["color"]) for c in store.list_categories()]
    images = []
    for image in store.list_images():
        if only_annotated and image["instances"] == 0:
            continue
        image = ensure_size(store, image)
        if image["error"]:
            continue
        windowed = is_large(image["width"], image["height"])  # objects kept as their boxes, not image-sized
        instances = [
            Instance(mask=_window(i) if windowed else decode_mask(i["rle"]), category_id=i["category_id"],
                     z_order=i["z_order"], id=i["id"], attributes=dict(i["attributes"] or {}),
                     offset=_box(i)[:2] if windowed else None)
            for i in store.list_instances(image["id"])
        ]
        images.append(ImageAnnotation(file_name=image["path"], width=image["width"], height=image["height"],
                                      instances=instances))
    return AnnotationSet(categories=cats, images=images)


def _box(instance: dict[str, Any]) -> tuple[int, int, int, int]:
    """The stored object's pixel box ``(x0, y0, x1, y1)`` (at least one pixel)."""
    x, y, w, h = instance["bbox"]
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    return x0, y0, max(x0 + 1, int(np.ceil(x + w))), max(y0 + 1, int(np.ceil(y + h)))


def _window(instance: dict[str, Any]) -> np.ndarray:
    """The stored object's mask on its box (:func:`_box`), decoded without an image-sized mask."""
    return decode_rle_window(instance["rle"], _box(instance))


def export_project_report(store: ProjectStore, fmt: str, out_dir: Path, tolerance: float | None = None,
                          *, bundle: bool = False, crs: str | None = None) -> ExportResult:
    """Write the project in format ``fmt`` to ``out_dir``; returns the :class:`ExportResult`.

    The project folder is the image root: ``voc``, ``voc-color`` and
    ``yolo-seg`` link (or copy) the images into the export, and so does
    ``labelme`` with ``bundle``. ``tolerance`` None is the format's default.
    The GIS formats (``geojson``, ``shapefile``, ``gpkg``) read each GeoTIFF's
    CRS and geotransform from the project folder; ``crs`` reprojects them.
    A folder this export creates is removed again if the export fails (a full
    disk, say), so no half-written export is left to be mistaken for a whole one.
    """
    if fmt not in FORMATS:
        raise ClickmaskError(f"unknown export format {fmt!r}: use one of {', '.join(sorted(FORMATS))}")
    out = Path(out_dir)
    created = not out.exists()
    try:
        return export_with_report(annotation_set(store), fmt, out, image_root=store.root, tolerance=tolerance,
                                  bundle=bundle, crs=crs)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def export_project(store: ProjectStore, fmt: str, out_dir: Path, tolerance: float | None = None) -> list[Path]:
    """Like :func:`export_project_report`; returns the written files."""
    return export_project_report(store, fmt, out_dir, tolerance).files


def guess_format(source: Path) -> str:
    """``coco`` for a JSON file with ``annotations`` and ``images``, a GIS format by suffix, else ``labelme``."""
    suffix = source.suffix.lower()
    for fmt, (_driver, fmt_suffix) in GEO_FORMATS.items():
        if suffix == fmt_suffix:
            return fmt
    if source.is_file() and source.suffix.lower() == ".json":
        try:
            data = json.loads(source.read_text(encoding="utf-8"))
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ClickmaskError(f"{source}: not a JSON file ({exc})") from None
        if isinstance(data, dict) and "annotations" in data and "images" in data:
            return "coco"
    return "labelme"


def _vector_target(store: ProjectStore, source: Path) -> dict[str, Any]:
    """The project image a vector file belongs to: its features' ``image`` attribute, else the same stem.

    A GIS export writes ``<stem>.geojson`` (``.shp``, ``.gpkg``) for the image
    ``<stem>.<ext>`` with ``image`` = the image's file name, so its files find
    their image again.
    """
    images = store.list_images()
    by_path = {i["path"]: i for i in images}
    named = {n for n in read_vector(source).images if n}
    if len(named) == 1 and next(iter(named)) in by_path:
        return by_path[next(iter(named))]
    stem = source.with_suffix("").name
    matches = [i for i in images if Path(i["path"]).with_suffix("").name == stem]
    if len(matches) != 1:
        what = "no project image" if not matches else f"{len(matches)} project images"
        raise ClickmaskError(f"vector file '{source}': {what} named '{stem}.*' (rename the file after its image); "
                             "nothing was imported")
    return matches[0]


def import_annotations(store: ProjectStore, source: Path, fmt: str) -> dict[str, int]:
    """Add the instances of a COCO JSON, LabelMe folder/file or GIS vector file to the matching project images.

    A GIS vector file (``geojson``, ``shapefile``, ``gpkg``) goes onto one image
    (see :func:`_vector_target`), reprojected to its CRS and rasterised
    (:func:`clickmask.formats.geo.import_vector`).

    All or nothing: a declared image size that is not the real one is an error
    before anything is written, and the instances are added in one transaction.
    """
    if fmt == "coco":
        data = import_coco(Path(source))
    elif fmt == "labelme":
        data = import_labelme(Path(source), image_root=store.root)
    elif fmt in GEO_FORMATS:
        image = _vector_target(store, Path(source))
        data = import_vector(Path(source), store.image_path(image["id"]), file_name=image["path"])
    else:
        raise ClickmaskError(f"unknown import format {fmt!r}: use coco, labelme, {', '.join(GEO_FORMATS)}")
    by_path = {i["path"]: i for i in store.list_images()}
    items, skipped = [], 0
    for ann in data.images:  # every size is checked before anything is written
        image = by_path.get(ann.file_name)
        if image is None:
            skipped += len(ann.instances)
            continue
        width, height = _real_size(store, image)
        if (width, height) != (ann.width, ann.height):
            raise ClickmaskError(f"{source}: {ann.file_name} is {width}x{height} but the annotations say "
                                 f"{ann.width}x{ann.height} (WxH); nothing was imported")
        for inst in sorted(ann.instances, key=lambda i: i.z_order):
            if inst.mask.any():
                items.append((image["id"], inst.mask, inst.category_id, dict(inst.attributes or {}), inst.offset))
    cat_ids: dict[int, int] = {}
    existing = {c["name"]: c["id"] for c in store.list_categories()}
    for cat in data.categories:
        if cat.name not in existing:
            existing[cat.name] = store.add_category(cat.name, cat.color or None)["id"]
        cat_ids[cat.id] = existing[cat.name]
    store.add_instances([(i, m, cat_ids.get(c) if c is not None else None, a, o) for i, m, c, a, o in items])
    return {"added": len(items), "skipped": skipped}


def _real_size(store: ProjectStore, image: dict[str, Any]) -> tuple[int, int]:
    """(width, height) of a project image, read from its header when not known yet."""
    if image["width"] is None:
        try:
            width, height = image_size(store.image_path(image["id"]))
        except ImageReadError as exc:
            raise ClickmaskError(f"cannot import onto {image['path']}: {exc}") from None
        store.set_image_info(image["id"], width, height, None)
        return width, height
    return image["width"], image["height"]
