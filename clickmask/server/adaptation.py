"""Online Purification Optimization (OPO) in the app: per-category adapters learned while annotating.

Finishing an object with a category queues (the image's raw 1x256x64x64
embedding, the final HxW bool mask) for the :class:`~clickmask.server.opo_worker.OpoWorker`,
which trains in a child process (started with the first finished object);
a click with a category decodes with that category's adapter applied to the
embedding (whole image and zoom crops, see :mod:`clickmask.learning.adapted`).
The adapter is chosen at an object's first click and kept until the object
is finished or cancelled (a reset of the category drops it at once), so an
object never changes model halfway; with the default ``delta`` = 2, object n
of a category uses an adapter learned from objects up to n - 2 at most.

Storage: table ``adapters`` of the project database, one row per category
(``adapter_to_bytes`` .npz, version, samples, model id), replaced in one
transaction after every update and loaded when the project opens (a row of
another model is ignored). Setting ``opo_enabled`` (default true) switches
OPO for the project; without PyTorch or without a SAM-style model it is off.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import threading
from functools import partial
from typing import Any, Hashable

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.project.store import ProjectStore
from clickmask.engine.refine import sam_model
from clickmask.learning.adapted import AdaptedPredictor, adapted_base, make_adapted
from clickmask.learning.opo import OPOConfig
from clickmask.server.opo_worker import IDENTITY, OpoWorker, Published

SETTING = "opo_enabled"
PAUSE = 0.02  # seconds between SGD steps: a click waiting for the CPU gets it
logger = logging.getLogger(__name__)


def opo_unavailable(predictor) -> str | None:
    """Why OPO cannot run with this predictor (None = it can)."""
    if importlib.util.find_spec("torch") is None:
        return "PyTorch is not installed"
    if adapted_base(predictor) is None:
        return f"model {predictor.model_id} has no plain SAM ONNX image embedding"
    return None


def adaptable_predictor(predictor):
    """The predictor the app clicks with: a SAM model made adaptable when PyTorch is there, else unchanged."""
    if importlib.util.find_spec("torch") is None or sam_model(predictor) is None:
        return predictor
    return make_adapted(predictor)[0]


class AdaptationService:
    """The open project's OPO: trainer, stored adapters, the adapter of each object being clicked."""

    def __init__(self, store: ProjectStore, predictor, config: OPOConfig | None = None, pause: float = PAUSE) -> None:
        self.store = store
        self.config = config or OPOConfig()
        self.reason = opo_unavailable(predictor)
        self.view: AdaptedPredictor | None = None
        self.worker: OpoWorker | None = None
        self._pins: dict[Hashable, tuple[int, Published]] = {}
        self._pins_lock = threading.Lock()
        if self.reason is not None:
            log = logger.warning if "PyTorch" in self.reason else logger.info
            log("online adaptation (OPO) is off: %s", self.reason)
            return
        from clickmask.learning.trainer import load_frozen_decoder  # PyTorch: only when OPO can run

        self.view = adapted_base(predictor)
        self.model_id = self.view.model_id
        self.worker = OpoWorker(partial(load_frozen_decoder, self.view.spec), self.config, self._store_adapter,
                                self.store.delete_adapter, pause, process=True)  # a child process: no shared GIL
        self._load()

    # ------------------------------------------------------------ state
    @property
    def available(self) -> bool:
        return self.worker is not None

    def enabled(self) -> bool:
        """OPO can run and the project's ``opo_enabled`` setting is not false."""
        return self.available and self.store.get_setting(SETTING, True) is not False

    def status(self, category_id: int) -> dict[str, Any]:
        """{category_id, enabled, reason, version, samples, served, memory, queued, busy, error}."""
        out: dict[str, Any] = {"category_id": category_id, "enabled": self.enabled(), "reason": self.reason}
        if self.worker is None:
            return {**out, "version": 0, "samples": 0, "served": False, "memory": 0, "queued": 0, "busy": False,
                "error": None}
        errors = self.worker.errors
        return {**out, **self.worker.status(category_id), "error": errors[-1] if errors else None}

    # ------------------------------------------------------------ clicks
    def select(self, key: Hashable, category_id: int | None, new_object: bool) -> None:
        """Make the predictor decode the object ``key`` (image, tab) with its category's adapter.

        The adapter is pinned at the object's first click (``new_object``) or
        when its category changes (the ``opo_enabled`` setting is read then
        too). Call with the click lock held.
        """
        if self.view is None:
            return
        chosen = None
        if category_id is not None:
            with self._pins_lock:
                pin = self._pins.get(key)
            if new_object or pin is None or pin[0] != category_id:
                pin = (category_id, self.worker.for_next_object(category_id) if self.enabled() else IDENTITY)
                with self._pins_lock:
                    self._pins[key] = pin
            chosen = pin[1]
        else:
            self.release(key)
        self.view.set_adapter(None if chosen is None else chosen.affine)

    def release(self, key: Hashable) -> None:
        """The object ``key`` is finished or cancelled: its next click starts a new object."""
        with self._pins_lock:
            self._pins.pop(key, None)

    # ------------------------------------------------------------ learning
    def learn(self, category_id: int, embedding: np.ndarray, mask: np.ndarray) -> bool:
        """Queue a finished object (raw 1x256x64x64 embedding, HxW bool mask); False when OPO is off."""
        if not self.enabled():
            return False
        try:
            self.worker.submit(category_id, embedding, mask)
        except ClickmaskError as exc:  # never fails the finish that called it
            logger.warning("%s: object not learned", exc)
            return False
        return True

    def reset(self, category_id: int) -> dict[str, Any]:
        """Back to the unadapted model for a category (stored row deleted); returns the status."""
        if self.worker is not None:
            self.worker.reset(category_id)
            with self._pins_lock:
                self._pins = {k: v for k, v in self._pins.items() if v[0] != category_id}
        return self.status(category_id)

    def training_paused(self) -> contextlib.AbstractContextManager:
        """A context in which the trainer process is stopped (wrap each click: it then has the CPU alone)."""
        return contextlib.nullcontext() if self.worker is None else self.worker.frozen()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until queued training is done (tests, benchmarks)."""
        return True if self.worker is None else self.worker.wait_idle(timeout)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()

    # ------------------------------------------------------------ storage
    def _store_adapter(self, category_id: int, published: Published, adapter) -> None:
        from clickmask.learning.adapter import adapter_to_bytes

        data = adapter_to_bytes(adapter, {"model_id": self.model_id, "version": published.version,
                                          "samples": published.samples, "served": published.affine is not None})
        self.store.put_adapter(category_id, published.version, published.samples, self.model_id, data)

    def _load(self) -> None:
        rows = self.store.list_adapters()
        if not rows:
            return
        from clickmask.learning.adapter import adapter_from_bytes

        for row in rows:
            what = f"stored OPO adapter of category {row['category_id']}"
            if row["model_id"] != self.model_id:
                logger.warning("%s is for model %s, not %s: not used", what, row["model_id"], self.model_id)
                continue
            try:
                adapter, meta = adapter_from_bytes(row["data"], what)
            except ClickmaskError as exc:
                logger.warning("%s; starting that category from the unadapted model", exc)
                continue
            self.worker.restore(row["category_id"], adapter, row["version"], row["samples"],
                                served=meta.get("served", True) is not False)

