"""A very large synthetic GeoTIFF, written window by window, with objects whose masks are known.

Not a test module. The image is a tiled, deflate-compressed BigTIFF in a
projected CRS (UTM 33N, 0.5 m pixels). Only the *field* around the objects
holds texture; the rest of the file is sparse (tiles never written read as
black), so a 20000 x 20000 image takes seconds and a few MB to make.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

ORIGIN = (500000.0, 4600000.0)  # map coordinates of the top-left corner (metres)
PIXEL = 0.5  # metres


@dataclass(frozen=True)
class Square:
    """An object: the square ``[x, x + side) x [y, y + side)`` in image pixels, of one colour."""

    x: int
    y: int
    side: int
    color: tuple[int, int, int]

    def mask(self, shape: tuple[int, int], offset: tuple[int, int] = (0, 0)) -> np.ndarray:
        """The object's bool mask on an ``(h, w)`` window starting at image pixel ``offset`` ``(x0, y0)``."""
        out = np.zeros(shape, bool)
        x0, y0 = self.x - offset[0], self.y - offset[1]
        out[max(y0, 0): max(y0 + self.side, 0), max(x0, 0): max(x0 + self.side, 0)] = True
        return out


def field_pixels(x0: int, y0: int, w: int, h: int, squares: list[Square], seed: int = 0) -> np.ndarray:
    """``(3, h, w)`` uint8: a smooth, noisy ground texture with the squares painted on it."""
    rng = np.random.default_rng(seed + 7919 * x0 + y0)
    yy, xx = np.mgrid[y0: y0 + h, x0: x0 + w].astype(np.float32)
    base = 110 + 25 * np.sin(xx / 170.0) * np.cos(yy / 130.0) + 15 * np.sin((xx + yy) / 47.0)
    rgb = np.stack([base * 0.9 + 20, base, base * 0.7 + 10])
    rgb += rng.normal(0, 6, rgb.shape).astype(np.float32)
    for sq in squares:
        if sq.x >= x0 + w or sq.y >= y0 + h or sq.x + sq.side <= x0 or sq.y + sq.side <= y0:
            continue
        m = sq.mask((h, w), (x0, y0))
        for c in range(3):
            rgb[c][m] = sq.color[c] + rng.normal(0, 4, int(m.sum()))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_large_geotiff(path: Path, size: int, field: tuple[int, int, int, int], squares: list[Square],
                        crs: str = "EPSG:32633", chunk: int = 1024) -> Path:
    """A ``size`` x ``size`` RGB GeoTIFF; ``field`` ``(x0, y0, x1, y1)`` is textured (multiples of 512
    keep the rest sparse), the rest never written (black)."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", zlevel=1, BIGTIFF="YES", SPARSE_OK="TRUE",
                   crs=crs, transform=from_origin(ORIGIN[0], ORIGIN[1], PIXEL, PIXEL))
    fx0, fy0, fx1, fy1 = field
    with rasterio.open(path, "w", **profile) as ds:
        for y in range(fy0, fy1, chunk):
            for x in range(fx0, fx1, chunk):
                w, h = min(chunk, fx1 - x), min(chunk, fy1 - y)
                ds.write(field_pixels(x, y, w, h, squares), window=Window(x, y, w, h))
    return path
