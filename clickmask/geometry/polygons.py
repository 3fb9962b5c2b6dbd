"""Exact conversion between binary masks and polygons.

Coordinate convention (used by every function in :mod:`clickmask.geometry`)
---------------------------------------------------------------------------
Points are ``(x, y)`` in pixels, ``x`` to the right and ``y`` downwards, with the
origin at the **top-left corner** of the top-left pixel. Pixel ``mask[r, c]`` is
the unit square ``[c, c + 1] x [r, r + 1]`` and its centre is ``(c + 0.5, r + 0.5)``.
This is the convention of COCO (``pycocotools.mask.frPyObjects`` and COCO
``bbox``), so polygons from :func:`mask_to_polygons` can be exported to COCO as
they are. Tools that put pixel centres at integer coordinates (LabelMe, PIL
``ImageDraw.polygon``) need ``0.5`` subtracted from both coordinates, and they
still draw the outline itself, so their masks come out slightly fatter.

* :func:`mask_to_polygons` traces the boundary along pixel **edges**: vertices
  lie on integer pixel corners and the polygons enclose the foreground pixels
  exactly (only the corners where the boundary turns are kept).
* :func:`polygons_to_mask` samples pixel **centres**: a pixel is inside when its
  centre is inside the polygon.

Together they round-trip exactly: ``polygons_to_mask(mask_to_polygons(m), m.shape)``
equals ``m`` for every mask, and :func:`polygons_area` of the exact polygons is the
number of foreground pixels. With ``tolerance > 0`` the simplified rings keep a
subset of those corner vertices.

Foreground is 8-connected by default (``connectivity=8``): pixels touching only at
a corner belong to the same polygon, and the background is 4-connected, so a hole
is a 4-connected background region. Where pixels meet diagonally a ring may touch
itself or another ring at that single corner vertex. An island inside a hole is a
polygon of its own.

Ring orientation: an exterior has a positive signed shoelace area in these
``x``-right, ``y``-down coordinates (clockwise as drawn on screen) and a hole has a
negative one. Each ring is open (the first vertex is not repeated at the end) and
normally starts at its top-most, then left-most vertex.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np
from scipy.spatial import cKDTree

from clickmask.errors import ClickmaskError

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
]


def _as_ring(points: object, what: str = "polygon ring") -> np.ndarray:
    """Return ``points`` as a new read-only ``(N, 2)`` float64 array, or raise."""
    try:
        arr = np.array(points, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ClickmaskError(f"{what}: points are not numeric ({exc})") from None
    if arr.size == 0:
        arr = arr.reshape(0, 2)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ClickmaskError(f"{what}: expected an Nx2 array of (x, y) points, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ClickmaskError(f"{what}: coordinates must be finite")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Polygon:
    """A polygon with holes, in pixel corner coordinates (see module docstring).

    Attributes
    ----------
    exterior : (N, 2) float64 array of ``(x, y)`` vertices, open ring.
    holes : list of (M, 2) float64 arrays, open rings cut out of the exterior.

    Arrays are copied on construction and made read-only.
    """

    exterior: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exterior", _as_ring(self.exterior, "polygon exterior"))
        if isinstance(self.holes, np.ndarray) or not isinstance(self.holes, (list, tuple)):
            raise ClickmaskError("polygon holes: expected a list of Nx2 arrays")
        object.__setattr__(self, "holes", [_as_ring(h, "polygon hole") for h in self.holes])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Polygon):
            return NotImplemented
        return (
            np.array_equal(self.exterior, other.exterior)
            and len(self.holes) == len(other.holes)
            and all(np.array_equal(a, b) for a, b in zip(self.holes, other.holes))
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def _trusted(cls, exterior: np.ndarray, holes: list[np.ndarray]) -> "Polygon":
        """Build without validation from read-only (N, 2) float64 arrays."""
        obj = object.__new__(cls)
        object.__setattr__(obj, "exterior", exterior)
        object.__setattr__(obj, "holes", holes)
        return obj

    def to_flat(self) -> list[float]:
        """Exterior as a flat ``[x1, y1, x2, y2, ...]`` list (holes are not included)."""
        return [float(v) for v in self.exterior.ravel()]


# --------------------------------------------------------------------------- #
# Tracing
# --------------------------------------------------------------------------- #
# A corner (i, j) at point (x=j, y=i) touches four pixels; its code is
# TL*1 + TR*2 + BR*4 + BL*8 with TL = pixel (i-1, j-1), TR = (i-1, j),
# BR = (i, j), BL = (i, j-1). Directions: 0 east (+x), 1 south (+y), 2 west, 3 north.
# Boundary edges are directed with the foreground on their right as drawn on
# screen, so the edge leaving a corner goes east if BR & ~TR, south if BL & ~BR,
# west if TL & ~BL, north if TR & ~TL. Corners where the boundary goes straight
# (codes 3, 6, 9, 12) or that are not on it (0, 15) are not vertices.
_EAST, _SOUTH, _WEST, _NORTH = 0, 1, 2, 3
# Leaving direction of a non-saddle vertex; for the saddles (5 = TL+BR,
# 10 = TR+BL) this is the direction of their first copy.
_OUT_DIR = np.full(16, -1, dtype=np.int8)
_OUT_DIR[[1, 7]] = _WEST
_OUT_DIR[[2, 14]] = _NORTH
_OUT_DIR[[4, 13]] = _EAST
_OUT_DIR[[8, 11]] = _SOUTH
_OUT_DIR[5] = _EAST  # second copy: west
_OUT_DIR[10] = _NORTH  # second copy: south


def _saddle_turn(connectivity: int) -> np.ndarray:
    """Table ``[code, arriving direction] -> leaving direction`` at saddle corners."""
    table = np.full((16, 4), -1, dtype=np.int8)
    if connectivity == 8:  # join the two diagonal foreground pixels
        table[5, _SOUTH], table[5, _NORTH] = _EAST, _WEST
        table[10, _EAST], table[10, _WEST] = _NORTH, _SOUTH
    else:  # keep them apart
        table[5, _SOUTH], table[5, _NORTH] = _WEST, _EAST
        table[10, _EAST], table[10, _WEST] = _SOUTH, _NORTH
    return table


_SADDLE_TURN = {8: _saddle_turn(8), 4: _saddle_turn(4)}


def _check_mask(mask: object, what: str = "mask") -> np.ndarray:
    """Return ``mask`` as an HxW bool array (nonzero = foreground), or raise."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ClickmaskError(f"{what}: expected a 2-D HxW array, got {arr.ndim} dimension(s)")
    if arr.dtype != np.bool_:
        if not (np.issubdtype(arr.dtype, np.integer)):
            raise ClickmaskError(f"{what}: expected a bool or integer array, got dtype {arr.dtype}")
        arr = arr != 0
    return arr


