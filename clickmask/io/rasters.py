"""Geospatial rasters (GeoTIFF, Cloud-Optimized GeoTIFF and anything else GDAL reads) with rasterio.

A raster has any number of bands of one data type (uint8, uint16, int16, float32,
...), maybe a nodata value or mask, and maybe a coordinate reference system (CRS)
and a geotransform. This module turns it into what the model and the browser
see, an ``HxWx3 uint8`` RGB image, in three explicit steps:

1. **Band selection** (:func:`select_bands`): three 1-based band indices shown as
   red, green and blue, or one shown as gray. By default bands 1, 2, 3 for a
   raster with three or more bands and band 1 for one with one or two (the
   second band of a two-band raster is usually alpha).
2. **Limits** (:func:`percentile_limits`): per selected band, the values that
   become 0 and 255. Only valid pixels count: not nodata, not masked, finite.
   :class:`Stretch` says how: ``"percentile"`` (the ``low``..``high``
   percentiles; 2..98 by default, the usual display cut of remote-sensing
   viewers), ``"minmax"`` or ``"none"`` (values as they are, clipped to
   0..255). The default, ``"auto"``, is ``"none"`` for uint8 data (an 8-bit
   aerial photo looks as it does in any viewer, and the model sees the same
   pixels as from a PNG of it) and ``"percentile"`` for everything else. When
   the two limits coincide (a nearly flat band) the band's minimum and maximum
   are used; a constant band becomes 0.
3. **Scaling** (:func:`stretch_to_uint8`): ``(value - lo) * 255 / (hi - lo)``
   in float32, clipped to 0..255 and rounded half to even; invalid pixels
   become 0 (black).

The limits are computed once per raster from a decimated read of at most
:data:`LIMIT_SAMPLE_SIZE` pixels on the long side (GDAL uses the overviews of a
COG when it has them), so every window of the raster is stretched the same way
and nothing needs the whole raster in memory; a raster no larger than that is
read at full resolution and its percentiles are exact.

:func:`read_window` reads one rectangle of the raster (a rasterio window); :func:`load_raster`
reads the whole raster and refuses rasters of more than
:data:`~clickmask.io.images.MAX_IMAGE_PIXELS` pixels (read them by windows).

Coordinates: :class:`RasterInfo` holds the CRS (WKT, and its EPSG code when it
has one) and the geotransform. Pixel corners are at integer pixel coordinates
(``(0, 0)`` is the top-left corner of the top-left pixel, the convention of
:mod:`clickmask.geometry`), and the geotransform maps such a point ``(x, y)`` to
map coordinates (:meth:`RasterInfo.pixel_to_map`), as GDAL's geotransform does. A
raster without a CRS (also one placed by ground control points only) works in
pixel coordinates: its transform is the identity,
:attr:`RasterInfo.georeferenced` is False and :attr:`RasterInfo.coordinate_note`
says so in words for the user.

Errors: a missing, truncated or corrupt file, a band index out of range, a band
selection of other than one or three bands, or a data type with no display
(complex) raise :class:`RasterReadError` (an
:class:`~clickmask.errors.ImageReadError`) with one line naming the file and the
problem.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from clickmask.errors import ImageReadError

__all__ = [
    "RasterInfo",
    "RasterReadError",
    "Stretch",
    "RasterView",
    "LIMIT_SAMPLE_SIZE",
    "TIFF_SUFFIXES",
    "read_info",
    "is_georeferenced_tiff",
    "default_bands",
    "select_bands",
    "percentile_limits",
    "stretch_to_uint8",
    "open_view",
    "read_window",
    "load_raster",
    "describe_image",
]

PathLike = str | os.PathLike[str]

#: The long side (pixels) of the decimated read the stretch limits are computed from.
LIMIT_SAMPLE_SIZE = 1024
#: Suffixes (lowercase) of files that may be GeoTIFFs.
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
_GDAL_MESSAGE_CHARS = 160


class RasterReadError(ImageReadError):
    """A raster cannot be read, or a band selection does not fit it."""


def _error(path: PathLike, problem: str) -> RasterReadError:
    return RasterReadError(f"cannot read raster '{path}': {problem}")


def _gdal_text(exc: BaseException) -> str:
    """The most specific message in an exception chain (GDAL's own, not rasterio's "see previous")."""
    chain, cause = [], exc
    while cause is not None and len(chain) < 10:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    messages = [" ".join(str(c).split()) for c in chain if str(c).strip()]
    specific = [m for m in messages if "see previous" not in m.lower()]
    text = (specific[-1] if specific else messages[0] if messages else "") or type(exc).__name__
    return text if len(text) <= _GDAL_MESSAGE_CHARS else text[: _GDAL_MESSAGE_CHARS - 3] + "..."


def _describe(exc: BaseException, reading_pixels: bool) -> str:
    text = _gdal_text(exc)
    lowered = text.lower()
    if isinstance(exc, MemoryError):
        return "not enough memory to read it"
    if "no such file" in lowered or "does not exist" in lowered:
        return "file not found"
    if "permission denied" in lowered:
        return "permission denied"
    if "not recognized as" in lowered or "not a supported file format" in lowered:
        return f"not a raster format GDAL reads ({text})"
    if reading_pixels:
        return f"pixel data is truncated or corrupt ({text})"
    return f"corrupt or unsupported raster ({text})"


@contextlib.contextmanager
def _reading(path: PathLike, reading_pixels: bool = False) -> Iterator[None]:
    """Turn any rasterio/GDAL failure inside the block into one RasterReadError line."""
    try:
        yield
    except RasterReadError:
        raise
    except Exception as exc:  # rasterio raises RasterioIOError, CPLE_* errors, ValueError, ...
        raise _error(path, _describe(exc, reading_pixels)) from exc


def _check_file(path: PathLike) -> Path:
    file = Path(path)
    if not file.exists():
        raise _error(file, "file not found")
    if file.is_dir():
        raise _error(file, "is a directory, not a file")
    if file.stat().st_size == 0:
        raise _error(file, "file is empty")
    return file


@contextlib.contextmanager
def _open(path: PathLike) -> Iterator[Any]:
    """An open rasterio dataset; GDAL's warnings about missing georeferencing are silenced."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    file = _check_file(path)
    with _reading(file), warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        dataset = rasterio.open(file)
    try:
        yield dataset
    finally:
        dataset.close()


