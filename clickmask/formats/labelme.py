"""LabelMe JSON: one file per image.

Export layout::

    <out_dir>/<stem>.json    (<stem> = image file name without suffix, sub-folders kept)

Each file holds ``version``, ``flags`` ({}), ``shapes``, ``imagePath``,
``imageData`` (null), ``imageHeight``, ``imageWidth`` and a ``clickmask`` object
marking the conventions below (LabelMe keeps unknown keys when it saves).
``imagePath`` is relative to the JSON file: with an ``image_root`` it points at
``<image_root>/<file_name>``; without one it is the image's base name, i.e. the
JSON files are meant to sit next to the images (export into the image root to
get LabelMe's usual layout). A bundle (an export meant to be moved, e.g. zipped)
with an ``image_root`` holds the images too, each next to its JSON file
(hard-linked, or copied), and ``imagePath`` is its base name.

Coordinates. LabelMe (and PIL) put pixel *centres* at integer coordinates; the
geometry of clickmask puts pixel *corners* at integers (COCO convention). A
clickmask point ``(x, y)`` is written as ``(x - 0.5, y - 0.5)`` and read back
with ``+ 0.5``. Exported outlines run along pixel edges, so their vertices sit
at half-integers in the file, and clickmask reads them back exactly (pixel-
centre sampling). LabelMe's own tools (``shape_to_mask``: PIL fill plus
outline) see a slightly larger mask: every pixel of the part plus some of the
pixels touching it (never more than one pixel beyond its outline), as for any
outline drawn between pixel centres; holes, which LabelMe cannot express,
they see filled.

Instances and holes. Each exported instance gets ``group_id`` = its instance
number (1-based rank in drawing order, increasing z_order; shapes are listed in
that order). An instance is written as ``polygon`` shapes, one per part, with
the same ``label`` and ``group_id``, their outlines simplified with
``tolerance`` (1 pixel by default: tens of points for an object, not one per
pixel step). LabelMe polygons cannot have holes, so an instance with holes (that
the simplification keeps) is written as one ``mask`` shape instead, which
LabelMe (5.3 and later) shows and converts with its holes: ``points`` = the
top-left and bottom-right pixels of its box (pixel indices, inclusive), ``mask``
= a base64 PNG of the box (8-bit, 1 = object), exactly the instance's pixels.
LabelMe can paint over or delete a mask shape, not move its vertices. Instances
without a category and empty ones are skipped (counted).

Import (:func:`import_labelme`): shapes are grouped into instances by
``(label, group_id)`` (a shape without ``group_id`` is an instance of its own);
``polygon``, ``rectangle``, ``circle`` and ``mask`` shapes are read, other
shape types (points, lines) are skipped with a warning. A polygon with
``"flags": {"hole": true}`` (how earlier clickmask versions wrote holes) cuts
the last preceding outline of its group. Categories are created from
the labels in first-seen order (ids 1, 2, ...); an empty label gives an
unassigned instance. Rasterisation: files written by clickmask (with the
``clickmask`` key) are read exactly by pixel-centre sampling; other files the
way LabelMe does (PIL fill plus outline), unless ``raster`` says otherwise.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from clickmask.errors import ClickmaskError
from clickmask.formats._common import (
    ExportResult,
    as_int,
    declared_size_problem,
    exportable,
    far_outside_problem,
    new_image,
    instance_polygons,
    link_image,
    logger,
    output_stems,
    read_json,
    write_json,
)
from clickmask.formats.annotations import (
    AnnotationSet,
    Category,
    Instance,
    check_file_name,
    drawing_order,
)
from clickmask.geometry import Polygon, polygons_to_mask

__all__ = ["export_labelme", "import_labelme", "LABELME_VERSION", "HOLE_FLAG"]

LABELME_VERSION = "5.4.1"
"""The LabelMe file version written."""

HOLE_FLAG = "hole"
"""Shape flag marking a hole polygon: ``"flags": {"hole": true}``."""

_MARKER = {
    "version": 2,
    "coordinates": "pixel centres at integer coordinates (LabelMe convention)",
    "holes": "an instance with holes is one 'mask' shape (LabelMe 5.3 and later)",
}
_RASTER_MODES = ("auto", "exact", "labelme")


# --------------------------------------------------------------------------- #
# Export
# --------------------------------------------------------------------------- #
def _shape(label: str, ring: np.ndarray, group_id: int) -> dict[str, Any]:
    """A polygon shape; ``ring`` in clickmask's pixel-corner coordinates."""
    points = [[x - 0.5, y - 0.5] for x, y in ring.tolist()]
    return {
        "label": label,
        "points": points,
        "group_id": group_id,
        "description": "",
        "shape_type": "polygon",
        "flags": {},
    }


