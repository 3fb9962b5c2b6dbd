"""COCO run-length encoding (RLE) of binary masks, byte-compatible with pycocotools.

An RLE is a dict ``{"size": [H, W], "counts": ...}``. The mask is read in
column-major (Fortran) order and ``counts`` holds the alternating run lengths,
starting with a (possibly empty) run of zeros. ``counts`` is either a list of
ints ("uncompressed") or COCO's compressed ASCII string: each run length, minus
the run two places before it (from the fourth run on), is written as a signed
little-endian number in groups of 5 bits, one character per group
(``chr(48 + group)``, plus 32 when more groups follow; the top bit of the last
group is the sign).

Bounding boxes are COCO ``[x, y, w, h]`` floats in the pixel-corner convention of
:mod:`clickmask.geometry.polygons` (``[0, 0, 0, 0]`` for an empty mask).
"""

from __future__ import annotations

import operator
from typing import Any, Mapping

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.geometry.polygons import _check_mask

__all__ = ["encode_rle", "encode_rle_window", "decode_rle", "decode_rle_window", "rle_area", "rle_bbox", "mask_bbox"]

# Largest group count any int64 run length can need.
_MAX_GROUPS = 13


def _mask_counts(mask: np.ndarray) -> np.ndarray:
    """Run lengths (int64) of an HxW bool mask in column-major order."""
    flat = mask.ravel(order="F")
    n = flat.size
    if n == 0:
        return np.zeros(1, dtype=np.int64)
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], change, [n])).astype(np.int64)
    counts = np.diff(edges)
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return counts


def _counts_to_string(counts: np.ndarray) -> str:
    """COCO compressed string of int64 run lengths."""
    x = counts.astype(np.int64)
    if x.size > 3:
        x[3:] -= counts[1:-2]
    # Groups needed: smallest k with -2**(5k-1) <= x < 2**(5k-1).
    mag = np.where(x < 0, ~x, x)
    groups = np.ones(x.size, dtype=np.int64)
    for k in range(1, _MAX_GROUPS):
        groups += mag >= (np.int64(1) << np.int64(5 * k - 1))
    value = np.repeat(np.arange(x.size), groups)
    first = np.cumsum(groups) - groups
    g = np.arange(value.size) - first[value]
    chars = (x[value] >> (5 * g)) & 0x1F
    chars |= np.where(g < groups[value] - 1, 0x20, 0)
    chars += 48
    return chars.astype(np.uint8).tobytes().decode("ascii")


