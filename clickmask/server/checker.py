"""Background check of a project's images: sizes from the headers, unreadable files listed with their error."""

from __future__ import annotations

import logging
import threading

from clickmask.errors import ImageReadError
from clickmask.io.images import image_size
from clickmask.project.store import ProjectStore

logger = logging.getLogger(__name__)


def check_images(store: ProjectStore) -> int:
    """Record the size (or error) of every image not checked yet; returns how many were checked."""
    n = 0
    for image in store.list_images():
        if image["width"] is not None or image["error"] is not None:
            continue
        try:
            w, h = image_size(store.image_path(image["id"]))
            store.set_image_info(image["id"], w, h, None)
        except ImageReadError as exc:
            store.set_image_info(image["id"], None, None, str(exc))
        n += 1
    return n


def start_checker(store: ProjectStore) -> threading.Thread:
    """Run :func:`check_images` in a daemon thread."""

    def run() -> None:
        try:
            check_images(store)
        except Exception:  # noqa: BLE001 - a failed check must not stop the app
            logger.exception("checking the project's images failed")

    thread = threading.Thread(target=run, name="clickmask-check", daemon=True)
    thread.start()
    return thread
