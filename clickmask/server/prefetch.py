"""Background prefetch of embeddings: the next images', so the first click on the next image is fast,
and the zoom-in crop the next click of an object will need (known one click ahead)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable

import numpy as np

from clickmask.errors import ClickmaskError

logger = logging.getLogger(__name__)


CropJob = tuple[str, int, tuple[int, int, int, int]]  # ("crop", image id, (x0, y0, x1, y1))


class Prefetcher:
    """One daemon thread that computes the embeddings of queued images and crops, most recent request first.

    ``load(image_id)`` returns the decoded image; ``predictor.prefetch`` must be thread-safe.
    """

    def __init__(self, predictor, load: Callable[[int], np.ndarray]) -> None:
        self.predictor = predictor
        self.load = load
        self._queue: deque[int | CropJob] = deque()
        self._crops: dict[CropJob, np.ndarray] = {}  # the pixels of the queued crops
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

    def forget(self, image_id: int) -> None:
        """The image's pixels changed (display settings): a later request computes its embedding again."""
        with self._cond:
            self._done.discard(image_id)

    def request_crop(self, image_id: int, crop: tuple[int, int, int, int], pixels: np.ndarray) -> None:
        """Encode a crop (HxWx3 uint8 ``pixels`` of image ``image_id`` at ``crop``) before anything else:
        the next click of the object being clicked needs it. Older crop requests are dropped."""
        job: CropJob = ("crop", image_id, tuple(int(v) for v in crop))
        with self._cond:
            if job == self.current or job in self._crops:
                return
            for old in list(self._crops):
                self._queue.remove(old)
            self._crops = {job: pixels}
            self._queue.appendleft(job)
            self._cond.notify()

    def wait_for_crop(self, image_id: int, timeout: float = 60.0) -> None:
        """If a crop of ``image_id`` is being encoded right now, wait until it is done (not encode it twice)."""
        end = time.monotonic() + timeout
        with self._cond:
            while isinstance(self.current, tuple) and self.current[1] == image_id and time.monotonic() < end:
                self._cond.wait(max(0.0, end - time.monotonic()))

    def status(self) -> dict:
        """``current``: the image being encoded (``crop``: True when it is a zoom-in crop of it); ``queued``: images."""
        with self._cond:
            crop = isinstance(self.current, tuple)
            return {"busy": self.current is not None or bool(self._queue),
                    "current": self.current[1] if crop else self.current, "crop": crop,
                    "queued": [q for q in self._queue if not isinstance(q, tuple)],
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
                pixels = self._crops.pop(self.current, None) if isinstance(self.current, tuple) else None
            job = self.current
            t0 = time.perf_counter()
            try:
                self.predictor.prefetch(pixels if pixels is not None else self.load(job))
            except ClickmaskError as exc:
                logger.info("prefetch of %s skipped: %s", job, exc)
            except Exception:  # noqa: BLE001 - the thread must survive any failure
                logger.exception("prefetch of %s failed", job)
            with self._cond:
                self.last_ms = (time.perf_counter() - t0) * 1000
                if not isinstance(job, tuple):
                    self._done.add(job)
                self.computed += 1
                self.current = None
                self._cond.notify_all()
