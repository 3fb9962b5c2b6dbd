"""Converting masks to the stored fields (RLE, polygons, area, bbox) and back; brush strokes."""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.geometry import (Polygon, decode_rle, decode_rle_window, encode_rle, encode_rle_window, mask_bbox,
                                mask_to_polygons, polygons_to_mask, rle_bbox)


def polygons_to_json(polygons: Sequence[Polygon]) -> list[dict[str, Any]]:
    """Polygons as JSON: ``[{"exterior": [[x, y], ...], "holes": [[[x, y], ...], ...]}]``."""
    return [
        {"exterior": p.exterior.tolist(), "holes": [h.tolist() for h in p.holes]} for p in polygons
    ]


def polygons_from_json(data: Any) -> list[Polygon]:
    """Parse :func:`polygons_to_json` output; raises ClickmaskError on bad input."""
    if not isinstance(data, list):
        raise ClickmaskError("polygons: expected a list of {exterior, holes} objects")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or "exterior" not in item:
            raise ClickmaskError(f"polygons[{i}]: expected an object with 'exterior'")
        ext = np.asarray(item["exterior"], dtype=np.float64)
        if ext.ndim != 2 or ext.shape[0] < 3 or ext.shape[1] != 2:
            raise ClickmaskError(f"polygons[{i}]: exterior needs at least 3 [x, y] points")
        holes = [np.asarray(h, dtype=np.float64) for h in item.get("holes", [])]
        holes = [h for h in holes if h.ndim == 2 and h.shape[0] >= 3 and h.shape[1] == 2]
        out.append(Polygon(ext, holes))
    return out


def mask_fields(mask: np.ndarray, tolerance: float = 1.0, offset: tuple[int, int] | None = None,
                size: tuple[int, int] | None = None) -> dict[str, Any]:
    """The stored fields of a mask: exact RLE, (simplified) polygons, area and bbox.

    With ``offset`` ``(x0, y0)`` and ``size`` ``(H, W)``, ``mask`` is a window of
    an HxW image starting at that pixel (a large image's object): the fields are
    the image's, computed without an image-sized mask.
    """
    mask = np.asarray(mask, dtype=bool)
    polygons = mask_to_polygons(mask, tolerance) if mask.any() else []
    if offset is None:
        return _fields(mask, polygons)
    if size is None:
        raise ClickmaskError("a mask with an offset needs the image's size")
    shift = np.array([float(offset[0]), float(offset[1])])
    bbox = mask_bbox(mask)
    if mask.any():
        bbox[0] += shift[0]
        bbox[1] += shift[1]
    return {"rle": encode_rle_window(mask, offset, size),
            "polygons": polygons_to_json([Polygon(p.exterior + shift, [h + shift for h in p.holes])
                                          for p in polygons]),
            "area": int(mask.sum()), "bbox": bbox}


def _fields(mask: np.ndarray, polygons: list[Polygon]) -> dict[str, Any]:
    """The stored fields of a mask with its polygons."""
    return {
        "rle": encode_rle(mask),
        "polygons": polygons_to_json(polygons),
        "area": int(mask.sum()),
        "bbox": [float(v) for v in mask_bbox(mask)],
    }


def polygon_edit_fields(mask: np.ndarray, old_json: Any, new_json: Any) -> dict[str, Any]:
    """Stored fields after the user moved the polygons ``old_json`` to ``new_json`` on the exact ``mask``.

    Only the pixels whose side changed between the two polygons' rasters
    change: an edit near one vertex leaves the exact mask alone everywhere
    else (the polygons are a simplified outline, so re-rasterising them whole
    would move pixels all along the object). The polygons are kept as given.
    """
    new_polygons = polygons_from_json(new_json)
    return _fields(_edited(mask, _old_polygons(old_json), new_polygons), new_polygons)


def _old_polygons(old_json: Any) -> list[Polygon] | None:
    try:
        return polygons_from_json(old_json)
    except ClickmaskError:  # no usable stored outline: the new one decides everywhere
        return None


