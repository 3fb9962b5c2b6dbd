"""The click type used throughout clickmask (robot user, engine, UI)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Click:
    """One user click.

    ``x`` and ``y`` are pixel coordinates of the pixel centre, ``x`` = column and
    ``y`` = row: the pixel at (row r, col c) is clicked as ``Click(x=c, y=r, ...)``.
    Pixel ``c`` covers ``[c - 0.5, c + 0.5)``. ``positive`` is True for a click on
    the object (foreground), False for a click on the background.
    """

    x: float
    y: float
    positive: bool

    def as_int(self) -> tuple[int, int]:
        """Return ``(x, y)`` rounded to the nearest pixel (halves round up)."""
        return int(math.floor(self.x + 0.5)), int(math.floor(self.y + 0.5))