def _mask_shape(label: str, mask: np.ndarray, group_id: int) -> dict[str, Any]:
    """A ``mask`` shape of an (H, W) bool mask with pixels: its box and the box's pixels as a PNG."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
    crop = mask[r0 : r1 + 1, c0 : c1 + 1].astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(crop).save(buffer, format="PNG")
    return {
        "label": label,
        "points": [[c0, r0], [c1, r1]],
        "group_id": group_id,
        "description": "",
        "shape_type": "mask",
        "flags": {},
        "mask": base64.b64encode(buffer.getvalue()).decode("ascii"),
    }


def _image_path(file_name: str, json_path: Path, image_root: Path | None) -> str:
    if image_root is None:
        return file_name.rsplit("/", 1)[-1]
    target = os.path.abspath(Path(image_root) / file_name)
    try:
        rel = os.path.relpath(target, os.path.abspath(json_path.parent))
    except ValueError:  # different drives on Windows
        rel = target
    return rel.replace(os.sep, "/")


def export_labelme(
    annotations: AnnotationSet,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float = 1.0,
    *,
    bundle: bool = False,
) -> ExportResult:
    """Write one LabelMe JSON per image (see the module docstring).

    With ``bundle`` and an ``image_root``, each image is also placed next to its
    JSON file (hard link, or copy) and ``imagePath`` is its base name, so the
    folder can be moved (zipped) as a whole.
    """
    out = Path(out_dir)
    result = ExportResult("labelme")
    names = {c.id: c.name for c in annotations.categories}
    for img, stem in zip(annotations.images, output_stems(annotations)):
        json_path = out / f"{stem}.json"
        shapes: list[dict[str, Any]] = []
        for number, i in enumerate(drawing_order(img), start=1):
            inst = img.instances[i]
            mask = exportable(inst, result, img)
            if mask is None:
                continue
            label = names[inst.category_id]  # type: ignore[index]
            polys = instance_polygons(mask, tolerance)
            if any(poly.holes for poly in polys):
                shapes.append(_mask_shape(label, mask, number))
                continue
            shapes.extend(_shape(label, poly.exterior, number) for poly in polys if len(poly.exterior) >= 3)
        if bundle and image_root is not None:
            source = Path(image_root) / img.file_name
            image_path = link_image(source, out / f"{stem}{source.suffix}", result).name
        else:
            image_path = _image_path(img.file_name, json_path, image_root)
        data = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": shapes,
            "imagePath": image_path,
            "imageData": None,
            "imageHeight": img.height,
            "imageWidth": img.width,
            "clickmask": _MARKER,
        }
        write_json(json_path, data, result, indent=2)
    return result


# --------------------------------------------------------------------------- #
# Import
# --------------------------------------------------------------------------- #
def _collect(folder_or_files: Any) -> tuple[list[tuple[Path, bool]], Path]:
    """JSON files to read, each with "explicitly named", and the default image root."""
    items = [folder_or_files] if isinstance(folder_or_files, (str, os.PathLike)) else list(folder_or_files)
    if not items:
        raise ClickmaskError("import_labelme: no files or folders given")
    files: list[tuple[Path, bool]] = []
    roots: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*.json")
                if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            files.extend((f, False) for f in found)
            roots.append(os.path.abspath(p))
        elif p.exists():
            files.append((p, True))
            roots.append(os.path.abspath(p.parent))
        else:
            raise ClickmaskError(f"cannot read LabelMe file '{p}': file not found")
    if not files:
        raise ClickmaskError(f"no LabelMe JSON files found in {', '.join(repr(str(i)) for i in items)}")
    root = Path(os.path.commonpath(roots)) if len(roots) > 1 else Path(roots[0])
    return files, root


def _points(shape: dict, where: str, fail) -> np.ndarray:
    pts = shape.get("points")
    if not isinstance(pts, list):
        raise fail(f"{where}: 'points' must be a list of [x, y] pairs")
    for p in pts:
        if not (
            isinstance(p, (list, tuple))
            and len(p) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p)
        ):
            raise fail(f"{where}: 'points' must be a list of [x, y] number pairs, got {p!r}")
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _raster_exact(kind: str, pts: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pixel-centre sampling in LabelMe coordinates (pixel ``[r, c]`` has its centre at ``(c, r)``).

    Polygon: centres inside (see :func:`~clickmask.geometry.polygons_to_mask`);
    rectangle: centres within the corners, borders included; circle: centres
    within the radius.
    """
    if kind == "polygon":
        return polygons_to_mask([Polygon(pts + 0.5)], (h, w))
    out = np.zeros((h, w), dtype=bool)
    if kind == "rectangle":
        (x0, x1), (y0, y1) = np.sort(pts[:, 0]), np.sort(pts[:, 1])
        c0, c1 = max(math.ceil(x0), 0), min(math.floor(x1), w - 1)
        r0, r1 = max(math.ceil(y0), 0), min(math.floor(y1), h - 1)
        if c0 <= c1 and r0 <= r1:
            out[r0 : r1 + 1, c0 : c1 + 1] = True
        return out
    (cx, cy), (px, py) = pts
    radius2 = (px - cx) ** 2 + (py - cy) ** 2
    yy, xx = np.ogrid[:h, :w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= radius2


def _draw_labelme(draw: ImageDraw.ImageDraw, kind: str, pts: np.ndarray) -> None:
    """Draw a shape as LabelMe's tools do: PIL fill with the outline included."""
    if kind == "polygon":
        draw.polygon([tuple(p) for p in pts.tolist()], fill=1, outline=1)
    elif kind == "rectangle":
        (x0, x1), (y0, y1) = np.sort(pts[:, 0]).tolist(), np.sort(pts[:, 1]).tolist()
        draw.rectangle([x0, y0, x1, y1], fill=1, outline=1)
    else:
        (cx, cy), (px, py) = pts.tolist()
        r = math.hypot(px - cx, py - cy)
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=1, outline=1)


