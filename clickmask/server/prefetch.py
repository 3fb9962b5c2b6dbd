"""Background prefetch of image embeddings, so the first click on the next image is fast."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from clickmask.errors import ClickmaskError

logger = logging.getLogger(__name__)


class Prefetcher:
    """One daemon thread that computes the embeddings of queued images, most recent request first.

    ``load(image_id)`` returns the decoded image; ``predictor.prefetch`` must be thread-safe.
    """

    def __init__(self, predictor, load: Callable[[int], np.ndarray]) -> None:
        self.predictor = predictor
        self.load = load
        self._queue: deque[int] = deque()
        self._done: set[int] = set()
        self._cond = threading.Condition()
        self.current: int | None = None
        self.last_ms = 0.0
        self.computed = 0
        self._thread = threading.Thread(target=self._run, name="clickmask-prefetch", daemon=True)
        self._thread.start()

    def request(self, image_ids: list[int]) -> None:
        """Queue images (the first is the most urgent); already prefetched ones are skipped."""
        with self._cond:
            for iid in reversed(image_ids):
                if iid in self._done or iid == self.current:
                    continue
                if iid in self._queue:
                    self._queue.remove(iid)
                self._queue.appendleft(iid)
            self._cond.notify()

    def status(self) -> dict:
        with self._cond:
            return {"busy": self.current is not None or bool(self._queue), "current": self.current,
                    "queued": list(self._queue),
                    "done": len(self._done), "last_ms": round(self.last_ms, 1)}

    def is_ready(self, image_id: int) -> bool:
        with self._cond:
            return image_id in self._done

    def wait_for(self, image_id: int, timeout: float = 120.0) -> None:
        """If ``image_id`` is being prefetched right now, wait until it is done."""
        end = time.monotonic() + timeout
        with self._cond:
            while self.current == image_id and time.monotonic() < end:
                self._cond.wait(max(0.0, end - time.monotonic()))

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until nothing is queued or running (for tests and benchmarks)."""
        end = time.monotonic() + timeout
        with self._cond:
            while self._queue or self.current is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue:
                    self._cond.wait()
                self.current = self._queue.popleft()
            iid = self.current
            t0 = time.perf_counter()
            try:
                self.predictor.prefetch(self.load(iid))
            except ClickmaskError as exc:
                logger.info("prefetch of image %s skipped: %s", iid, exc)
            except Exception:  # noqa: BLE001 - the thread must survive any failure
                logger.exception("prefetch of image %s failed", iid)
            with self._cond:
                self.last_ms = (time.perf_counter() - t0) * 1000
                self._done.add(iid)
                self.computed += 1
                self.current = None
                self._cond.notify_all()
