"""OPO in the sequential benchmark: the app's trainer, run synchronously between objects.

Each category gets a :class:`~clickmask.learning.trainer.CategoryTrainer`
(the class the app's background worker runs) and the robot clicks with an
:class:`~clickmask.learning.adapted.AdaptedPredictor` (the app's adapted
predictor) that shares the plain predictor's sessions and embedding cache.
Training runs when an object is finished, so the run is deterministic:
object ``index`` of a category uses the map published after object
``index - delta``.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict

import numpy as np

from clickmask.engine.predictor import Predictor
from clickmask.errors import ClickmaskError
from clickmask.learning.adapted import Affine, make_adapted
from clickmask.learning.opo import OPOConfig
from clickmask.learning.trainer import CategoryTrainer, load_frozen_decoder


class OnlineAdapter:
    """Per-category OPO for the sequential runner (its ``Adapter``)."""

    def __init__(self, predictor: Predictor, config: OPOConfig = OPOConfig()) -> None:
        self.config = config
        self._active, self._adapted = make_adapted(predictor)
        self.decoder = load_frozen_decoder(self._adapted.spec)
        self.trainers: dict[str, CategoryTrainer] = {}
        self.versions: dict[str, list[Affine | None]] = {}  # [k] = the map after k finished objects

    def trainer(self, category: str) -> CategoryTrainer:
        """The category's trainer (created on first use)."""
        if category not in self.trainers:
            self.trainers[category] = CategoryTrainer(self.config, zlib.crc32(category.encode()))
            self.versions[category] = [None]
        return self.trainers[category]

    def affine_for(self, category: str, index: int) -> Affine | None:
        """The map object ``index`` (0-based) of ``category`` is segmented with: trained on objects up to
        ``index - delta`` (None = the plain model)."""
        self.trainer(category)
        versions = self.versions[category]
        return versions[max(0, min(index - self.config.delta + 1, len(versions) - 1))]

    def predictor_for(self, category: str, index: int) -> Predictor:
        """The adapted predictor for object ``index`` of ``category``."""
        self._adapted.set_adapter(self.affine_for(category, index))
        return self._active

    def finished(self, category: str, index: int, embedding: np.ndarray, mask: np.ndarray) -> None:
        """Object ``index`` is done: learn its raw 1x256x64x64 embedding and final HxW bool mask (may be empty)."""
        trainer = self.trainer(category)
        versions = self.versions[category]
        if len(versions) != index + 1:
            raise ClickmaskError(f"OPO: objects of {category!r} must be finished in order (got {index})")
        trainer.add(self.decoder, embedding, mask, name=f"{category}#{index}")
        trainer.train(self.decoder)
        versions.append(trainer.published())

    def describe(self) -> dict:
        """The configuration, for reports."""
        return asdict(self.config)

    def gate_log(self) -> dict[str, dict]:
        """Per category: the held-out gains the gate saw and which published versions were the adapter."""
        return {
            name: {"gains": [round(g, 4) for g in trainer.gate.gains],
                   "served": [v is not None for v in self.versions[name][1:]]}
            for name, trainer in self.trainers.items() if trainer.gate is not None
        }
