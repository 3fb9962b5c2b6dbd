"""Very large images, read window by window: a tile pyramid for the browser and windows for the model.

An image of more than :data:`LARGE_PIXELS` pixels (a 20000 x 20000 GeoTIFF, a
BigTIFF, a huge JPEG or PNG) is never decoded whole. :class:`LargeImage` reads
it through GDAL (rasterio) window by window:

- **Pyramid.** Reads at a reduced scale come from the file's overviews. A file
  without them gets them once, in the cache folder
  (:func:`clickmask.paths.clickmask_home` ``/pyramids``, one folder per file,
  keyed by its identity, size and modification time): a tiled TIFF gets a VRT that
  points at it, plus GDAL overviews of the VRT (the user's file is never
  written); a file GDAL cannot read by windows quickly (PNG, JPEG, a striped
  TIFF) is first copied to a tiled TIFF there. :meth:`LargeImage.prepare` does
  this (seconds for a 20000 x 20000 image; call it in the background); a file
  that already has overviews (a Cloud-Optimized GeoTIFF) needs nothing.
- **Tiles** (:meth:`LargeImage.tile`): deep-zoom levels, level 0 the full
  resolution and level ``k`` the image scaled by ``1 / 2**k``; the tile
  ``(col, row)`` of a level covers its pixels ``[256 col, 256 col + 256) x
  [256 row, 256 row + 256)`` (smaller at the right and bottom edges). The top
  level is the first whose both sides fit in one tile.
- **Windows** (:meth:`LargeImage.read`): any rectangle of the image at full
  resolution, or scaled to a requested size, as ``HxWx3`` uint8 RGB.

Pixels are what :mod:`clickmask.io.rasters` makes of the file (the bands shown,
their stretch limits from a decimated read), so every tile and window of one
image is stretched the same way. GDAL's block cache is capped
(:data:`GDAL_CACHE_MB`), so memory stays bounded whatever the image size.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from clickmask.errors import ImageReadError
from clickmask.io.rasters import RasterView, Stretch, _open, _read, _reading, open_view, stretch_to_uint8
from clickmask.paths import clickmask_home

#: Above this many pixels an image is shown as tiles and segmented window by window.
LARGE_PIXELS = 40_000_000
#: Side of a browser tile, in pixels of its level.
TILE = 256
#: Overview factors built for a file without overviews (each a 1/16 of the one before in pixels).
OVERVIEW_FACTORS = (4, 16, 64, 256)
#: GDAL's block cache while reading or building (MB): bounds the server's memory.
GDAL_CACHE_MB = 128
#: Block side of the tiled copy of a file that is not tiled.
BLOCK = 512


def is_large(width: int | None, height: int | None) -> bool:
    """True for an image shown as tiles and segmented by windows (more than :data:`LARGE_PIXELS` pixels)."""
    return bool(width and height and int(width) * int(height) > LARGE_PIXELS)


def pyramids_dir(home: Path | None = None) -> Path:
    """Folder of the prepared pyramids (one sub-folder per image file)."""
    return (home or clickmask_home()) / "pyramids"


def _env():
    import rasterio

    return rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB, GDAL_NUM_THREADS="ALL_CPUS")


def _key(path: Path) -> str:
    """The file's identity (device, inode, size, modification time): a moved or linked file keeps its
    pyramid, a changed one gets a new one."""
    st = path.stat()
    text = f"{st.st_dev}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _tiled(dataset: Any) -> bool:
    """True when GDAL reads the file by square-ish blocks (a tiled TIFF), not by rows or whole."""
    bh, bw = dataset.block_shapes[0]
    return dataset.driver == "GTiff" and bh > 1 and bw < dataset.width


class LargeImage:
    """One large image: its size, tiles and windows (see the module docstring).

    Thread-safe: each read opens the prepared file (GDAL handles are not shared
    between threads); :meth:`prepare` runs once, later callers wait for it.
    """

    def __init__(self, path: Path | str, bands: Sequence[int] | None = None, stretch: Stretch | None = None,
                 cache: Path | None = None) -> None:
        self.path = Path(path)
        self._bands, self._stretch = bands, stretch
        with _env(), _open(self.path) as ds:
            self.width, self.height = int(ds.width), int(ds.height)
            self._has_overviews = bool(ds.overviews(1))
            self._is_tiled = _tiled(ds)
            self._uint8 = all(d == "uint8" for d in ds.dtypes)
        self._folder = (cache or pyramids_dir()) / _key(self.path)
        self._lock = threading.Lock()
        self._view: RasterView | None = None
        self._source: Path | None = self.path if self._has_overviews else self._prepared()
        self._error: str | None = None

    # ------------------------------------------------------------------ preparing
    def _prepared(self) -> Path | None:
        """The prepared file in the cache folder, if an earlier run made it."""
        for name in ("image.vrt", "image.tif"):
            if (self._folder / name).is_file() and (self._folder / "done").is_file():
                return self._folder / name
        return None

    @property
    def ready(self) -> bool:
        """True when reads at any scale are fast (the overviews exist)."""
        return self._source is not None

    def prepare(self) -> "LargeImage":
        """Make the overviews (and a tiled copy) a file lacks, in the cache folder; atomic; once.

        Raises ImageReadError naming the file when GDAL cannot read it through.
        """
        with self._lock:
            if self._source is not None:
                return self
            if self._error is not None:
                raise ImageReadError(self._error)
            self._folder.parent.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f".{self._folder.name}.tmp-", dir=self._folder.parent))
            try:
                target = self._build(work)
                shutil.rmtree(self._folder, ignore_errors=True)
                os.replace(work, self._folder)  # the whole folder appears at once
            except ImageReadError as exc:
                self._error = str(exc)
                raise
            finally:
                shutil.rmtree(work, ignore_errors=True)
            self._source = self._folder / target.name
            return self

    def _build(self, work: Path) -> Path:
        import rasterio
        from rasterio.enums import Resampling
        from rasterio.shutil import copy as gdal_copy

        from rasterio.errors import NotGeoreferencedWarning

        with _env(), _reading(self.path, reading_pixels=True), warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            if self._is_tiled:
                target = work / "image.vrt"
                gdal_copy(str(self.path.resolve()), str(target), driver="VRT")
            else:
                target = work / "image.tif"
                gdal_copy(str(self.path), str(target), driver="GTiff", tiled=True, blockxsize=BLOCK,
                          blockysize=BLOCK, compress="deflate", zlevel=1, BIGTIFF="IF_SAFER")
            factors = [f for f in OVERVIEW_FACTORS if max(self.width, self.height) / f >= TILE / 2] or [2]
            with rasterio.Env(COMPRESS_OVERVIEW="DEFLATE", ZLEVEL_OVERVIEW="1"), rasterio.open(target, "r+") as ds:
                ds.build_overviews(factors, Resampling.average)
        (work / "done").write_text("ok\n")
        return target

    def _ready_source(self) -> Path:
        if self._source is None:
            self.prepare()
        assert self._source is not None
        return self._source

    def view(self) -> RasterView:
        """Bands and stretch limits (computed once, from the overviews)."""
        if self._view is None:
            # uint8 bands need no limits from the pixels (unless asked): no wait for the overviews
            plain = self._uint8 and (self._stretch or Stretch()).resolved("uint8") == "none"
            source = self._source or (self.path if plain else self._ready_source())
            with _env():
                view = open_view(source, self._bands, self._stretch)
            self._view = view
        return self._view

    # ------------------------------------------------------------------ reading
    @property
    def levels(self) -> int:
        """Number of deep-zoom levels (level 0 the full resolution, the last one fits in a tile)."""
        return max(1, math.ceil(math.log2(max(self.width, self.height) / TILE)) + 1)

    def level_size(self, level: int) -> tuple[int, int]:
        """(width, height) of a level."""
        f = 2 ** level
        return max(1, math.ceil(self.width / f)), max(1, math.ceil(self.height / f))

    def read(self, x0: int, y0: int, x1: int, y1: int, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """Image pixels ``[x0, x1) x [y0, y1)`` as ``HxWx3`` uint8 RGB, at full resolution or scaled to
        ``out_size`` ``(width, height)`` (area average, from the nearest overview). The rectangle must lie
        inside the image."""
        from rasterio.enums import Resampling
        from rasterio.windows import Window

        x0, y0, x1, y1 = (int(v) for v in (x0, y0, x1, y1))
        if not (0 <= x0 < x1 <= self.width and 0 <= y0 < y1 <= self.height):
            raise ImageReadError(f"{self.path}: window {x0},{y0}..{x1},{y1} is not inside the "
                                 f"{self.width}x{self.height} image")
        view = self.view()
        window = Window(x0, y0, x1 - x0, y1 - y0)
        shape = None if out_size is None else (int(out_size[1]), int(out_size[0]))
        # full resolution from a tiled file: straight from it; else the prepared file (overviews, tiles)
        source = self.path if shape is None and self._is_tiled else self._ready_source()
        with _env(), _open(source) as ds:
            if shape is None:
                values, valid = _read(ds, self.path, view.bands, window)
            else:
                with _reading(self.path, reading_pixels=True):
                    values = ds.read(list(view.bands), window=window, out_shape=(len(view.bands), *shape),
                                     resampling=Resampling.average)
                    valid = ds.read_masks(list(view.bands), window=window, out_shape=(len(view.bands), *shape),
                                          resampling=Resampling.nearest) != 0
        return stretch_to_uint8(values, view.limits, valid)

    def tile(self, level: int, col: int, row: int) -> np.ndarray:
        """The tile ``(col, row)`` of a deep-zoom level as ``hxwx3`` uint8 (h, w <= :data:`TILE`)."""
        if not 0 <= level < self.levels:
            raise ImageReadError(f"{self.path}: no zoom level {level} (it has {self.levels})")
        lw, lh = self.level_size(level)
        if not (0 <= col * TILE < lw and 0 <= row * TILE < lh):
            raise ImageReadError(f"{self.path}: level {level} has no tile {col},{row}")
        f = 2 ** level
        x0, y0 = col * TILE * f, row * TILE * f
        x1, y1 = min(self.width, x0 + TILE * f), min(self.height, y0 + TILE * f)
        out = (min(TILE, lw - col * TILE), min(TILE, lh - row * TILE))
        return self.read(x0, y0, x1, y1, None if level == 0 else out)

    def describe(self) -> dict[str, Any]:
        """What the browser needs to show the image as tiles."""
        return {"width": self.width, "height": self.height, "tile": TILE, "levels": self.levels,
                "ready": self.ready}
