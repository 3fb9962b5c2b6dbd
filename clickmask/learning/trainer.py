"""The OPO trainer of one category (needs PyTorch): the same class in the app's worker and the benchmark.

:class:`CategoryTrainer` holds a category's :class:`~clickmask.learning.adapter.EmbeddingAdapter`,
its SGD optimizer, the memory of recent finished objects and the gate. After
each finished object the caller :meth:`~CategoryTrainer.add`\\ s it (the gate
tests the current adapter on it first), :meth:`~CategoryTrainer.train`\\ s
(``steps`` SGD steps with clicks re-simulated from the finished masks: 1-5
positive, 0-5 negative, BCE, through the differentiable decoder of
:mod:`clickmask.training.torch_decoder`) and reads :meth:`~CategoryTrainer.published`,
the per-pixel affine map clicks use (the adapter is linear per pixel, so
inference applies it in NumPy and keeps the ONNX decoder).

Where it runs: the app trains in a child process
(:mod:`clickmask.server.opo_worker`); the sequential benchmark trains
synchronously between objects (:mod:`clickmask.evaluation.sequential.online`).
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Callable

import numpy as np
import torch

from clickmask.learning.adapter import EmbeddingAdapter
from clickmask.learning.opo import OPOConfig, PrequentialGate
from clickmask.models.registry import ModelSpec
from clickmask.training.loop import ClickConfig, TrainSample, evaluate_loss, train_steps
from clickmask.training.torch_decoder import TorchSamDecoder

Affine = tuple[np.ndarray, np.ndarray]  # (256x256 A, 256 b): out = A x + b per pixel

#: The gate's test of an adapter on an object: one random positive click inside it, then three
#: robot clicks at the centre of the largest error (previous mask fed back), drawn this many times.
GATE_DRAWS = 3


def opo_click_config(config: OPOConfig) -> ClickConfig:
    """The click simulation and loss of one OPO step: random clicks only (SIIS), BCE."""
    return ClickConfig(max_pos=config.max_pos, max_neg=config.max_neg, iterative_clicks=0, loss="bce",
                       batch_size=config.batch_size)


def held_out_gain(decoder: TorchSamDecoder, adapter: EmbeddingAdapter, sample: TrainSample, seed: int) -> float:
    """How much ``adapter`` improves the plain decoder on ``sample``, an object it was not trained on.

    Both models get the same click sequences' starts (``GATE_DRAWS`` draws of
    one random positive click, then 3 robot clicks on each model's own
    prediction); the result is the mean low-res IoU over all steps and draws
    of the adapted model minus that of the plain one (in [-1, 1]; > 0 = the
    adapter helps). The target is the user's accepted mask, never a ground truth.
    """
    clicks = ClickConfig(max_pos=1, max_neg=0, iterative_clicks=3, loss="bce", batch_size=1)
    draws = [sample] * GATE_DRAWS
    adapted = evaluate_loss(decoder, adapter, draws, clicks, seed)["iou_per_step"]
    plain = evaluate_loss(decoder, None, draws, clicks, seed)["iou_per_step"]
    return float(np.mean(adapted) - np.mean(plain))


def load_frozen_decoder(spec: ModelSpec) -> TorchSamDecoder:
    """The differentiable decoder of a model spec, frozen (only adapters are trained).

    Uses ``$CLICKMASK_THREADS`` torch threads when set (benchmarks share the CPU).
    """
    threads = int(os.environ.get("CLICKMASK_THREADS", 0) or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    decoder = TorchSamDecoder.from_onnx(spec.decoder)
    for param in decoder.parameters():
        param.requires_grad_(False)
    return decoder


class CategoryTrainer:
    """One category's OPO state: adapter, optimizer, memory of finished objects, gate, click RNG.

    ``key``: an integer naming the category (its id in the app, a hash of its
    name in the benchmark); with ``config.seed`` it seeds the simulated clicks.
    ``adapter``: weights to continue from (a restored adapter counts as
    trained, so the next object tests it); None = identity.
    """

    def __init__(self, config: OPOConfig, key: int, adapter: EmbeddingAdapter | None = None) -> None:
        self.config = config
        self.memory: deque[TrainSample] = deque(maxlen=config.memory)
        self.rng = np.random.default_rng([config.seed, key])
        self.gate = PrequentialGate(config.gate) if config.gate else None
        self.losses: list[float] = []
        self.seen = 0  # objects offered to add(), empty ones included (the gate tests' seeds)
        self.restore(adapter)

    def restore(self, adapter: EmbeddingAdapter | None) -> None:
        """Continue from ``adapter`` (None: a fresh identity adapter) with a fresh optimizer."""
        self.trained = adapter is not None
        self.adapter = adapter if adapter is not None else EmbeddingAdapter(seed=self.config.seed)
        self.optimizer = torch.optim.SGD(self.adapter.parameters(), lr=self.config.lr, momentum=self.config.momentum)

    def add(self, decoder: TorchSamDecoder, embedding: np.ndarray, mask: np.ndarray, name: str = "") -> bool:
        """Add a finished object (raw 1x256x64x64 embedding, final HxW bool mask) to the memory.

        With the gate, an adapter that has been trained is first tested on it
        (it has not seen it). An empty mask (nothing accepted) adds nothing and
        returns False. The embedding is kept as float16 (training casts back).
        """
        self.seen += 1
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return False
        sample = TrainSample(np.asarray(embedding, dtype=np.float16), mask.copy(), mask.shape, name=name)
        if self.gate is not None and self.trained:
            self.gate.record(held_out_gain(decoder, self.adapter, sample, seed=self.seen))
        self.memory.append(sample)
        return True

    def forget_last(self, count: int) -> None:
        """Drop the ``count`` most recently added objects from the memory (they broke training)."""
        for _ in range(min(count, len(self.memory))):
            self.memory.pop()

    def train(self, decoder: TorchSamDecoder, interrupted: Callable[[], bool] = lambda: False,
              pause: float = 0.0) -> bool:
        """Run ``config.steps`` SGD steps on the memory; False when ``interrupted()`` stopped it early.

        ``interrupted`` is asked before every step; ``pause`` seconds are
        slept after each (a waiting click gets the CPU). Nothing to train on
        (empty memory, zero steps) returns True at once.
        """
        if not self.memory or self.config.steps <= 0:
            return True
        clicks = opo_click_config(self.config)
        self.adapter.train()
        for _ in range(self.config.steps):
            if interrupted():
                return False
            self.losses += train_steps(decoder, self.adapter, list(self.memory), 1, self.optimizer, self.rng, clicks)
            if pause:
                time.sleep(pause)
        self.trained = True
        return True

    def published(self) -> Affine | None:
        """The (A, b) map clicks should use now; None (the plain model) while the gate holds the adapter back."""
        if self.gate is not None and not self.gate.is_open():
            return None
        return self.adapter.affine()