def _raster_labelme(kind: str, pts: np.ndarray, h: int, w: int) -> np.ndarray:
    """One shape rasterised as LabelMe's tools do (see :func:`_draw_labelme`)."""
    img = Image.new("L", (w, h), 0)
    _draw_labelme(ImageDraw.Draw(img), kind, pts)
    return np.asarray(img, dtype=np.uint8) > 0


def _mask_part(shape: dict, pts: np.ndarray, h: int, w: int, where: str, fail) -> np.ndarray:
    """The (H, W) bool mask of a ``mask`` shape: its PNG placed at its box (pixel indices, inclusive)."""
    corners = [as_int(v) for v in pts.ravel().tolist()]
    if any(v is None for v in corners):
        raise fail(f"{where}: a mask's points must be whole pixel indices, got {pts.tolist()}")
    (c0, r0), (c1, r1) = np.sort(np.array(corners, dtype=np.int64).reshape(2, 2), axis=0).tolist()
    if c0 < 0 or r0 < 0 or c1 >= w or r1 >= h:
        raise fail(f"{where}: mask box {[[c0, r0], [c1, r1]]} lies outside the {w}x{h} image")
    data = shape.get("mask")
    if not isinstance(data, str):
        raise fail(f"{where}: a mask shape needs 'mask', a base64 PNG")
    try:
        png = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        size = png.size
        if size != (c1 - c0 + 1, r1 - r0 + 1):
            raise fail(f"{where}: mask PNG is {size[0]}x{size[1]} but its box is {c1 - c0 + 1}x{r1 - r0 + 1} (WxH)")
        pixels = np.asarray(png.convert("L")) > 0
    except ClickmaskError:
        raise
    except (binascii.Error, ValueError, OSError) as exc:
        raise fail(f"{where}: 'mask' is not a base64 PNG ({' '.join(str(exc).split())})") from None
    out = np.zeros((h, w), dtype=bool)
    out[r0 : r1 + 1, c0 : c1 + 1] = pixels
    return out


