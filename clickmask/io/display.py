"""What the user sees of an image, and so what the model gets: per-image display settings.

Three kinds of project image:

- ``"raster"``: a GeoTIFF with a CRS (:mod:`clickmask.io.rasters`). Its settings are
  ``{"bands": [r, g, b] | [gray], "stretch": "auto" | "percentile" | "minmax" | "none",
  "low": 2.0, "high": 98.0}``: the bands shown and their stretch.
- ``"dicom"``: a single DICOM image file (:func:`clickmask.io.volumes.load_dicom_file`,
  in Hounsfield units for CT). Its settings are ``{"preset": "abdomen" | "lung" |
  "bone" | "brain" | None, "level": L, "width": W}``: a preset, or a free window.
- ``"plain"``: anything else; it has no settings.

Settings are stored per image in the project (``ProjectStore.display`` /
``set_display``); ``None`` means the defaults (the raster's default bands and
stretch, the DICOM's default window: the abdomen preset for CT, percentiles
otherwise). :func:`check_display` checks and normalises what the user sends;
:func:`render` turns a file and its settings into the ``HxWx3 uint8`` RGB image
that the browser shows and the model encodes (the embedding cache keys images by
their pixels, so new settings give a new embedding); :func:`describe` says what
the panel shows: metadata, the settings in effect and, for a DICOM, the
patient/study identification. That identification is only ever shown: no export
reads it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.io.images import DICOM_EXTENSIONS as DICOM_SUFFIXES

PathLike = str | os.PathLike[str]

#: The window presets of a DICOM image (names without ``ct-``).
DICOM_PRESETS = ("abdomen", "lung", "bone", "brain")
STRETCH_MODES = ("auto", "percentile", "minmax", "none")
_MAX_BANDS_INDEX = 10_000
_MAX_WINDOW = 1e7


def is_dicom(path: PathLike) -> bool:
    """True for a file with a DICOM suffix (the reader decides whether it really is one)."""
    return Path(path).suffix.lower() in DICOM_SUFFIXES


def image_kind(path: PathLike) -> str:
    """``"raster"``, ``"dicom"`` or ``"plain"`` (module docstring)."""
    if is_dicom(path):
        return "dicom"
    from clickmask.io.rasters import is_georeferenced_tiff

    return "raster" if is_georeferenced_tiff(path) else "plain"


def _number(value: Any, what: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ClickmaskError(f"{what} must be a number from {lo:g} to {hi:g}, got {value!r:.50}")
    return float(value)


def check_display(kind: str, value: Any) -> dict[str, Any] | None:
    """``value`` checked and normalised for an image of ``kind``; None stays None (the defaults).

    Band indices are checked against the raster itself when it is read
    (:func:`clickmask.io.rasters.select_bands`). Raises ClickmaskError with one
    line saying what is wrong.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ClickmaskError("display settings must be a JSON object (or null for the defaults)")
    if kind == "raster":
        unknown = set(value) - {"bands", "stretch", "low", "high"}
        if unknown:
            raise ClickmaskError(f"unknown raster setting {sorted(unknown)[0]!r:.50} (bands, stretch, low, high)")
        bands = value.get("bands")
        if bands is not None:
            if not isinstance(bands, list) or len(bands) not in (1, 3) or not all(
                    isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= _MAX_BANDS_INDEX for b in bands):
                raise ClickmaskError("bands must be 3 band numbers (red, green, blue) or 1 (gray), counted from 1")
        mode = value.get("stretch", "auto")
        if mode not in STRETCH_MODES:
            raise ClickmaskError(f"stretch must be one of {', '.join(STRETCH_MODES)}, got {mode!r:.50}")
        low = _number(value.get("low", 2.0), "the low percentile", 0.0, 100.0)
        high = _number(value.get("high", 98.0), "the high percentile", 0.0, 100.0)
        if not low < high:
            raise ClickmaskError(f"the low percentile ({low:g}) must be below the high one ({high:g})")
        return {"bands": None if bands is None else list(bands), "stretch": mode, "low": low, "high": high}
    if kind == "dicom":
        unknown = set(value) - {"preset", "level", "width"}
        if unknown:
            raise ClickmaskError(f"unknown DICOM setting {sorted(unknown)[0]!r:.50} (preset, level, width)")
        name = value.get("preset")
        if name is not None:
            if not isinstance(name, str) or name.strip().lower().removeprefix("ct-") not in DICOM_PRESETS:
                raise ClickmaskError(f"preset must be one of {', '.join(DICOM_PRESETS)}, got {name!r:.50}")
            from clickmask.io.window import preset

            key = name.strip().lower().removeprefix("ct-")
            window = preset(key)
            return {"preset": key, "level": window.level, "width": window.width}
        if "level" not in value or "width" not in value:
            raise ClickmaskError("a DICOM window needs a preset, or both level and width")
        level = _number(value["level"], "the window level", -_MAX_WINDOW, _MAX_WINDOW)
        width = _number(value["width"], "the window width", 0.0, _MAX_WINDOW)
        if width <= 0:
            raise ClickmaskError("the window width must be positive")
        return {"preset": None, "level": level, "width": width}
    raise ClickmaskError("this image has no display settings (only GeoTIFFs with a CRS and DICOM files have)")


