"""Window level / width: medical intensities (Hounsfield units, MR signal) to 8-bit gray.

A window ``(level L, width W)`` maps values linearly so that ``L - W/2`` becomes
0 and ``L + W/2`` becomes 255; values outside are clipped, the result is rounded
to the nearest integer (halves to even) and NaN becomes 0. This is the plain
linear window (not DICOM's ``W - 1`` variant, which differs by under one gray
level for the widths used here).

CT has fixed presets in Hounsfield units (:data:`PRESETS`). MR intensities have
no absolute scale, so MR (and any modality without a preset) is windowed by
percentiles of the volume's values (:func:`percentile_window`).

All functions are plain NumPy with explicit dtypes: the arithmetic is done in
float64 whatever the input, and the outputs are ``uint8``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickmask.errors import ClickmaskError

#: Default percentiles of :func:`percentile_window` (MR and unknown modalities).
DEFAULT_PERCENTILES = (0.5, 99.5)

#: At most this many values are sampled (evenly strided) to compute percentiles of a volume.
_PERCENTILE_SAMPLES = 2_000_000


@dataclass(frozen=True)
class Window:
    """A display window: ``level`` (centre) and ``width``, in the data's units (HU for CT)."""

    level: float
    width: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.level) and np.isfinite(self.width)):
            raise ClickmaskError(f"window level and width must be finite numbers (got L{self.level} W{self.width})")
        if self.width <= 0:
            raise ClickmaskError(f"window width must be positive (got W{self.width})")

    @property
    def lower(self) -> float:
        """The value shown as black."""
        return float(self.level) - float(self.width) / 2.0

    @property
    def upper(self) -> float:
        """The value shown as white."""
        return float(self.level) + float(self.width) / 2.0


#: CT presets in Hounsfield units.
PRESETS: dict[str, Window] = {
    "ct-abdomen": Window(level=40.0, width=400.0),
    "ct-lung": Window(level=-600.0, width=1500.0),
    "ct-bone": Window(level=400.0, width=1800.0),
    "ct-brain": Window(level=40.0, width=80.0),
}


def preset(name: str) -> Window:
    """The preset called ``name`` (``ct-abdomen``, ``ct-lung``, ``ct-bone``, ``ct-brain``; ``ct-`` may be left out)."""
    key = name.strip().lower()
    if not key.startswith("ct-"):
        key = "ct-" + key
    try:
        return PRESETS[key]
    except KeyError:
        known = ", ".join(sorted(PRESETS))
        raise ClickmaskError(f"unknown window preset '{name}' (known: {known})") from None


def window_to_uint8(values: np.ndarray, window: Window) -> np.ndarray:
    """Map ``values`` (any shape, any real dtype) through ``window`` to ``uint8`` of the same shape."""
    data = np.asarray(values, dtype=np.float64)
    scaled = (data - window.lower) * 255.0 / float(window.width)  # multiply first: exact on whole numbers
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)


def _sample(values: np.ndarray) -> np.ndarray:
    """The finite values of ``values`` (flattened), evenly strided down to at most ``_PERCENTILE_SAMPLES``."""
    flat = np.asarray(values).reshape(-1)
    if flat.size > _PERCENTILE_SAMPLES:
        flat = flat[:: -(-flat.size // _PERCENTILE_SAMPLES)]
    flat = flat.astype(np.float64, copy=False)
    return flat[np.isfinite(flat)]


def percentile_window(
    values: np.ndarray, low: float = DEFAULT_PERCENTILES[0], high: float = DEFAULT_PERCENTILES[1]
) -> Window:
    """The window spanning the ``low``..``high`` percentiles of the finite ``values``.

    Large arrays are sampled (evenly strided) for speed. If the two percentiles
    coincide the min..max range is used; a constant (or empty / all non-finite)
    input gives a width-1 window centred on its value (or on 0).
    """
    if not 0.0 <= low < high <= 100.0:
        raise ClickmaskError(f"window percentiles must satisfy 0 <= low < high <= 100 (got {low}, {high})")
    finite = _sample(values)
    if finite.size == 0:
        return Window(level=0.0, width=1.0)
    lo, hi = (float(v) for v in np.percentile(finite, [low, high]))
    if hi <= lo:
        lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:
        return Window(level=lo, width=1.0)
    return Window(level=(lo + hi) / 2.0, width=hi - lo)


def gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    """HxW uint8 -> HxWx3 uint8 (the channel repeated), C-contiguous: what the model takes."""
    plane = np.asarray(gray)
    if plane.ndim != 2 or plane.dtype != np.uint8:
        raise ValueError(f"expected an HxW uint8 array, got {plane.dtype} of shape {plane.shape}")
    return np.ascontiguousarray(np.repeat(plane[:, :, np.newaxis], 3, axis=2))