def _instance_mask(
    parts: list[tuple[str, np.ndarray, list[np.ndarray]]], h: int, w: int, exact: bool
) -> np.ndarray:
    """Union over parts of (outline minus its holes); holes are always sampled exactly.

    A ``mask`` part holds its (H, W) bool mask. Parts without holes are
    rasterised together (one polygon pass, or one PIL canvas).
    """
    mask = np.zeros((h, w), dtype=bool)
    batch: list[Polygon] = []
    canvas: Image.Image | None = None
    for kind, pts, holes in parts:
        if kind == "mask":
            mask |= pts & ~polygons_to_mask([Polygon(hp + 0.5) for hp in holes], (h, w)) if holes else pts
        elif not holes and exact and kind == "polygon":
            batch.append(Polygon(pts + 0.5))
        elif not holes and not exact:
            if canvas is None:
                canvas = Image.new("L", (w, h), 0)
            _draw_labelme(ImageDraw.Draw(canvas), kind, pts)
        else:
            part = (_raster_exact if exact else _raster_labelme)(kind, pts, h, w)
            if holes:
                part &= ~polygons_to_mask([Polygon(hp + 0.5) for hp in holes], (h, w))
            mask |= part
    if batch:
        mask |= polygons_to_mask(batch, (h, w))
    if canvas is not None:
        mask |= np.asarray(canvas, dtype=np.uint8) > 0
    return mask


_MIN_POINTS = {"polygon": 3, "rectangle": 2, "circle": 2, "mask": 2}
_NO_AREA = frozenset({"point", "points", "line", "linestrip"})


def _read_file(
    path: Path,
    explicit: bool,
    root: Path,
    raster: str,
    label_ids: dict[str, int],
    warn,
) -> tuple[str, int, int, list[Instance]] | None:
    def fail(problem: str) -> ClickmaskError:
        return ClickmaskError(f"LabelMe file '{path}': {problem}")

    data = read_json(path, "LabelMe file")
    if not isinstance(data, dict) or "shapes" not in data:
        if explicit:
            raise fail("not a LabelMe file (missing key 'shapes')")
        warn(f"skipped '{path}': not a LabelMe file (no 'shapes')")
        return None
    shapes = data["shapes"]
    if not isinstance(shapes, list):
        raise fail("'shapes' must be a list")
    h = as_int(data.get("imageHeight"))
    w = as_int(data.get("imageWidth"))
    if data.get("imageHeight") is None or data.get("imageWidth") is None:
        raise fail("missing 'imageHeight' or 'imageWidth' (the image size)")
    if h is None or w is None or h < 1 or w < 1:
        size = f"{data.get('imageWidth')!r}x{data.get('imageHeight')!r}"
        raise fail(f"image size (imageWidth x imageHeight) must be positive integers, got {size}")
    too_big = declared_size_problem(w, h)
    if too_big:
        raise fail(too_big)
    image_path = data.get("imagePath")
    if not isinstance(image_path, str) or not image_path.strip():
        raise fail("missing or empty 'imagePath'")
    target = os.path.normpath(os.path.join(os.path.abspath(path.parent), image_path.replace("\\", "/")))
    rel = os.path.relpath(target, os.path.abspath(root)).replace(os.sep, "/")
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise fail(f"imagePath {image_path!r} is outside the image root '{root}'; pass image_root")
    try:
        file_name = check_file_name(rel, f"imagePath {image_path!r}")
    except ClickmaskError as exc:
        raise fail(str(exc)) from None

    exact = raster == "exact" or (raster == "auto" and isinstance(data.get("clickmask"), dict))
    # Groups in order of first appearance: key -> (label, [(kind, points, [hole points])]).
    groups: dict[Any, tuple[str, list[tuple[str, np.ndarray, list[np.ndarray]]]]] = {}
    for k, shape in enumerate(shapes):
        where = f"shape {k}"
        if not isinstance(shape, dict):
            raise fail(f"{where} must be an object")
        label = shape.get("label")
        if not isinstance(label, str):
            raise fail(f"{where}: 'label' must be a string, got {label!r}")
        kind = shape.get("shape_type") or "polygon"
        if not isinstance(kind, str):
            raise fail(f"{where}: 'shape_type' must be a string")
        pts = _points(shape, where, fail)
        far = far_outside_problem(pts, w, h)
        if far:
            raise fail(f"{where} ({label!r}): {far}")
        if kind == "rectangle" and len(pts) == 4:
            kind = "polygon"
        if kind not in _MIN_POINTS:
            why = "has no area" if kind in _NO_AREA else "is not supported"
            warn(f"LabelMe file '{path}': {where} ({label!r}): shape_type {kind!r} {why}; skipped")
            continue
        if kind == "polygon" and len(pts) < 3:
            raise fail(f"{where} ({label!r}): a polygon needs at least 3 points, got {len(pts)}")
        if kind != "polygon" and len(pts) != 2:
            raise fail(f"{where} ({label!r}): a {kind} needs 2 points, got {len(pts)}")
        if kind == "mask":
            pts = _mask_part(shape, pts, h, w, f"{where} ({label!r})", fail)
        raw_group = shape.get("group_id")
        group = as_int(raw_group)
        if raw_group is not None and group is None:
            raise fail(f"{where}: 'group_id' must be an integer or null, got {raw_group!r}")
        flags = shape.get("flags")
        hole = isinstance(flags, dict) and flags.get(HOLE_FLAG) is True
        key: Any = (label, group) if group is not None else ("", k, None)
        if hole:
            if kind != "polygon" or key not in groups:
                warn(f"LabelMe file '{path}': {where} is a hole with no outline before it; skipped")
                continue
            groups[key][1][-1][2].append(pts)
            continue
        if key not in groups:
            groups[key] = (label, [])
            if label and label not in label_ids:
                label_ids[label] = len(label_ids) + 1
        groups[key][1].append((kind, pts, []))

    instances: list[Instance] = []
    for label, parts in groups.values():
        mask = _instance_mask(parts, h, w, exact)
        if not mask.any():
            warn(f"LabelMe file '{path}': instance {label!r} covers no pixel of the image; skipped")
            continue
        cid = label_ids[label] if label else None
        instances.append(Instance(mask=mask, category_id=cid, z_order=len(instances)))
    return file_name, w, h, instances