def raster_options(settings: dict[str, Any] | None):
    from clickmask.io.rasters import Stretch

    if not settings:
        return None, Stretch()
    return settings.get("bands"), Stretch(settings.get("stretch", "auto"), settings.get("low", 2.0),
                                          settings.get("high", 98.0))


def _dicom_window(volume: Any, settings: dict[str, Any] | None):
    from clickmask.io.window import Window

    if settings:
        return Window(level=float(settings["level"]), width=float(settings["width"]))
    return volume.default_window()


def render(path: PathLike, settings: dict[str, Any] | None = None, kind: str | None = None) -> np.ndarray:
    """The image as shown with ``settings``: ``HxWx3 uint8`` RGB (raises ImageReadError / ClickmaskError)."""
    kind = kind or image_kind(path)
    if kind == "raster":
        from clickmask.io.rasters import load_raster

        bands, stretch = raster_options(settings)
        return load_raster(path, bands, stretch)
    if kind == "dicom":
        volume, _ = load_dicom_image(path)
        return volume.slice_rgb(0, 0, _dicom_window(volume, settings))
    from clickmask.io.images import load_image

    return load_image(path)


def load_dicom_image(path: PathLike):
    """``(Volume, DicomInfo)`` of a single DICOM image; a read failure is an ImageReadError naming the file."""
    from clickmask.errors import ImageReadError
    from clickmask.io.volumes import load_dicom_file

    try:
        volume, info = load_dicom_file(path)
    except ImageReadError:
        raise
    except ClickmaskError as exc:
        raise ImageReadError(str(exc)) from None
    if volume.shape[0] != 1:
        raise ImageReadError(f"{path}: a DICOM with {volume.shape[0]} frames is a volume, not an image")
    return volume, info


def dicom_size(path: PathLike) -> tuple[int, int]:
    """``(width, height)`` of a DICOM image from its header (raises ImageReadError)."""
    import pydicom

    from clickmask.errors import ImageReadError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        width, height = int(ds.Columns), int(ds.Rows)
    except Exception as exc:  # noqa: BLE001 - any failure is one line naming the file
        reason = "it has no pixel data" if isinstance(exc, AttributeError) else f"cannot read it ({exc})"
        raise ImageReadError(f"{path}: not a readable DICOM image: {reason}"[:300]) from None
    return width, height


def describe(path: PathLike, settings: dict[str, Any] | None = None, name: str | None = None,
             view: Any = None) -> dict[str, Any]:
    """What the display panel shows (module docstring) as JSON; ``name`` replaces the path in it;
    ``view``: a raster's bands and limits already opened (a large image's)."""
    shown = name if name is not None else str(path)
    kind = image_kind(path)
    if kind == "raster":
        from clickmask.io.rasters import describe_image

        bands, stretch = raster_options(settings)
        return {"kind": kind, "settings": settings,
                **describe_image(path, name=shown, bands=bands, stretch=stretch, view=view)}
    if kind == "dicom":
        volume, info = load_dicom_image(path)
        window = _dicom_window(volume, settings)
        height, width = volume.shape[1:]
        return {"kind": kind, "settings": settings, "path": shown, "width": width, "height": height,
                "modality": volume.modality, "presets": list(DICOM_PRESETS),
                "window": {"level": window.level, "width": window.width,
                           "preset": (settings or {}).get("preset") if settings else
                           ("abdomen" if volume.modality == "CT" else None)},
                "metadata": info.as_dict(), "georeferenced": False, "crs": None,
                "coordinate_note": f"'{shown}' is a DICOM image: it works in pixel coordinates"}
    from clickmask.io.rasters import describe_image

    return {"kind": kind, "settings": None, **describe_image(path, name=shown)}
