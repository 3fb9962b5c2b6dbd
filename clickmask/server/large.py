"""The project's very large images, each a :class:`~clickmask.io.pyramid.LargeImage` (tiles and windows).

An image is large when its header says more than
:data:`~clickmask.io.pyramid.LARGE_PIXELS` pixels; it is then never decoded
whole. Opening one starts making its overviews in a background thread; a tile
asked for before they exist waits for them.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from clickmask.errors import ImageReadError
from clickmask.io.display import raster_options
from clickmask.io.images import image_size
from clickmask.io.pyramid import LargeImage, is_large
from clickmask.project.store import ProjectStore

logger = logging.getLogger(__name__)

#: Large images kept open (each holds only its header, stretch limits and a lock).
MAX_OPEN = 8


class LargeImages:
    """Which images of a project are large, and their :class:`LargeImage`, by image id (bounded)."""

    def __init__(self, store: ProjectStore, cache: Path | None = None) -> None:
        self.store = store
        self.cache = cache
        self._open: OrderedDict[int, LargeImage] = OrderedDict()
        self._small: set[int] = set()  # image ids known not to be large: a click asks no database
        self._lock = threading.Lock()

    def get(self, image_id: int) -> LargeImage | None:
        """The image's LargeImage, or None for an image decoded whole (or unreadable: its reader says why)."""
        with self._lock:
            if image_id in self._small:
                return None
            if image_id in self._open:
                self._open.move_to_end(image_id)
                return self._open[image_id]
        info = self.store.image(image_id)
        path = self.store.image_path(image_id)
        size = (info["width"], info["height"])
        if size[0] is None:
            try:
                size = image_size(path)
            except ImageReadError:
                return None
        if not is_large(*size):
            with self._lock:
                self._small.add(image_id)
            return None
        bands, stretch = raster_options(self.store.display(image_id))
        try:
            large = LargeImage(path, bands, stretch, self.cache)
        except ImageReadError as exc:
            self.store.set_image_info(image_id, None, None, str(exc))
            raise
        if (info["width"], info["height"], info["error"]) != (large.width, large.height, None):
            self.store.set_image_info(image_id, large.width, large.height, None)
        with self._lock:
            self._open[image_id] = large
            while len(self._open) > MAX_OPEN:
                self._open.popitem(last=False)
        return large

    def prepare_soon(self, image_id: int) -> None:
        """Make the image's overviews in a background thread (nothing to do when they exist)."""
        large = self.get(image_id)
        if large is None or large.ready:
            return

        def run() -> None:
            try:
                large.prepare()
            except ImageReadError as exc:
                logger.warning("%s", exc)
                self.store.set_image_info(image_id, None, None, str(exc))

        threading.Thread(target=run, name=f"clickmask-pyramid-{image_id}", daemon=True).start()

    def check(self, image_id: int, settings: dict[str, Any]) -> None:
        """Raise ImageReadError (one line) unless the display settings fit the image (one small read)."""
        large = self.get(image_id)
        assert large is not None
        bands, stretch = raster_options(settings)
        trial = LargeImage(large.path, bands, stretch, self.cache)
        trial.tile(trial.levels - 1, 0, 0)

    def forget(self, image_id: int) -> None:
        """Drop the image's LargeImage (its display settings changed: the next get uses the new ones)."""
        with self._lock:
            self._open.pop(image_id, None)