# ----------------------------------------------------------------------------- metadata


@dataclass(frozen=True)
class RasterInfo:
    """What a raster is, without its pixels.

    ``transform`` is the affine map from pixel-corner coordinates ``(x, y)`` to
    map coordinates as ``(a, b, c, d, e, f)``: ``X = a*x + b*y + c``,
    ``Y = d*x + e*y + f`` (rasterio's order; :attr:`geotransform` gives GDAL's).
    Without a CRS it is the identity and coordinates are pixels.
    """

    path: str
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    crs_wkt: str | None
    epsg: int | None
    transform: tuple[float, float, float, float, float, float]
    driver: str
    block_shapes: tuple[tuple[int, int], ...]
    overviews: tuple[int, ...]
    color_interp: tuple[str, ...]

    @property
    def georeferenced(self) -> bool:
        """True when the raster has a CRS (map coordinates), False for pixel coordinates."""
        return self.crs_wkt is not None

    @property
    def crs_name(self) -> str:
        """``EPSG:<code>``, else the CRS's WKT, else ``""``."""
        if self.epsg is not None:
            return f"EPSG:{self.epsg}"
        return self.crs_wkt or ""

    @property
    def geotransform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL's order ``(c, a, b, f, d, e)``: origin x, pixel width, row rotation, origin y, ..."""
        a, b, c, d, e, f = self.transform
        return (c, a, b, f, d, e)

    @property
    def coordinate_note(self) -> str:
        """One sentence on the coordinates this raster works in."""
        if self.georeferenced:
            return f"'{self.path}' is in {self.crs_name}; exports use map coordinates"
        return f"'{self.path}' has no coordinate reference system: it works in pixel coordinates"

    def pixel_to_map(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-corner coordinates -> map coordinates (float64 arrays)."""
        a, b, c, d, e, f = self.transform
        x = np.asarray(xs, dtype=np.float64)
        y = np.asarray(ys, dtype=np.float64)
        return a * x + b * y + c, d * x + e * y + f

    def map_to_pixel(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map coordinates -> pixel-corner coordinates (float64 arrays)."""
        a, b, c, d, e, f = self.transform
        det = a * e - b * d
        if det == 0:
            raise _error(self.path, "its geotransform cannot be inverted")
        x = np.asarray(xs, dtype=np.float64) - c
        y = np.asarray(ys, dtype=np.float64) - f
        return (e * x - b * y) / det, (-d * x + a * y) / det

    def to_json(self) -> dict[str, Any]:
        """The metadata as JSON-serialisable values."""
        return {
            "path": self.path, "width": self.width, "height": self.height, "count": self.count,
            "dtype": self.dtype, "nodata": None if self.nodata is None or math.isnan(self.nodata) else self.nodata,
            "crs": self.crs_name or None, "crs_wkt": self.crs_wkt, "epsg": self.epsg,
            "transform": list(self.transform), "geotransform": list(self.geotransform),
            "georeferenced": self.georeferenced, "coordinate_note": self.coordinate_note,
        }


def _info(dataset: Any, path: PathLike) -> RasterInfo:
    crs = dataset.crs
    crs_wkt = crs.to_wkt() if crs else None
    epsg = None
    if crs:
        with contextlib.suppress(Exception):
            epsg = crs.to_epsg()
    transform = tuple(float(v) for v in tuple(dataset.transform)[:6]) if crs else (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    dtypes = set(dataset.dtypes)
    if len(dtypes) != 1:
        raise _error(path, f"its bands have different data types ({', '.join(sorted(dtypes))})")
    nodata = dataset.nodata
    return RasterInfo(
        path=str(path), width=int(dataset.width), height=int(dataset.height), count=int(dataset.count),
        dtype=str(dataset.dtypes[0]) if dataset.count else "", nodata=None if nodata is None else float(nodata),
        crs_wkt=crs_wkt, epsg=epsg, transform=transform,  # type: ignore[arg-type]
        driver=str(dataset.driver), block_shapes=tuple(tuple(int(v) for v in s) for s in dataset.block_shapes),
        overviews=tuple(dataset.overviews(1)) if dataset.count else (),
        color_interp=tuple(ci.name for ci in dataset.colorinterp),
    )


def read_info(path: PathLike) -> RasterInfo:
    """The metadata of a raster (its header only).

    Raises:
        RasterReadError: missing, empty, unrecognised or corrupt file, or no bands.
    """
    with _open(path) as dataset, _reading(path):
        info = _info(dataset, path)
    if info.count < 1:
        raise _error(path, "it has no bands")
    return info


def is_georeferenced_tiff(path: PathLike) -> bool:
    """True for a ``.tif``/``.tiff`` file that rasterio opens and that has a CRS.

    Anything else (another suffix, a plain TIFF, a file rasterio cannot open)
    is False: :func:`clickmask.io.images.load_image` then reads it as before.
    """
    file = Path(path)
    if file.suffix.lower() not in TIFF_SUFFIXES:
        return False
    try:
        with _open(file) as dataset:
            return bool(dataset.crs)
    except Exception:  # noqa: BLE001 - not a raster we read: the plain image path decides
        return False


# ----------------------------------------------------------------------------- bands and stretch


def default_bands(count: int) -> tuple[int, ...]:
    """Bands 1, 2, 3 (RGB) for three or more bands, band 1 (gray) for one or two."""
    return (1, 2, 3) if count >= 3 else (1,)


def select_bands(info: RasterInfo, bands: Sequence[int] | None = None) -> tuple[int, ...]:
    """Check a band selection against a raster: one or three 1-based band indices.

    ``None`` is :func:`default_bands`. Raises :class:`RasterReadError` for a
    selection of another length, an index out of ``1..count``, or a data type
    that has no display (complex).
    """
    if np.dtype(info.dtype).kind == "c":
        raise _error(info.path, f"unsupported band data type {info.dtype} (complex values have no display)")
    chosen = default_bands(info.count) if bands is None else tuple(bands)
    if len(chosen) not in (1, 3):
        raise _error(info.path, f"unsupported band layout {list(chosen)}: choose 3 bands (RGB) or 1 (gray)")
    for band in chosen:
        if isinstance(band, bool) or not isinstance(band, (int, np.integer)):
            raise _error(info.path, f"band index {band!r} is not an integer")
        if not 1 <= band <= info.count:
            raise _error(info.path, f"band {band} does not exist (the raster has bands 1..{info.count})")
    return tuple(int(b) for b in chosen)


@dataclass(frozen=True)
class Stretch:
    """How band values become 0..255: ``mode`` ``"auto"``, ``"percentile"``, ``"minmax"`` or ``"none"``.

    ``low`` and ``high`` are the percentiles (0..100) of ``"percentile"`` (and of
    ``"auto"`` on non-uint8 data).
    """

    mode: str = "auto"
    low: float = 2.0
    high: float = 98.0

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "percentile", "minmax", "none"):
            raise ValueError(f"unknown stretch mode {self.mode!r}")
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(f"stretch percentiles must satisfy 0 <= low < high <= 100, got {self.low}, {self.high}")

    def resolved(self, dtype: str | np.dtype) -> str:
        """The mode used for data of ``dtype`` (``"auto"`` resolved)."""
        if self.mode != "auto":
            return self.mode
        return "none" if np.dtype(dtype) == np.uint8 else "percentile"


def percentile_limits(
    values: np.ndarray, valid: np.ndarray | None = None, stretch: Stretch = Stretch()
) -> np.ndarray:
    """Per band, the values that map to 0 and 255: a ``(C, 2)`` float64 array.

    ``values`` is ``(C, H, W)`` (or ``(H, W)`` for one band) of any real dtype;
    ``valid`` the same shape, bool (or nonzero = valid), None = all valid.
    Non-finite values are never valid. ``"none"`` gives ``(0, 255)``; a band
    whose limits coincide falls back to its min..max; a band with no valid pixel
    gives ``(0, 0)``.
    """
    data = np.asarray(values)
    if data.ndim == 2:
        data = data[np.newaxis]
    mode = stretch.resolved(data.dtype)
    limits = np.zeros((data.shape[0], 2), dtype=np.float64)
    if mode == "none":
        limits[:, 1] = 255.0
        return limits
    ok = np.ones(data.shape, dtype=bool) if valid is None else np.asarray(valid).reshape(data.shape) != 0
    if data.dtype.kind == "f":
        ok = ok & np.isfinite(data)
    for k in range(data.shape[0]):
        sample = data[k][ok[k]].astype(np.float64, copy=False)
        if sample.size == 0:
            continue
        if mode == "percentile":
            lo, hi = (float(v) for v in np.percentile(sample, (stretch.low, stretch.high)))
        else:
            lo, hi = float(sample.min()), float(sample.max())
        if not hi > lo:
            lo, hi = float(sample.min()), float(sample.max())
        limits[k] = (lo, hi)
    return limits


def stretch_to_uint8(values: np.ndarray, limits: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``(C, H, W)`` band values and ``(C, 2)`` limits -> ``(H, W, 3)`` uint8 RGB.

    Per band ``(v - lo) * 255 / (hi - lo)`` in float32, clipped to 0..255 and
    rounded; a band with ``hi <= lo`` (constant) is 0. One band is repeated as
    gray. Invalid pixels (``valid`` False, or non-finite) are 0 in every band.
    """
    data = np.asarray(values)
    if data.ndim == 2:
        data = data[np.newaxis]
    lims = np.asarray(limits, dtype=np.float64).reshape(-1, 2)
    if data.shape[0] not in (1, 3) or lims.shape[0] != data.shape[0]:
        raise ValueError(f"need 1 or 3 bands with one (lo, hi) pair each, got {data.shape} and {lims.shape}")
    height, width = data.shape[1:]
    out = np.zeros((height, width, data.shape[0]), dtype=np.uint8)
    bad = np.zeros((height, width), dtype=bool)
    if valid is not None:
        bad |= ~(np.asarray(valid).reshape(data.shape).astype(bool).all(axis=0))
    for k in range(data.shape[0]):
        lo, hi = float(lims[k, 0]), float(lims[k, 1])
        band = data[k]
        if band.dtype.kind == "f":
            bad |= ~np.isfinite(band)
        if not hi > lo:
            continue
        scaled = band.astype(np.float32)
        scaled -= np.float32(lo)
        scaled *= np.float32(255.0 / (hi - lo))
        np.nan_to_num(scaled, copy=False, nan=0.0, posinf=255.0, neginf=0.0)
        np.clip(scaled, 0.0, 255.0, out=scaled)
        np.rint(scaled, out=scaled)
        out[:, :, k] = scaled.astype(np.uint8)
    out[bad] = 0
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return out


# ----------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RasterView:
    """A raster as shown: its metadata, the selected bands and their stretch limits ``(C, 2)``."""

    info: RasterInfo
    bands: tuple[int, ...]
    stretch: Stretch
    limits: np.ndarray


def _read(dataset: Any, path: PathLike, bands: tuple[int, ...], window: Any = None,
          out_shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(values, valid) of the selected bands, each ``(C, h, w)``; valid from GDAL's masks (nodata, alpha)."""
    kwargs: dict[str, Any] = {"window": window}
    if out_shape is not None:
        kwargs["out_shape"] = (len(bands), *out_shape)
    with _reading(path, reading_pixels=True):
        values = dataset.read(list(bands), **kwargs)
        valid = dataset.read_masks(list(bands), **kwargs) != 0
    return values, valid


def open_view(path: PathLike, bands: Sequence[int] | None = None, stretch: Stretch | None = None) -> RasterView:
    """Check the band selection and compute the stretch limits from a decimated read (module docstring)."""
    chosen_stretch = stretch or Stretch()
    with _open(path) as dataset:
        with _reading(path):
            info = _info(dataset, path)
        if info.count < 1:
            raise _error(path, "it has no bands")
        chosen = select_bands(info, bands)
        if chosen_stretch.resolved(info.dtype) == "none":
            limits = percentile_limits(np.zeros((len(chosen), 1, 1), np.uint8), None, Stretch("none"))
        else:
            scale = min(1.0, LIMIT_SAMPLE_SIZE / max(info.width, info.height))
            shape = (max(1, round(info.height * scale)), max(1, round(info.width * scale)))
            values, valid = _read(dataset, path, chosen, out_shape=None if scale == 1.0 else shape)
            limits = percentile_limits(values, valid, chosen_stretch)
    return RasterView(info=info, bands=chosen, stretch=chosen_stretch, limits=limits)


def read_window(
    path: PathLike,
    window: tuple[int, int, int, int],
    bands: Sequence[int] | None = None,
    stretch: Stretch | None = None,
    *,
    view: RasterView | None = None,
) -> np.ndarray:
    """One rectangle ``(col_off, row_off, width, height)`` of a raster as ``(height, width, 3)`` uint8 RGB.

    Only that window is read from the file. The stretch limits are the
    raster's (``view``, else computed by :func:`open_view` from ``bands`` and
    ``stretch``), so neighbouring windows match. Parts of the window outside the
    raster are black.
    """
    from rasterio.windows import Window

    v = view or open_view(path, bands, stretch)
    col, row, width, height = (int(n) for n in window)
    if width < 1 or height < 1:
        raise _error(path, f"window {width}x{height} has no pixels")
    out = np.zeros((height, width, 3), dtype=np.uint8)
    c0, r0 = max(col, 0), max(row, 0)
    c1, r1 = min(col + width, v.info.width), min(row + height, v.info.height)
    if c1 <= c0 or r1 <= r0:
        return out
    with _open(path) as dataset:
        values, valid = _read(dataset, path, v.bands, Window(c0, r0, c1 - c0, r1 - r0))
    out[r0 - row: r1 - row, c0 - col: c1 - col] = stretch_to_uint8(values, v.limits, valid)
    return out


def load_raster(
    path: PathLike, bands: Sequence[int] | None = None, stretch: Stretch | None = None
) -> np.ndarray:
    """The whole raster as ``HxWx3`` uint8 RGB (band selection and stretch as in the module docstring).

    Raises:
        RasterReadError: as :func:`read_info`, a bad band selection, truncated
            pixel data, or more than :data:`~clickmask.io.images.MAX_IMAGE_PIXELS`
            pixels (read such a raster with :func:`read_window`).
    """
    from clickmask.io.images import MAX_IMAGE_PIXELS

    view = open_view(path, bands, stretch)
    info = view.info
    if info.width * info.height > MAX_IMAGE_PIXELS:
        raise _error(path, f"raster is too large to read whole ({info.width}x{info.height} pixels, "
                           f"more than {MAX_IMAGE_PIXELS:,}); read it by windows")
    return read_window(path, (0, 0, info.width, info.height), view=view)


def describe_image(path: PathLike, name: str | None = None, bands: Sequence[int] | None = None,
                   stretch: Stretch | None = None, view: RasterView | None = None) -> dict[str, Any]:
    """What the app shows about an image's coordinates, as JSON; ``name`` replaces the path in it.

    A georeferenced TIFF gives its :meth:`RasterInfo.to_json` plus the bands
    shown and their stretch limits; any other image ``georeferenced: false``
    and a sentence saying that it works in pixel coordinates. ``bands`` and
    ``stretch`` are the display's (defaults: :func:`default_bands`, ``Stretch()``);
    ``view``, when given, is them already opened (a large image's, from its overviews).

    Raises:
        RasterReadError: a georeferenced TIFF that cannot be read.
    """
    shown = name if name is not None else str(path)
    if not is_georeferenced_tiff(path):
        return {"path": shown, "georeferenced": False, "crs": None,
                "coordinate_note": f"'{shown}' has no coordinate reference system: it works in pixel coordinates"}
    view = view or open_view(path, bands, stretch)
    info = view.info
    described = replace(info, path=shown).to_json()
    mode = view.stretch.resolved(info.dtype)
    return {**described, "bands": list(view.bands),
            "stretch": {"mode": mode, "low": view.stretch.low, "high": view.stretch.high,
                        "limits": view.limits.tolist()}}
