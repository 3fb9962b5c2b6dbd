"""Segmenting on a very large image: the model works on a window around the object.

The encoder sees 1024 x 1024 pixels. A 20000 px image scaled to that shrinks a
100 px building to 5 px, so on a large image (:func:`clickmask.io.pyramid.is_large`)
an object is segmented on a *window* of the image at (close to) full
resolution: :class:`WindowedSession` is an :class:`~clickmask.engine.session.InteractiveSession`
on the window's pixels, with the clicks, box and mask in image coordinates
outside and window coordinates inside.

- **Which window.** A square around the first click (or around the box),
  :data:`MIN_WINDOW` pixels, or as large as what the user sees when they click
  (``view``, the visible rectangle of the image) up to :data:`MAX_WINDOW`: an
  annotator zooms until the object is a comfortable size on screen, so the
  view says the object's scale. Clamped inside the image.
- **Objects across the border.** A click outside the window, or a mask that
  reaches an edge of the window that is not an edge of the image, moves the
  object to a larger window around its mask and clicks (:func:`grown_window`),
  where its prompts are replayed: one object, whatever windows or tiles it
  crosses.
- **Embeddings.** A window's pixels are set on the predictor like an image
  (its embedding cache keys images by content), through an ``activate``
  callback so that the caller, which may share the predictor among sessions,
  knows which window is set.

Coordinates: pixel corners at integers, ``(0, 0)`` the image's top-left corner
(:mod:`clickmask.geometry`); a window is ``[x0, x1) x [y0, y1)`` in image pixels;
masks are the window's ``HxW`` bool, placed at :attr:`WindowedSession.offset`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.predictor import Prediction
from clickmask.engine.session import InteractiveSession
from clickmask.errors import ClickmaskError

#: Smallest window side (image pixels): the encoder's own size, so the object is at full resolution.
MIN_WINDOW = 1024
#: Largest window side: beyond it an object is too large for a window (it is scaled like a whole image).
MAX_WINDOW = 4096
#: A grown window leaves this fraction of the object's size as margin around it.
MARGIN = 0.5


@dataclass(frozen=True)
class Window:
    """A rectangle ``[x0, x1) x [y0, y1)`` of the image, in pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x1 and self.y0 <= y < self.y1

    def to_local(self, click: Click) -> Click:
        return Click(click.x - self.x0, click.y - self.y0, click.positive)

    def to_json(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]


def square_window(cx: float, cy: float, side: int, image_size: tuple[int, int]) -> Window:
    """A ``side`` x ``side`` window centred on ``(cx, cy)``, shifted (and cut) to lie inside the image
    ``(width, height)``."""
    w, h = image_size
    sw, sh = min(int(side), w), min(int(side), h)
    x0 = int(round(min(max(cx - sw / 2, 0), w - sw)))
    y0 = int(round(min(max(cy - sh / 2, 0), h - sh)))
    return Window(x0, y0, x0 + sw, y0 + sh)


def _side(extent: float, min_side: int, max_side: int) -> int:
    return int(min(max(extent, min_side), max_side))


def window_for_click(click: Click, image_size: tuple[int, int], view: Sequence[float] | None = None,
                     min_side: int = MIN_WINDOW, max_side: int = MAX_WINDOW) -> Window:
    """The window of an object's first click: as large as the visible ``view`` ``(x0, y0, x1, y1)``
    (clamped to ``[min_side, max_side]``; ``min_side`` without a view), centred on the click."""
    extent = 0.0 if view is None else max(view[2] - view[0], view[3] - view[1])
    return square_window(click.x, click.y, _side(extent, min_side, max_side), image_size)


def window_for_box(box: BoxPrompt, image_size: tuple[int, int], min_side: int = MIN_WINDOW,
                   max_side: int = MAX_WINDOW) -> Window:
    """The window of an object started with a box: the box and a margin around it."""
    extent = max(box.x1 - box.x0, box.y1 - box.y0) * (1 + 2 * MARGIN)
    return square_window((box.x0 + box.x1) / 2, (box.y0 + box.y1) / 2, _side(extent, min_side, max_side),
                         image_size)


