"""Mask geometry: exact mask <-> polygon conversion and COCO RLE.

Coordinates are ``(x, y)`` pixels with the origin at the top-left corner of the
top-left pixel; pixel ``[r, c]`` is the square ``[c, c+1] x [r, r+1]`` (COCO's
convention). See :mod:`clickmask.geometry.polygons` for details.
"""

from clickmask.geometry.polygons import (
    Polygon,
    join_rings,
    mask_to_polygons,
    polygon_area,
    polygon_to_coco,
    polygons_area,
    polygons_to_coco,
    polygons_to_mask,
    simplify,
)
from clickmask.geometry.rle import decode_rle, decode_rle_window, encode_rle, encode_rle_window, mask_bbox, rle_area, rle_bbox

__all__ = [
    "Polygon",
    "mask_to_polygons",
    "polygons_to_mask",
    "polygon_area",
    "polygons_area",
    "simplify",
    "polygon_to_coco",
    "polygons_to_coco",
    "join_rings",
    "encode_rle_window",
    "decode_rle_window",
    "encode_rle",
    "decode_rle",
    "rle_area",
    "rle_bbox",
    "mask_bbox",
]
