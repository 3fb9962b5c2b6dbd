"""COCO instance segmentation: ``annotations.json``.

Export (``<out_dir>/annotations.json``):

* ``images``: ``id`` (1..N in order), ``file_name`` (relative to the image
  root), ``width``, ``height``.
* ``annotations``: ``id`` (1..M), ``image_id``, ``category_id``,
  ``segmentation``, ``area`` (pixel count of the mask), ``bbox`` (COCO
  ``[x, y, w, h]`` pixel extents of the mask), ``iscrowd`` (0, or 1 when the
  instance has the attribute ``iscrowd`` = 1), plus ``z_order`` and, when not
  empty, ``attributes`` (extra keys COCO readers ignore). Annotations of one
  image are listed in drawing order (increasing z_order).
* ``categories``: ``id``, ``name``, ``supercategory`` (``""``), ``color``.

Segmentation: a list of polygons (one exterior per part, vertices on pixel
corners in COCO's own corner convention, simplified with ``tolerance``) when the
mask has no holes; compressed RLE ``{"size": [h, w], "counts": str}`` when it has
holes (COCO polygons cannot cut holes), when it is a crowd region, or when the
polygons would be degenerate. With ``tolerance=0`` both decode (pycocotools
``annToMask``) to exactly the exported mask.

Instances without a category and empty masks are skipped and counted.

Import (:func:`import_coco`) reads polygons (rasterised by pixel-centre sampling,
the parts merged), compressed or uncompressed RLE and ``iscrowd`` (kept as the
attribute ``iscrowd`` = 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.formats._common import (
    ExportResult,
    as_int,
    declared_size_problem,
    exportable,
    far_outside_problem,
    new_image,
    instance_polygons,
    number,
    read_json,
    write_json,
)
from clickmask.formats.annotations import (
    AnnotationSet,
    Category,
    Instance,
    check_file_name,
    drawing_order,
    parse_color,
)
from clickmask.geometry import Polygon, decode_rle, encode_rle, mask_bbox, mask_to_polygons, polygons_to_mask

__all__ = ["export_coco", "import_coco", "coco_segmentation"]


def coco_segmentation(mask: np.ndarray, tolerance: float = 0.0, *, crowd: bool = False) -> list | dict:
    """COCO ``segmentation`` of an (H, W) bool mask: polygons if it has no holes, else compressed RLE."""
    if crowd:
        return encode_rle(mask)
    exact = mask_to_polygons(mask, 0.0)
    if not exact or any(p.holes for p in exact):
        return encode_rle(mask)
    polys = instance_polygons(mask, tolerance) if tolerance > 0 else exact
    rings = [p.exterior for p in polys]
    if any(len(r) < 3 for r in rings):
        return encode_rle(mask)
    # A ring of exactly 2 points would be read as a bounding box by pycocotools; rings
    # have >= 3 points here, so each flat list has >= 6 numbers.
    return [[number(v) for v in ring.ravel()] for ring in rings]


def export_coco(annotations: AnnotationSet, out_dir: Path, tolerance: float = 0.0) -> ExportResult:
    """Write ``<out_dir>/annotations.json`` (see the module docstring)."""
    result = ExportResult("coco")
    images: list[dict[str, Any]] = []
    anns: list[dict[str, Any]] = []
    for image_id, img in enumerate(annotations.images, start=1):
        images.append({"id": image_id, "file_name": img.file_name, "width": img.width, "height": img.height})
        for i in drawing_order(img):
            inst = img.instances[i]
            mask = exportable(inst, result, img)
            if mask is None:
                continue
            attributes = dict(inst.attributes)
            crowd = attributes.pop("iscrowd", 0) in (1, True)
            ann: dict[str, Any] = {
                "id": len(anns) + 1,
                "image_id": image_id,
                "category_id": int(inst.category_id),  # type: ignore[arg-type]
                "segmentation": coco_segmentation(mask, tolerance, crowd=crowd),
                "area": int(np.count_nonzero(mask)),
                "bbox": mask_bbox(mask),
                "iscrowd": 1 if crowd else 0,
                "z_order": int(inst.z_order),
            }
            if attributes:
                ann["attributes"] = attributes
            anns.append(ann)
    categories = [
        {"id": c.id, "name": c.name, "supercategory": "", **({"color": c.color} if c.color else {})}
        for c in annotations.categories
    ]
    data = {
        "info": {"description": "exported by clickmask", "version": "1.0"},
        "licenses": [],
        "images": images,
        "annotations": anns,
        "categories": categories,
    }
    write_json(Path(out_dir) / "annotations.json", data, result)
    return result


# --------------------------------------------------------------------------- #
# Import
# --------------------------------------------------------------------------- #
def _list_of_dicts(data: dict, key: str, fail) -> list[dict]:
    if key not in data:
        raise fail(f"missing key '{key}'")
    value = data[key]
    if not isinstance(value, list):
        raise fail(f"'{key}' must be a list, got {type(value).__name__}")
    for k, item in enumerate(value):
        if not isinstance(item, dict):
            raise fail(f"{key}[{k}] must be an object, got {type(item).__name__}")
    return value


def _field_int(obj: dict, key: str, where: str, fail, minimum: int | None = None) -> int:
    if key not in obj:
        raise fail(f"{where}: missing '{key}'")
    value = as_int(obj[key])
    if value is None:
        raise fail(f"{where}: '{key}' must be an integer, got {obj[key]!r}")
    if minimum is not None and value < minimum:
        raise fail(f"{where}: '{key}' must be >= {minimum}, got {value}")
    return value


def _polygon_mask(segmentation: list, h: int, w: int, where: str, fail) -> np.ndarray:
    if not segmentation:
        raise fail(f"{where}: empty segmentation")
    polys = []
    for k, flat in enumerate(segmentation):
        if not isinstance(flat, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat
        ):
            raise fail(
                f"{where}: segmentation[{k}] must be a flat list of numbers [x1, y1, x2, y2, ...] "
                "(expected a list of polygons or an RLE object)"
            )
        if len(flat) % 2:
            raise fail(f"{where}: segmentation[{k}] has an odd number of coordinates ({len(flat)})")
        if len(flat) < 6:
            raise fail(
                f"{where}: segmentation[{k}] has {len(flat) // 2} point(s); a polygon needs at least 3"
            )
        ring = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        if not np.all(np.isfinite(ring)):
            raise fail(f"{where}: segmentation[{k}] has non-finite coordinates")
        far = far_outside_problem(ring, w, h)
        if far:
            raise fail(f"{where}: segmentation[{k}]: {far}")
        polys.append(Polygon(ring))
    return polygons_to_mask(polys, (h, w))


def _rle_mask(segmentation: dict, h: int, w: int, where: str, fail) -> np.ndarray:
    size = segmentation.get("size")
    if isinstance(size, list) and len(size) == 2 and [as_int(v) for v in size] != [h, w]:
        raise fail(f"{where}: RLE size {size} does not match the image size [{h}, {w}] (HxW)")
    try:
        return decode_rle(segmentation)
    except ClickmaskError as exc:
        raise fail(f"{where}: {exc}") from None


def import_coco(json_path: Path) -> AnnotationSet:
    """Read a COCO instances file into an :class:`AnnotationSet`.

    Categories keep their ids, names (and ``color`` if present) in file order;
    categories with an id < 1 are dropped when no annotation uses them (some tools
    write a placeholder category 0) and are an error otherwise. Images keep
    their file names (backslashes turned into ``/``) and order; each annotation
    becomes an :class:`Instance` with ``id`` = annotation id, ``z_order`` from the
    ``z_order`` key if present, else its position among its image's annotations,
    ``attributes`` from the ``attributes`` key (plus ``iscrowd`` = 1 for crowd
    regions). Any malformed content raises a one-line :class:`ClickmaskError`
    naming the file and the problem.
    """
    path = Path(json_path)

    def fail(problem: str) -> ClickmaskError:
        return ClickmaskError(f"COCO file '{path}': {problem}")

    data = read_json(path, "COCO file")
    if not isinstance(data, dict):
        raise fail(f"expected a JSON object at the top level, got {type(data).__name__}")
    raw_images = _list_of_dicts(data, "images", fail)
    raw_anns = _list_of_dicts(data, "annotations", fail)
    raw_cats = _list_of_dicts(data, "categories", fail)

    used_cats = {as_int(a.get("category_id")) for a in raw_anns}
    categories: list[Category] = []
    cat_ids: set[int] = set()
    names: set[str] = set()
    for k, c in enumerate(raw_cats):
        cid = _field_int(c, "id", f"categories[{k}]", fail)
        name = c.get("name")
        if not isinstance(name, str) or not name.strip():
            raise fail(f"category {cid}: 'name' must be a non-empty string, got {name!r}")
        if cid < 1:
            if cid in used_cats:
                raise fail(f"category {cid} ({name!r}): ids must be >= 1 (0 is the background)")
            continue
        if cid in cat_ids:
            raise fail(f"category id {cid} is listed twice")
        if name in names:
            raise fail(f"category name {name!r} is listed twice")
        color = c.get("color", "")
        try:
            parse_color(color)
        except ClickmaskError:
            color = ""  # an optional extra key: ignore what is not "#rrggbb"
        categories.append(Category(id=cid, name=name, color=color.lower()))
        cat_ids.add(cid)
        names.add(name)

    result = AnnotationSet(categories=categories, images=[])
    by_id: dict[int, int] = {}
    files: set[str] = set()
    for k, im in enumerate(raw_images):
        iid = _field_int(im, "id", f"images[{k}]", fail)
        where = f"image {iid}"
        if iid in by_id:
            raise fail(f"image id {iid} is listed twice")
        name = im.get("file_name")
        if not isinstance(name, str) or not name:
            raise fail(f"{where}: missing or empty 'file_name'")
        name = name.replace("\\", "/")
        while name.startswith("./"):
            name = name[2:]
        try:
            check_file_name(name, where)
        except ClickmaskError as exc:
            raise fail(str(exc)) from None
        if name in files:
            raise fail(f"{where}: file name {name!r} is listed twice")
        width = _field_int(im, "width", where, fail, minimum=1)
        height = _field_int(im, "height", where, fail, minimum=1)
        too_big = declared_size_problem(width, height)
        if too_big:
            raise fail(f"{where} ({name}): {too_big}")
        by_id[iid] = len(result.images)
        files.add(name)
        result.images.append(new_image(name, width, height))

    ann_ids: set[int] = set()
    for k, a in enumerate(raw_anns):
        aid = _field_int(a, "id", f"annotations[{k}]", fail)
        where = f"annotation {aid}"
        if aid in ann_ids:
            raise fail(f"annotation id {aid} is listed twice")
        ann_ids.add(aid)
        iid = _field_int(a, "image_id", where, fail)
        if iid not in by_id:
            raise fail(f"{where}: image_id {iid} is not in 'images'")
        cid = _field_int(a, "category_id", where, fail)
        if cid not in cat_ids:
            raise fail(f"{where}: category_id {cid} is not in 'categories'")
        img = result.images[by_id[iid]]
        if "segmentation" not in a:
            raise fail(f"{where}: missing 'segmentation'")
        seg = a["segmentation"]
        if isinstance(seg, list):
            mask = _polygon_mask(seg, img.height, img.width, where, fail)
        elif isinstance(seg, dict):
            mask = _rle_mask(seg, img.height, img.width, where, fail)
        else:
            raise fail(f"{where}: 'segmentation' must be a list of polygons or an RLE object")
        attributes = a.get("attributes")
        attributes = dict(attributes) if isinstance(attributes, dict) else {}
        if as_int(a.get("iscrowd", 0)) == 1:
            attributes["iscrowd"] = 1
        z = as_int(a.get("z_order"))
        if z is None:
            z = len(img.instances)
        img.instances.append(Instance(mask=mask, category_id=cid, z_order=z, id=aid, attributes=attributes))
    return result
