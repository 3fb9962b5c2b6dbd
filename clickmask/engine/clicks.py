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


@dataclass(frozen=True)
class BoxPrompt:
    """A rectangle the user drew around an object (SAM's box prompt).

    ``x0, y0`` is the top-left and ``x1, y1`` the bottom-right corner, in the
    same pixel coordinates as :class:`Click` (x = column, y = row). Build it
    with :meth:`of`, which orders the corners of a drag in any direction.
    """

    x0: float
    y0: float
    x1: float
    y1: float

    @classmethod
    def of(cls, xa: float, ya: float, xb: float, yb: float) -> "BoxPrompt":
        """The box spanned by two opposite corners, in any order."""
        return cls(min(xa, xb), min(ya, yb), max(xa, xb), max(ya, yb))

    @property
    def corners(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((x0, y0), (x1, y1))."""
        return (self.x0, self.y0), (self.x1, self.y1)
