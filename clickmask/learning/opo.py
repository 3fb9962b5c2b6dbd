"""Online Purification Optimization (OPO, SIIS): settings and the gate, without PyTorch.

Each category has its own embedding adapter (a residual 1x1 conv on the
1x256x64x64 embedding, identity at start) trained after every finished object
on a memory of the category's most recent finished objects: the raw embedding
and the final mask the user accepted (never a ground truth). Object ``n`` of a
category is segmented with the adapter trained on objects ``1 .. n - delta``,
so training can run behind the user. With ``gate`` > 0 a trained adapter is
served only while it has beaten the plain model on recent finished objects it
had not been trained on (:class:`PrequentialGate`); otherwise clicks use the
plain model.

The trainer itself (:class:`clickmask.learning.trainer.CategoryTrainer`, needs
PyTorch) is the one the app's background worker and the sequential benchmark
both run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickmask.errors import ClickmaskError


@dataclass(frozen=True)
class OPOConfig:
    """Online training settings (SIIS: SGD with momentum, lr 5e-3, batch 8, 4 steps, clicks 1-5 / 0-5).

    ``memory``: how many recent finished objects per category are trained on;
    ``delta``: object n uses the adapter trained on objects up to n - delta;
    ``gate``: > 0 serves the adapter only while it beat the plain model on the
    last ``gate`` finished objects it had not been trained on (0 = always).
    """

    delta: int = 2
    memory: int = 32
    steps: int = 4
    batch_size: int = 8
    lr: float = 5e-3
    momentum: float = 0.9
    max_pos: int = 5
    max_neg: int = 5
    seed: int = 0
    gate: int = 10

    def __post_init__(self) -> None:
        if self.delta < 1:
            raise ClickmaskError(f"OPO delta must be at least 1, got {self.delta}")
        if self.memory < 1 or self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ClickmaskError("OPO needs memory >= 1, steps >= 0, batch size >= 1 and a positive learning rate")
        if self.gate < 0:
            raise ClickmaskError(f"OPO gate window must be at least 0 (0 = off), got {self.gate}")


class PrequentialGate:
    """Serve an adapter only while it has helped on objects it had not been trained on.

    Before a finished object joins the training memory, the adapter of that
    moment is tested on it (:func:`clickmask.learning.trainer.held_out_gain`).
    The gate is open when the mean gain over the last ``window`` such tests is
    positive; with no test yet it is closed (the plain model is served). This
    keeps a category's adaptation from making it worse when its finished masks
    do not teach anything that carries over to the next object.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ClickmaskError(f"OPO gate window must be at least 1, got {window}")
        self.window = window
        self.gains: list[float] = []

    def record(self, gain: float) -> None:
        """Add one held-out test result."""
        self.gains.append(float(gain))

    def is_open(self) -> bool:
        """True when the recent held-out gains are positive on average."""
        recent = self.gains[-self.window:]
        return bool(recent) and float(np.mean(recent)) > 0.0