def import_labelme(
    folder_or_files: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    image_root: str | os.PathLike[str] | None = None,
    *,
    raster: str = "auto",
    warnings: list[str] | None = None,
) -> AnnotationSet:
    """Read LabelMe JSON files into an :class:`AnnotationSet`.

    Parameters
    ----------
    folder_or_files : a folder (searched recursively for ``*.json``; JSON files
        that are not LabelMe files are skipped), a JSON file, or a list of both.
    image_root : folder the image file names are made relative to; default: the
        given folder (or the common folder of the given files/folders). An
        ``imagePath`` outside it is an error.
    raster : ``"auto"`` (exact for files written by clickmask, LabelMe's way
        otherwise), ``"exact"`` (pixel-centre sampling) or ``"labelme"`` (PIL
        fill plus outline, as LabelMe's ``shape_to_mask``).
    warnings : if given, skipped shapes and files are appended to it (they are
        always logged to the ``clickmask.formats`` logger).

    Returns images in file order (sorted paths for folders), instances in shape
    order with ``z_order`` 0, 1, ... and categories in first-seen label order.
    Bad content raises a one-line :class:`ClickmaskError` naming the file.
    """
    if raster not in _RASTER_MODES:
        raise ClickmaskError(f"raster must be one of {', '.join(_RASTER_MODES)}, got {raster!r}")

    def warn(message: str) -> None:
        logger.warning(message)
        if warnings is not None:
            warnings.append(message)

    files, default_root = _collect(folder_or_files)
    root = Path(image_root) if image_root is not None else default_root
    label_ids: dict[str, int] = {}
    result = AnnotationSet(categories=[], images=[])
    seen: dict[str, Path] = {}
    for path, explicit in files:
        read = _read_file(path, explicit, root, raster, label_ids, warn)
        if read is None:
            continue
        file_name, w, h, instances = read
        if file_name in seen:
            raise ClickmaskError(
                f"LabelMe file '{path}': image {file_name!r} is also annotated by '{seen[file_name]}'"
            )
        seen[file_name] = path
        img = new_image(file_name, w, h)
        img.instances = instances
        result.images.append(img)
    result.categories = [Category(id=i, name=name) for name, i in label_ids.items()]
    return result
