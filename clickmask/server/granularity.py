"""First-click granularity in the app: one memory per category, stored in the project.

Each finished object with a category records which mask token of its first
click matched the finished mask best (:class:`~clickmask.learning.granularity.GranularityMemory`);
the next object's first click of that category is decoded with the token the
memory prefers, once that has proven better than the engine's own choice. The
memories live in the project's settings under ``first_click_granularity`` (JSON
keyed by category id) and are reset with the category's adaptation.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Sequence

import numpy as np

from clickmask.errors import ClickmaskError
from clickmask.project.store import ProjectStore
from clickmask.learning.granularity import GranularityMemory

SETTING = "first_click_granularity"
logger = logging.getLogger(__name__)


class GranularityService:
    """The project's per-category first-click memories."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._memories: dict[str, GranularityMemory] = self._load()

    def _load(self) -> dict[str, GranularityMemory]:
        raw = self.store.get_setting(SETTING)
        if not raw:
            return {}
        try:
            return {str(k): GranularityMemory.from_dict(v) for k, v in raw.items()}
        except (ClickmaskError, AttributeError) as exc:
            logger.warning("project setting %s is unreadable (%s); starting with empty memories", SETTING, exc)
            return {}

    def _save(self) -> None:
        self.store.set_setting(SETTING, {k: m.to_dict() for k, m in self._memories.items()})

    def preferred(self, category_id: int | None) -> int | None:
        """The mask token for a first click of this category (None: the engine's own choice)."""
        if category_id is None:
            return None
        with self._lock:
            memory = self._memories.get(str(category_id))
            return None if memory is None else memory.preferred()

    def learn(self, category_id: int, readings: Sequence[np.ndarray], default: int, mask: np.ndarray) -> None:
        """Record a finished object: its first click's K token masks, the engine's token, the final mask."""
        with self._lock:
            memory = self._memories.setdefault(str(category_id), GranularityMemory(len(readings)))
            memory.record(readings, default, mask)
            self._save()

    def status(self, category_id: int) -> dict[str, Any]:
        """{objects, token}: finished objects recorded and the token in use (None = the engine's choice)."""
        with self._lock:
            memory = self._memories.get(str(category_id))
            if memory is None:
                return {"objects": 0, "token": None}
            return {"objects": memory.objects, "token": memory.preferred()}

    def reset(self, category_id: int) -> None:
        """Forget a category's memory."""
        with self._lock:
            if self._memories.pop(str(category_id), None) is not None:
                self._save()