def _trace_rings(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace all boundary rings of a bool mask along pixel edges.

    Returns ``(xy, bounds, pixels)``: the (M, 2) int64 ``(x, y)`` vertices of all
    rings one after the other, the (R + 1,) offsets of the R rings in ``xy``, and
    for each ring the (R, 2) ``(row, col)`` of a foreground pixel on its boundary.
    """
    h, w = mask.shape
    padded = np.zeros((h + 2, w + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask
    # Corner (i, j) has a north/south arm where the pixels left and right of it
    # differ and a west/east arm where the pixels above and below differ; it is a
    # vertex when it has both a vertical and a horizontal arm.
    h_diff = padded[:, :-1] ^ padded[:, 1:]
    v_diff = padded[:-1] ^ padded[1:]
    is_vertex = (h_diff[:-1] | h_diff[1:]) & (v_diff[:, :-1] | v_diff[:, 1:])
    flat = np.flatnonzero(is_vertex)  # row-major order
    if flat.size == 0:
        return np.zeros((0, 2), np.int64), np.zeros(1, np.intp), np.zeros((0, 2), np.intp)
    vi, vj = np.divmod(flat, w + 1)  # (y, x) of each vertex
    top_left = vi * (w + 2) + vj  # flat index of pixel TL in ``padded``
    pf = padded.ravel().view(np.uint8)
    vcode = pf[top_left] | (pf[top_left + 1] << 1) | (pf[top_left + w + 3] << 2) | (pf[top_left + w + 2] << 3)
    n_vertex = vi.size

    # Neighbouring vertices along rows (row-major order) and columns.
    by_col = np.lexsort((vi, vj))
    rank_in_col = np.empty(n_vertex, dtype=np.intp)
    rank_in_col[by_col] = np.arange(n_vertex)
    idx = np.arange(n_vertex)
    east = np.minimum(idx + 1, n_vertex - 1)
    west = np.maximum(idx - 1, 0)
    south = by_col[np.minimum(rank_in_col + 1, n_vertex - 1)]
    north = by_col[np.maximum(rank_in_col - 1, 0)]
    neighbour = np.stack([east, south, west, north])  # (4, n_vertex)

    # Nodes: one per vertex, plus a second copy of each saddle vertex.
    saddles = np.flatnonzero((vcode == 5) | (vcode == 10))
    n_node = n_vertex + saddles.size
    node_vertex = np.concatenate([idx, saddles])
    node_dir = np.concatenate([_OUT_DIR[vcode], np.where(vcode[saddles] == 5, _WEST, _SOUTH).astype(np.int8)])
    second_copy = np.full(n_vertex, -1, dtype=np.intp)
    second_copy[saddles] = n_vertex + np.arange(saddles.size)

    # Successor of each node: the next vertex in its leaving direction, and at a
    # saddle the copy that leaves in the direction the connectivity asks for.
    target = neighbour[node_dir, node_vertex]
    succ = target.copy()
    at_saddle = second_copy[target] >= 0
    if np.any(at_saddle):
        t = target[at_saddle]
        wanted = _SADDLE_TURN[connectivity][vcode[t], node_dir[at_saddle]]
        succ[at_saddle] = np.where(wanted == _OUT_DIR[vcode[t]], t, second_copy[t])

    # Walk the cycles of the successor permutation.
    succ_list = succ.tolist()
    seen = bytearray(n_node)
    order: list[int] = []
    starts: list[int] = []
    for start in range(n_node):
        if seen[start]:
            continue
        starts.append(len(order))
        k = start
        while not seen[k]:
            seen[k] = 1
            order.append(k)
            k = succ_list[k]
    order_arr = np.asarray(order, dtype=np.intp)
    verts = node_vertex[order_arr]
    xy = np.stack([vj[verts], vi[verts]], axis=1).astype(np.int64)
    bounds = np.asarray(starts + [len(order)], dtype=np.intp)

    # Foreground pixel to the right of each ring's first edge: for the corner at
    # (x=j, y=i) pixel BR is mask[i, j], TL is mask[i-1, j-1] (unpadded indices).
    first = order_arr[bounds[:-1]]
    fi, fj, fd = vi[node_vertex[first]], vj[node_vertex[first]], node_dir[first]
    pix_r = np.where((fd == _EAST) | (fd == _SOUTH), fi, fi - 1)
    pix_c = np.where((fd == _EAST) | (fd == _NORTH), fj, fj - 1)
    return xy, bounds, np.stack([pix_r, pix_c], axis=1)


def _ring_next(bounds: np.ndarray) -> np.ndarray:
    """Index of the next vertex within its ring, for rings concatenated at ``bounds``."""
    nxt = np.arange(1, int(bounds[-1]) + 1)
    nxt[bounds[1:] - 1] = bounds[:-1]
    return nxt


def _signed_areas(xy: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Shoelace signed areas (float64) of the rings concatenated at ``bounds``."""
    out = np.zeros(len(bounds) - 1, dtype=np.float64)
    if len(out) == 0 or bounds[-1] == 0:
        return out
    x, y = xy[:, 0].astype(np.float64), xy[:, 1].astype(np.float64)
    nxt = _ring_next(bounds)
    cross = x * y[nxt] - x[nxt] * y
    nonempty = bounds[1:] > bounds[:-1]
    out[nonempty] = 0.5 * np.add.reduceat(cross, bounds[:-1][nonempty])
    return out


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace signed area of an (N, 2) ring (positive = exterior orientation)."""
    if len(ring) < 3:
        return 0.0
    x, y = ring[:, 0].astype(np.float64), ring[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def mask_to_polygons(mask: np.ndarray, tolerance: float = 0.0, *, connectivity: int = 8) -> list[Polygon]:
    """Convert an HxW bool mask to polygons with holes.

    Parameters
    ----------
    mask : (H, W) bool array (integer arrays are accepted, nonzero = foreground).
    tolerance : Douglas-Peucker tolerance in pixels; 0 keeps the exact pixel-edge
        boundary (vertices on integer pixel corners, only turning corners kept).
    connectivity : 8 (default) or 4, the connectivity of the foreground.

    Returns
    -------
    One :class:`Polygon` per connected foreground component, in raster order of the
    component's first pixel; an island inside a hole is a separate polygon. An
    empty mask gives ``[]``. With ``tolerance > 0`` every ring is simplified with
    :func:`simplify`; a hole it drops is left out, and a polygon whose exterior it
    drops is left out with its holes. Simplified rings may cross each other.
    """
    m = _check_mask(mask)
    tol = _check_tolerance(tolerance)
    valid_type = isinstance(connectivity, (int, np.integer)) and not isinstance(connectivity, bool)
    if not valid_type or connectivity not in (4, 8):
        raise ClickmaskError(f"connectivity must be 4 or 8, got {connectivity!r}")
    connectivity = int(connectivity)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return []
    cols = np.flatnonzero(m.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    crop = np.ascontiguousarray(m[r0 : int(rows[-1]) + 1, c0 : int(cols[-1]) + 1])

    xy, bounds, pixels = _trace_rings(crop, connectivity)
    is_exterior = _signed_areas(xy, bounds) > 0
    # Exteriors in raster order of their top-left corner (= the component's first pixel).
    exteriors = np.flatnonzero(is_exterior)
    corner_key = np.minimum.reduceat(xy[:, 1] * (crop.shape[1] + 1) + xy[:, 0], bounds[:-1])
    exteriors = exteriors[np.argsort(corner_key[exteriors], kind="stable")]
    hole_rings = np.flatnonzero(~is_exterior)
    hole_owner = np.zeros(0, dtype=np.intp)
    if hole_rings.size:  # which component (hence exterior) each hole belongs to
        n_labels, labels = cv2.connectedComponents(
            crop.view(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
        )
        ring_label = labels[pixels[:, 0], pixels[:, 1]]
        per_label = np.bincount(ring_label[exteriors], minlength=n_labels)[1:]
        if not np.all(per_label == 1):  # pragma: no cover - tracing invariant
            raise AssertionError("tracing invariant broken: not one exterior per component")
        polygon_of_label = np.zeros(n_labels, dtype=np.intp)
        polygon_of_label[ring_label[exteriors]] = np.arange(exteriors.size)
        hole_owner = polygon_of_label[ring_label[hole_rings]]

    pts = (xy + np.array([c0, r0], dtype=np.int64)).astype(np.float64)
    alive = np.ones(len(bounds) - 1, dtype=bool)
    if tol > 0:
        keep, alive = _simplify_rings(pts, bounds, tol)
        pts = pts[keep]
        bounds = np.concatenate(([0], np.cumsum(np.add.reduceat(keep.astype(np.intp), bounds[:-1]) * alive)))
    pts.setflags(write=False)

    holes: list[list[np.ndarray]] = [[] for _ in range(exteriors.size)]
    for r, owner in zip(hole_rings.tolist(), hole_owner.tolist()):
        if alive[r]:
            holes[owner].append(pts[bounds[r] : bounds[r + 1]])
    return [
        Polygon._trusted(pts[bounds[r] : bounds[r + 1]], holes[k])
        for k, r in enumerate(exteriors.tolist())
        if alive[r]
    ]


# --------------------------------------------------------------------------- #
# Rasterisation
# --------------------------------------------------------------------------- #
def _check_shape(shape: object) -> tuple[int, int]:
    try:
        h, w = (operator.index(v) for v in shape)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ClickmaskError(f"shape must be a pair of integers (H, W), got {shape!r}") from None
    if h < 0 or w < 0:
        raise ClickmaskError(f"shape must not be negative, got {(h, w)}")
    return h, w


def polygons_to_mask(polygons: Sequence[Polygon], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polygons to an HxW bool mask by pixel-centre sampling.

    Pixel ``[r, c]`` is set when its centre ``(c + 0.5, r + 0.5)`` is inside a
    polygon: inside its exterior and not inside a hole (even-odd rule over the
    rings of one polygon). The result is the union over polygons; parts outside
    ``shape`` are clipped. A centre lying exactly on a non-horizontal edge counts
    as inside when the edge is to its right.
    """
    h, w = _check_shape(shape)
    out = np.zeros((h, w), dtype=bool)
    if isinstance(polygons, Polygon):
        polygons = [polygons]
    if not isinstance(polygons, Sequence):
        raise ClickmaskError(f"polygons: expected a list of Polygon, got {type(polygons).__name__}")
    rings: list[np.ndarray] = []
    ring_poly: list[int] = []
    for k, poly in enumerate(polygons):
        if not isinstance(poly, Polygon):
            raise ClickmaskError(f"polygons[{k}]: expected a Polygon, got {type(poly).__name__}")
        for ring in (poly.exterior, *poly.holes):
            if len(ring) >= 3:
                rings.append(ring)
                ring_poly.append(k)
    if h == 0 or w == 0 or not rings:
        return out

    lengths = np.array([len(r) for r in rings], dtype=np.intp)
    p0 = np.concatenate(rings)
    p1 = p0[_ring_next(np.concatenate(([0], np.cumsum(lengths))))]
    poly_id = np.repeat(np.asarray(ring_poly, dtype=np.int64), lengths)

    x0, y0, x1, y1 = p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1]
    keep = y0 != y1
    x0, y0, x1, y1, poly_id = x0[keep], y0[keep], x1[keep], y1[keep], poly_id[keep]
    # Scanline y = r + 0.5 crosses an edge when ylo <= r + 0.5 < yhi.
    ylo, yhi = np.minimum(y0, y1), np.maximum(y0, y1)
    r_lo = np.maximum(np.ceil(ylo - 0.5), 0).astype(np.int64)
    r_hi = np.minimum(np.ceil(yhi - 0.5) - 1, h - 1).astype(np.int64)
    counts = np.maximum(r_hi - r_lo + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return out
    edge = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    row = r_lo[edge] + (np.arange(total) - first[edge])
    yc = row + 0.5
    xc = x0[edge] + (yc - y0[edge]) * ((x1[edge] - x0[edge]) / (y1[edge] - y0[edge]))

    # Pair crossings per (polygon, row) from left to right: each pair is a span.
    order = np.lexsort((xc, row, poly_id[edge]))
    xs, rs = xc[order], row[order]
    span_row = rs[0::2]
    c_start = np.clip(np.floor(xs[0::2] + 0.5), 0, w).astype(np.int64)
    c_stop = np.clip(np.floor(xs[1::2] + 0.5), 0, w).astype(np.int64)
    nonempty = c_start < c_stop
    span_row, c_start, c_stop = span_row[nonempty], c_start[nonempty], c_stop[nonempty]
    if span_row.size == 0:
        return out
    # Union of spans: +1 at each start, -1 at each stop, running sum > 0, within
    # the bounding box of the spans.
    r_min, r_max = int(span_row.min()), int(span_row.max()) + 1
    c_min, c_max = int(c_start.min()), int(c_stop.max())
    diff = np.zeros((r_max - r_min, c_max - c_min + 1), dtype=np.int32)
    np.add.at(diff, (span_row - r_min, c_start - c_min), 1)
    np.add.at(diff, (span_row - r_min, c_stop - c_min), -1)
    np.cumsum(diff, axis=1, out=diff)
    out[r_min:r_max, c_min:c_max] = diff[:, :-1] > 0
    return out


# --------------------------------------------------------------------------- #
# Areas, simplification, export
# --------------------------------------------------------------------------- #
def polygon_area(points: np.ndarray) -> float:
    """Absolute shoelace area of an (N, 2) ring of ``(x, y)`` points, in pixels."""
    return abs(_signed_area(_as_ring(points)))


def polygons_area(polygons: Sequence[Polygon]) -> float:
    """Total area: exteriors minus their holes, summed over polygons (no overlap check)."""
    if isinstance(polygons, Polygon):
        polygons = [polygons]
    total = 0.0
    for k, poly in enumerate(polygons):
        if not isinstance(poly, Polygon):
            raise ClickmaskError(f"polygons[{k}]: expected a Polygon, got {type(poly).__name__}")
        total += abs(_signed_area(poly.exterior)) - sum(abs(_signed_area(hl)) for hl in poly.holes)
    return total


def _check_tolerance(tolerance: object) -> float:
    try:
        tol = float(tolerance)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ClickmaskError(f"tolerance must be a number, got {tolerance!r}") from None
    if not np.isfinite(tol) or tol < 0:
        raise ClickmaskError(f"tolerance must be finite and >= 0, got {tolerance!r}")
    return tol


def _segment_distances(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of each point ``p[k]`` to the segment ``a[k]``-``b[k]`` (all (K, 2))."""
    ab = b - a
    ap = p - a
    denom = np.einsum("ij,ij->i", ab, ab)
    t = np.einsum("ij,ij->i", ap, ab) / np.where(denom > 0, denom, 1.0)
    t = np.clip(t, 0.0, 1.0)
    return np.hypot(*(ap - t[:, None] * ab).T)


def _group_argmax(values: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per run of equal ``group`` ids: (start positions, max values, first argmax positions)."""
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    vmax = np.maximum.reduceat(values, starts)
    sizes = np.diff(np.r_[starts, len(values)])
    hit = np.flatnonzero(values == np.repeat(vmax, sizes))
    hit_group = np.searchsorted(starts, hit, side="right") - 1
    first = hit[np.r_[True, hit_group[1:] != hit_group[:-1]]]
    return starts, vmax, first


def _simplify_rings(pts: np.ndarray, bounds: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Douglas-Peucker on all rings concatenated at ``bounds`` at once.

    Returns ``(keep, alive)``: a (M,) bool mask of kept vertices and a (R,) bool
    mask of rings that survive (see :func:`simplify` for the rules).
    """
    n_ring = len(bounds) - 1
    lengths = np.diff(bounds)
    keep = np.ones(len(pts), dtype=bool)
    alive = np.ones(n_ring, dtype=bool)
    todo = np.flatnonzero(lengths > 3)
    if todo.size == 0:
        return keep, alive
    # Closed copies of the rings to simplify: ring points, then the first point again.
    ext_len = lengths[todo] + 1
    ext_bounds = np.r_[0, np.cumsum(ext_len)]
    ring_of = np.repeat(np.arange(todo.size), ext_len)
    local = np.arange(int(ext_bounds[-1])) - ext_bounds[ring_of]
    src = bounds[todo][ring_of] + np.where(local < lengths[todo][ring_of], local, 0)
    ext = pts[src]
    first_pt = ext_bounds[:-1]
    kept = np.zeros(len(ext), dtype=bool)
    kept[first_pt] = True
    kept[ext_bounds[1:] - 1] = True
    # Split each ring at its first point and the point farthest from it.
    d0 = np.hypot(*(ext - ext[first_pt][ring_of]).T)
    _, _, far = _group_argmax(d0, ring_of)
    kept[far] = True

    idx = np.arange(len(ext))
    big = len(ext)
    active = ~kept
    halves: tuple[np.ndarray, np.ndarray] | None = None
    while True:
        cand = np.flatnonzero(active)
        if cand.size == 0:
            break
        prev = np.maximum.accumulate(np.where(kept, idx, 0))[cand]
        nxt = np.minimum.accumulate(np.where(kept, idx, big)[::-1])[::-1][cand]
        d = _segment_distances(ext[cand], ext[prev], ext[nxt])
        starts, dmax, arg = _group_argmax(d, prev)
        if halves is None:  # the two halves of every ring: remember their farthest points
            halves = (dmax, cand[arg])
        split = dmax > tol
        kept[cand[arg[split]]] = True
        sizes = np.diff(np.r_[starts, cand.size])
        active[cand[~np.repeat(split, sizes)]] = False
        active[cand[arg[split]]] = False

    # Rings left with fewer than 3 vertices collapsed: drop the small ones, give
    # the others back the farthest vertex of each half.
    is_copy = local == lengths[todo][ring_of]
    counts = np.add.reduceat(kept.astype(np.intp), first_pt) - 1  # without the repeated first point
    collapsed = counts < 3
    if np.any(collapsed):
        small = np.abs(_signed_areas(pts, bounds)[todo]) < tol * tol
        alive[todo[collapsed & small]] = False
        revive = collapsed & ~small
        if halves is not None:
            half_dist, half_idx = halves
            kept[half_idx[revive[ring_of[half_idx]] & (half_dist > 0)]] = True
        counts = np.add.reduceat(kept.astype(np.intp), first_pt) - 1
        flat = revive & (counts < 3)  # collinear points: leave the ring as it is
        kept |= flat[ring_of] & ~is_copy
    keep[src[~is_copy]] = kept[~is_copy]
    keep &= np.repeat(alive, lengths)
    return keep, alive


def simplify(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed ring.

    Parameters
    ----------
    points : (N, 2) open ring of ``(x, y)`` points.
    tolerance : a vertex is kept when it is farther than this (in pixels) from the
        segment being simplified; 0 returns the ring unchanged.

    Returns
    -------
    (K, 2) float64 array, ``3 <= K <= N`` (rings with fewer than 4 points are
    returned unchanged). The ring is split at its first vertex and the vertex
    farthest from it. If no other vertex is farther than ``tolerance`` (the ring
    collapses), the ring is dropped -- a (0, 2) array is returned -- when its
    area is below ``tolerance**2``; otherwise the farthest vertex of each half is
    kept too.
    """
    pts = np.array(_as_ring(points), dtype=np.float64)
    tol = _check_tolerance(tolerance)
    if tol == 0.0 or len(pts) <= 3:
        return pts
    keep, alive = _simplify_rings(pts, np.array([0, len(pts)], dtype=np.intp), tol)
    return pts[keep] if alive[0] else np.zeros((0, 2), dtype=np.float64)


def polygon_to_coco(polygon: Polygon, *, strict: bool = False) -> list[list[float]]:
    """COCO ``segmentation`` polygons for one :class:`Polygon`: ``[[x1, y1, x2, y2, ...]]``.

    COCO polygons cannot express holes (the listed polygons are filled and
    merged), so only the exterior is returned; holes are dropped, or raise a
    :class:`ClickmaskError` with ``strict=True``. Export masks with holes as RLE
    (``encode_rle(polygons_to_mask(polys, shape))``). Coordinates follow the
    corner convention of this module, which is also COCO's.
    """
    if not isinstance(polygon, Polygon):
        raise ClickmaskError(f"expected a Polygon, got {type(polygon).__name__}")
    if strict and polygon.holes:
        n = len(polygon.holes)
        raise ClickmaskError(f"polygon has {n} hole(s), which COCO polygons cannot hold; use RLE")
    return [polygon.to_flat()]


def polygons_to_coco(polygons: Sequence[Polygon], *, strict: bool = False) -> list[list[float]]:
    """COCO ``segmentation`` list for several polygons (exteriors, in order); see :func:`polygon_to_coco`."""
    out: list[list[float]] = []
    for poly in polygons:
        out.extend(polygon_to_coco(poly, strict=strict))
    return out


# --------------------------------------------------------------------------- #
# One ring from several
# --------------------------------------------------------------------------- #
def _bridge_tree(rings: Sequence[np.ndarray]) -> dict[int, dict[int, list[tuple[int, int]]]]:
    """Prim's minimum spanning tree over the rings, an edge being their closest pair of vertices.

    Returns ``children[parent][parent_vertex] = [(child, child_vertex), ...]``, rooted at ring 0.
    """
    n = len(rings)
    children: dict[int, dict[int, list[tuple[int, int]]]] = {i: {} for i in range(n)}
    # best[j] = (distance, parent ring, parent vertex, vertex of j) for rings not in the tree yet
    best: dict[int, tuple[float, int, int, int]] = {j: (np.inf, -1, -1, -1) for j in range(1, n)}
    newest = 0
    while best:
        tree = cKDTree(rings[newest])
        for j, current in best.items():
            dist, near = tree.query(rings[j], k=1)
            k = int(np.argmin(dist))
            if dist[k] < current[0]:
                best[j] = (float(dist[k]), newest, int(near[k]), k)
        newest = min(best, key=lambda j: (best[j][0], j))
        _, parent, pv, cv = best.pop(newest)
        children[parent].setdefault(pv, []).append((newest, cv))
    return children


def join_rings(rings: Sequence[np.ndarray]) -> np.ndarray:
    """Join rings into one ring by zero-width bridges between their nearest vertices.

    For formats that hold one polygon per object (YOLO segmentation). The rings
    are linked by a minimum spanning tree whose edges join the closest pair of
    vertices of two rings, so the bridges are as short as a tree allows. The
    result walks every ring once, each in its own direction, and every bridge
    out and back again, so the bridges enclose no area: off the bridges, the
    winding number of the result is the sum of the rings' winding numbers. With
    exteriors (positive area) and holes (negative), as :func:`mask_to_polygons`
    returns them, filling the result (even-odd or non-zero rule) gives the parts
    minus their holes; a raster fill that also paints the outline (OpenCV
    ``fillPoly``) paints the bridges as thin lines. This is the idea of
    Ultralytics' ``merge_multi_segment`` (their COCO converter joins the parts of
    an object by thin lines between nearest points), with a tree in place of a
    chain in list order.

    Parameters
    ----------
    rings : sequence of (N_i, 2) open rings of ``(x, y)`` points, N_i >= 1.

    Returns
    -------
    (M, 2) float64 open ring, ``M = sum(N_i) + 2 * (len(rings) - 1)``: every
    bridge repeats the two vertices it joins. It starts at ``rings[0][0]``.
    """
    arrays = [_as_ring(r, f"rings[{k}]") for k, r in enumerate(rings)]
    if not arrays:
        return np.zeros((0, 2), dtype=np.float64)
    for k, ring in enumerate(arrays):
        if len(ring) == 0:
            raise ClickmaskError(f"rings[{k}]: a ring needs at least one point")
    if len(arrays) == 1:
        return np.array(arrays[0], dtype=np.float64)
    children = _bridge_tree(arrays)
    out: list[np.ndarray] = []
    # Frames [ring, entry vertex, steps walked, children still to visit at this vertex or None].
    stack: list[list] = [[0, 0, 0, None]]
    while stack:
        frame = stack[-1]
        ring, entry, step, pending = frame
        size = len(arrays[ring])
        vertex = (entry + step) % size
        if pending is None:  # arrived at this step's vertex
            out.append(arrays[ring][vertex])
            if step == size:  # back at the entry: this ring is closed
                stack.pop()
                if stack:  # back over the bridge to the parent's vertex
                    parent = stack[-1]
                    out.append(arrays[parent[0]][(parent[1] + parent[2]) % len(arrays[parent[0]])])
                continue
            frame[3] = list(reversed(children[ring].get(vertex, [])))
        elif pending:
            child, child_vertex = pending.pop()
            stack.append([child, child_vertex, 0, None])
        else:
            frame[2] += 1
            frame[3] = None
    return np.array(out[:-1], dtype=np.float64)  # the root's closing vertex repeats its first