def _edited(mask: np.ndarray, old: list[Polygon] | None, new: list[Polygon]) -> np.ndarray:
    """``mask`` with the pixels whose side changed between the ``old`` and ``new`` polygons' rasters set
    as ``new`` says (every pixel, without ``old``)."""
    new_raster = polygons_to_mask(new, mask.shape)
    old_raster = ~new_raster if old is None else polygons_to_mask(old, mask.shape)
    edited = np.asarray(mask, dtype=bool).copy()
    changed = old_raster != new_raster
    edited[changed] = new_raster[changed]
    return edited


def edit_box(rle: dict[str, Any], points: list[np.ndarray], margin: float) -> tuple[int, int, int, int]:
    """The pixel box ``(x0, y0, x1, y1)`` holding a stored mask and ``points`` (xy arrays) with ``margin``,
    cut to the image: an edit of a large image's object needs memory for this box only."""
    h, w = (int(v) for v in rle["size"])
    x, y, bw, bh = rle_bbox(rle)
    xs, ys = [x, x + bw], [y, y + bh]
    for p in points:
        if len(p):
            xs += [float(p[:, 0].min()), float(p[:, 0].max())]
            ys += [float(p[:, 1].min()), float(p[:, 1].max())]
    x0, y0 = max(0, int(np.floor(min(xs) - margin))), max(0, int(np.floor(min(ys) - margin)))
    x1, y1 = min(w, int(np.ceil(max(xs) + margin))), min(h, int(np.ceil(max(ys) + margin)))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def polygon_edit_fields_window(rle: dict[str, Any], old_json: Any, new_json: Any) -> dict[str, Any]:
    """:func:`polygon_edit_fields` of a large image's object, on the box of the object and both
    outlines (:func:`edit_box`) instead of an image-sized mask; the same fields."""
    new = polygons_from_json(new_json)
    old = _old_polygons(old_json)
    rings = [r for p in (old or []) + new for r in (p.exterior, *p.holes)]
    x0, y0, x1, y1 = edit_box(rle, rings, 1.0)
    shift = np.array([float(x0), float(y0)])

    def local(polys: list[Polygon]) -> list[Polygon]:
        return [Polygon(p.exterior - shift, [h - shift for h in p.holes]) for p in polys]

    window = decode_rle_window(rle, (x0, y0, x1, y1))
    edited = _edited(window, None if old is None else local(old), local(new))
    fields = mask_fields(edited, 0.0, (x0, y0), tuple(rle["size"]))
    fields["polygons"] = polygons_to_json(new)
    return fields


def decode_mask(rle: dict[str, Any]) -> np.ndarray:
    """The HxW bool mask of a stored RLE."""
    return decode_rle(rle)


def apply_stroke(
    mask: np.ndarray, points: Sequence[Sequence[float]], radius: float, erase: bool
) -> np.ndarray:
    """Paint (or erase) a round brush of ``radius`` pixels along ``points`` (x, y pixel centres)."""
    if radius <= 0 or radius > 10000:
        raise ClickmaskError(f"brush radius must be in (0, 10000] pixels, got {radius}")
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 1 or pts.shape[1] != 2:
        raise ClickmaskError("brush stroke: expected a list of [x, y] points")
    canvas = np.asarray(mask, dtype=np.uint8).copy()
    shift = 4  # sub-pixel precision for cv2 drawing
    scaled = np.round(pts * (1 << shift)).astype(np.int32)
    r = int(round(radius * (1 << shift)))
    value = 0 if erase else 1
    for p in scaled:
        cv2.circle(canvas, (int(p[0]), int(p[1])), r, value, -1, cv2.LINE_8, shift)
    if len(scaled) > 1:
        thickness = max(1, int(round(2 * radius)))
        cv2.polylines(canvas, [pts.round().astype(np.int32)], False, value, thickness, cv2.LINE_8)
    return canvas.astype(bool)