def _string_to_counts(text: str | bytes) -> np.ndarray:
    """Run lengths (int64) from a COCO compressed string; raises on malformed input."""
    if isinstance(text, str):
        try:
            raw = text.encode("ascii")
        except UnicodeEncodeError:
            raise ClickmaskError("RLE counts: string contains non-ASCII characters") from None
    else:
        raw = bytes(text)
    c = np.frombuffer(raw, dtype=np.uint8).astype(np.int64) - 48
    if c.size == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any((c < 0) | (c > 63)):
        bad = raw[int(np.flatnonzero((c < 0) | (c > 63))[0])]
        raise ClickmaskError(f"RLE counts: invalid character {chr(bad)!r} (expected '0'..'o')")
    last = (c & 0x20) == 0
    if not last[-1]:
        raise ClickmaskError("RLE counts: string ends in the middle of a number")
    ends = np.flatnonzero(last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    groups = ends - starts + 1
    if groups.max() > _MAX_GROUPS - 1:  # keep within int64
        raise ClickmaskError("RLE counts: run length too large")
    value = np.repeat(np.arange(ends.size), groups)
    g = np.arange(c.size) - starts[value]
    x = np.add.reduceat((c & 0x1F) << (5 * g), starts)
    negative = (c[ends] & 0x10) != 0
    x[negative] -= np.int64(1) << (5 * groups[negative])
    # Undo the delta: counts[i] = x[i] + counts[i - 2] for i > 2.
    counts = x.copy()
    counts[1::2] = np.cumsum(x[1::2])
    if counts.size > 2:
        counts[2::2] = np.cumsum(x[2::2])
    return counts


def _check_rle(rle: object) -> tuple[int, int, np.ndarray]:
    """Validate an RLE dict and return ``(H, W, counts)``."""
    if not isinstance(rle, Mapping):
        raise ClickmaskError(f"RLE: expected a dict with 'size' and 'counts', got {type(rle).__name__}")
    if "size" not in rle or "counts" not in rle:
        raise ClickmaskError("RLE: dict needs both 'size' and 'counts'")
    size = rle["size"]
    try:
        if isinstance(size, (str, bytes)) or len(size) != 2:
            raise TypeError
        h, w = (operator.index(v) for v in size)
    except (TypeError, ValueError):
        raise ClickmaskError(f"RLE: size must be [H, W] integers, got {size!r}") from None
    if h < 0 or w < 0:
        raise ClickmaskError(f"RLE: size must not be negative, got {[h, w]}")
    raw = rle["counts"]
    if isinstance(raw, (str, bytes, bytearray)):
        counts = _string_to_counts(raw)
    else:
        try:
            arr = np.asarray(raw)
            if arr.ndim != 1 or not (arr.size == 0 or np.issubdtype(arr.dtype, np.integer)):
                raise TypeError
        except (TypeError, ValueError):
            raise ClickmaskError("RLE: counts must be a string or a list of integers") from None
        counts = arr.astype(np.int64)
    if np.any(counts < 0):
        raise ClickmaskError("RLE: counts must not be negative")
    total = int(counts.sum())
    if total != h * w:
        raise ClickmaskError(f"RLE: counts cover {total} pixels but size {h}x{w} has {h * w}")
    return h, w, counts


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """Encode an HxW bool mask as a compressed COCO RLE.

    Returns ``{"size": [H, W], "counts": str}``, where ``counts`` equals
    ``pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"].decode()``.
    """
    m = _check_mask(mask)
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": _counts_to_string(_mask_counts(m))}


def encode_rle_window(mask: np.ndarray, offset: tuple[int, int], size: tuple[int, int]) -> dict[str, Any]:
    """The COCO RLE of an ``(H, W)`` = ``size`` image whose only foreground is the ``hxw`` bool ``mask``
    placed with its top-left pixel at ``offset`` ``(x0, y0)``.

    Equals ``encode_rle`` of the full mask without making it (a window of a
    20000 x 20000 image needs memory for the window only). Raises
    ClickmaskError if the window does not lie inside the image.
    """
    m = _check_mask(mask)
    big_h, big_w = (int(v) for v in size)
    x0, y0 = (int(v) for v in offset)
    h, w = m.shape
    if x0 < 0 or y0 < 0 or x0 + w > big_w or y0 + h > big_h:
        raise ClickmaskError(f"RLE: a {w}x{h} mask at {x0},{y0} does not fit in a {big_w}x{big_h} image")
    padded = np.zeros((h + 2, w), dtype=bool)  # a background pixel above and below: runs stay in their column
    padded[1:-1] = m
    flat = padded.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    col, row = np.divmod(change, h + 2)
    where = ((x0 + col) * big_h + (y0 + row - 1)).astype(np.int64)
    # a run that ends at the image's last row and one that starts at the next column's first row are one
    # run (two changes at one place cancel); a change at the very end is no change
    values, times = np.unique(where, return_counts=True)
    where = values[(times == 1) & (values < big_h * big_w)]
    edges = np.concatenate(([0], where, [big_h * big_w])).astype(np.int64)
    counts = np.diff(edges)
    return {"size": [big_h, big_w], "counts": _counts_to_string(counts)}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """Decode a COCO RLE (compressed string/bytes or uncompressed list counts) to an HxW bool mask."""
    h, w, counts = _check_rle(rle)
    values = (np.arange(counts.size) % 2).astype(bool)
    flat = np.repeat(values, counts)
    return np.ascontiguousarray(flat.reshape(w, h).T)


def decode_rle_window(rle: Mapping[str, Any], window: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels ``[x0, x1) x [y0, y1)`` (``window``) of a COCO RLE's mask, as a bool array, without
    decoding the whole mask (an object of a 20000 x 20000 image needs memory for its box only)."""
    h, w, counts = _check_rle(rle)
    x0, y0, x1, y1 = (int(v) for v in window)
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ClickmaskError(f"RLE: window {x0},{y0}..{x1},{y1} is not inside the {w}x{h} mask")
    ends = np.cumsum(counts)
    starts = ends - counts
    fg = (np.arange(counts.size) % 2 == 1) & (counts > 0)
    first, last = starts[fg], ends[fg] - 1  # column-major pixel indices of each foreground run
    col0, col1 = first // h, last // h
    cols, top, bottom = [col0[col0 == col1]], [first[col0 == col1] % h], [last[col0 == col1] % h + 1]
    for a, b, c0, c1 in zip(first[col0 != col1], last[col0 != col1], col0[col0 != col1], col1[col0 != col1]):
        # a run over several columns (the mask touches the image's bottom and top): one piece per column
        inner = np.arange(max(c0, x0), min(c1, x1 - 1) + 1)
        cols.append(inner)
        top.append(np.where(inner == c0, a % h, 0))
        bottom.append(np.where(inner == c1, b % h + 1, h))
    col, r0, r1 = (np.concatenate(v).astype(np.int64) for v in (cols, top, bottom))
    keep = (col >= x0) & (col < x1) & (r1 > y0) & (r0 < y1)
    col, r0, r1 = col[keep] - x0, np.clip(r0[keep], y0, y1) - y0, np.clip(r1[keep], y0, y1) - y0
    edges = np.zeros((y1 - y0 + 1, x1 - x0), dtype=np.int32)
    np.add.at(edges, (r0, col), 1)
    np.add.at(edges, (r1, col), -1)
    return np.cumsum(edges, axis=0)[:-1] > 0


def rle_area(rle: Mapping[str, Any]) -> int:
    """Number of foreground pixels of a COCO RLE."""
    _, _, counts = _check_rle(rle)
    return int(counts[1::2].sum())


def rle_bbox(rle: Mapping[str, Any]) -> list[float]:
    """COCO ``[x, y, w, h]`` bounding box of a COCO RLE, computed from its runs."""
    h, _, counts = _check_rle(rle)
    ends = np.cumsum(counts)
    starts = ends - counts
    ones = (np.arange(counts.size) % 2 == 1) & (counts > 0)
    if not np.any(ones):
        return [0.0, 0.0, 0.0, 0.0]
    first, last = starts[ones], ends[ones] - 1  # column-major pixel indices
    col0, col1 = first // h, last // h
    row0 = np.where(col0 == col1, first % h, 0)  # a run over two columns spans all rows
    row1 = np.where(col0 == col1, last % h, h - 1)
    x, y = int(col0.min()), int(row0.min())
    return [float(x), float(y), float(col1.max() + 1 - x), float(row1.max() + 1 - y)]


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO ``[x, y, w, h]`` bounding box of an HxW bool mask (``[0, 0, 0, 0]`` if empty)."""
    m = _check_mask(mask)
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return [0.0, 0.0, 0.0, 0.0]
    cols = np.flatnonzero(m.any(axis=0))
    x, y = int(cols[0]), int(rows[0])
    return [float(x), float(y), float(cols[-1] + 1 - x), float(rows[-1] + 1 - y)]