def grown_window(current: Window, mask: np.ndarray | None, points: Sequence[tuple[float, float]],
                 image_size: tuple[int, int], max_side: int = MAX_WINDOW) -> Window | None:
    """A window holding the object's mask (``current``'s HxW bool) and the ``points`` (image
    coordinates) with a margin, at least as large as ``current``; None when that is ``current``."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    if mask is not None and mask.any():
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        xs += [current.x0 + cols[0], current.x0 + cols[-1] + 1]
        ys += [current.y0 + rows[0], current.y0 + rows[-1] + 1]
    if not xs:
        return None
    bx0, bx1, by0, by1 = min(xs), max(xs), min(ys), max(ys)
    extent = max(bx1 - bx0, by1 - by0) * (1 + 2 * MARGIN)
    side = _side(extent, max(current.width, current.height), max_side)
    window = square_window((bx0 + bx1) / 2, (by0 + by1) / 2, side, image_size)
    return None if window == current else window


def touches_inner_edge(mask: np.ndarray, window: Window, image_size: tuple[int, int]) -> bool:
    """True when the mask reaches an edge of the window that is not an edge of the image."""
    w, h = image_size
    return bool((window.x0 > 0 and mask[:, 0].any()) or (window.x1 < w and mask[:, -1].any())
                or (window.y0 > 0 and mask[0].any()) or (window.y1 < h and mask[-1].any()))


class WindowedSession:
    """Click-by-click segmentation of one object of a large image, on a window of it (module docstring).

    Args:
        predictor: the predictor (``set_image`` / ``predict``), shared or not.
        read: ``read(window) -> HxWx3 uint8`` pixels of a window.
        image_size: ``(width, height)`` of the image.
        activate: ``activate(window)`` makes the window the predictor's image; by default
            ``predictor.set_image(read(window))`` whenever the window differs from the last one set.

    The clicks, box and :meth:`current_mask` follow
    :class:`~clickmask.engine.session.InteractiveSession`, with clicks and the
    box in image coordinates and the mask the window's (at :attr:`offset`).
    """

    def __init__(self, predictor, read: Callable[[Window], np.ndarray], image_size: tuple[int, int],
                 activate: Callable[[Window], None] | None = None, min_side: int = MIN_WINDOW,
                 max_side: int = MAX_WINDOW) -> None:
        self.predictor = predictor
        self.read = read
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.min_side, self.max_side = min_side, max_side
        self._activate = activate or self._set_window
        self._set: Window | None = None
        self.window: Window | None = None
        self.view: Sequence[float] | None = None
        self._inner = InteractiveSession(predictor)

    # ------------------------------------------------------------------ windows
    def _set_window(self, window: Window) -> None:
        if self._set != window:
            self.predictor.set_image(self.read(window))
            self._set = window

    def _use(self, window: Window) -> None:
        self.window = window
        self._activate(window)

    def _move(self, window: Window) -> None:
        """Move the object to ``window``: its prompts replayed there (the chosen first mask kept)."""
        box, clicks, choice = self.box, self.clicks, self._inner.choices[0]
        self._inner.reset()
        self._use(window)
        if box is not None:
            self._inner.start_box(self._local_box(box))
        for i, click in enumerate(clicks):
            self._inner.add_click(window.to_local(click))
            if i == 0 and box is None and choice and self._inner.choices[1]:
                self._inner.choose(choice)

    def _grow_if_cut(self) -> None:
        """A mask cut by the window's edge: once, to a window around it."""
        mask = self._inner.current_mask()
        if self.window is None or mask is None or not touches_inner_edge(mask, self.window, self.image_size):
            return
        grown = grown_window(self.window, mask, [(c.x, c.y) for c in self.clicks], self.image_size,
                             self.max_side)
        if grown is not None:
            self._move(grown)

    def _local_box(self, box: BoxPrompt) -> BoxPrompt:
        w = self.window
        assert w is not None
        return BoxPrompt(box.x0 - w.x0, box.y0 - w.y0, box.x1 - w.x0, box.y1 - w.y0)

    def set_view(self, view: Sequence[float] | None) -> None:
        """The visible rectangle ``(x0, y0, x1, y1)`` of the image; sizes the next object's window."""
        if view is not None and (len(view) != 4 or not view[2] > view[0] or not view[3] > view[1]):
            raise ClickmaskError(f"view {list(view)}: expected [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
        self.view = None if view is None else [float(v) for v in view]

    def set_window(self, window: Sequence[int]) -> None:
        """Start the next object on a given window (a restored object's), clamped inside the image."""
        x0, y0, x1, y1 = (int(v) for v in window)
        w, h = self.image_size
        x0, y0 = max(0, min(x0, w - 1)), max(0, min(y0, h - 1))
        self.window = Window(x0, y0, max(x0 + 1, min(x1, w)), max(y0 + 1, min(y1, h)))

    # ------------------------------------------------------------------ the session's interface
    @property
    def offset(self) -> tuple[int, int]:
        """Where the window (and so the mask) starts in the image: ``(x0, y0)``."""
        return (0, 0) if self.window is None else (self.window.x0, self.window.y0)

    @property
    def clicks(self) -> list[Click]:
        w = self.window
        return [] if w is None else [Click(c.x + w.x0, c.y + w.y0, c.positive) for c in self._inner.clicks]

    @property
    def box(self) -> BoxPrompt | None:
        b, w = self._inner.box, self.window
        return None if b is None or w is None else BoxPrompt(b.x0 + w.x0, b.y0 + w.y0, b.x1 + w.x0, b.y1 + w.y0)

    @property
    def choices(self) -> tuple[int, int]:
        return self._inner.choices

    @property
    def redo_count(self) -> int:
        return self._inner.redo_count

    @property
    def prediction(self) -> Prediction | None:
        return self._inner.prediction

    @property
    def first_prediction(self) -> Prediction | None:
        return self._inner.first_prediction

    def current_mask(self) -> np.ndarray | None:
        """The window's HxW bool mask (at :attr:`offset`), None before the first prompt."""
        return self._inner.current_mask()

    def add_click(self, click: Click) -> Prediction:
        if self._inner.prediction is None and not self._inner.clicks:
            if self.window is None:
                self.window = window_for_click(click, self.image_size, self.view, self.min_side, self.max_side)
            self._use(self.window)
        elif not self.window.contains(click.x, click.y):
            grown = grown_window(self.window, self._inner.current_mask(),
                                 [(c.x, c.y) for c in self.clicks] + [(click.x, click.y)], self.image_size,
                                 self.max_side)
            if grown is not None:
                self._move(grown)
            if not self.window.contains(click.x, click.y):
                raise ClickmaskError(f"click at {click.x:.0f},{click.y:.0f} is too far from the object: an object "
                                     f"spans at most {self.max_side} px here (finish it, then start another)")
        else:
            self._use(self.window)
        self._inner.add_click(self.window.to_local(click))
        self._grow_if_cut()
        return self._inner.prediction

    def start_box(self, box: BoxPrompt) -> Prediction:
        if self._inner.prediction is not None:
            raise ClickmaskError("a box starts an object: finish or drop the current clicks first")
        self._use(window_for_box(box, self.image_size, self.min_side, self.max_side))
        self._inner.start_box(self._local_box(box))
        self._grow_if_cut()
        return self._inner.prediction

    def choose(self, index: int) -> Prediction:
        if self.window is not None:
            self._use(self.window)
        return self._inner.choose(index)

    def undo(self) -> Prediction | None:
        return self._inner.undo()

    def redo(self) -> Prediction | None:
        return self._inner.redo()

    def reset(self) -> None:
        self._inner.reset()
        self.window = None
