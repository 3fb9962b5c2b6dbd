"""How much a per-category adapter could ever save: an adapter fitted to the answers.

This is a measurement, not a method. :class:`OracleAdapter` trains each
category's :class:`~clickmask.training.adapter.EmbeddingAdapter` (the module
OPO trains online) *before* the sequence is annotated, on the **ground-truth
masks of all the sequence's objects** -- the very objects it is then tested on
-- with the same click simulation and loss as OPO, but Adam and many more
steps, so that it fits those answers as closely as the module allows. An
online adapter of this form knows less: only the user's earlier masks of the
category, a few steps each. So the oracle's NoC change is a reference for what
OPO could reach with this module and this frozen decoder, not a proof (fitting
the answers is not the same as minimising clicks, and the robot's click paths
add noise); the gap between the two is what OPO fails to carry over from one
object to the next.

Run with ``clickmask eval --sequential --opo-oracle STEPS``; it plugs into the
runner as an :class:`~clickmask.sequential.runner.Adapter` that never learns
during the run.
"""

from __future__ import annotations

import zlib

import numpy as np

from clickmask.engine.predictor import Predictor
from clickmask.errors import ClickmaskError
from clickmask.evaluation.runner import load_sample
from clickmask.sequential.opo import OPOConfig, adapted_twin, opo_click_config
from clickmask.sequential.sequences import ObjectSequence

Affine = tuple[np.ndarray, np.ndarray]


def fit_oracle_affine(decoder, samples: list, steps: int, config: OPOConfig, category: str) -> tuple[Affine, list[float]]:
    """Train a fresh adapter for ``steps`` Adam steps on ``samples`` (TrainSample with ground truths).

    Clicks and loss as OPO's (``config``: batch size, click counts, iterative
    clicks); the learning rate is ``config.lr``. Adam, not OPO's SGD: OPO's
    few online steps are its constraint, the oracle's job is to fit.
    Returns ((A, b), the loss of each step).
    """
    import torch

    from clickmask.training.adapter import EmbeddingAdapter
    from clickmask.training.loop import train_steps

    if steps < 1:
        raise ClickmaskError(f"the oracle adapter needs at least 1 step, got {steps}")
    adapter = EmbeddingAdapter(rank=config.rank, seed=config.seed)
    optimizer = torch.optim.Adam(adapter.parameters(), lr=config.lr)
    rng = np.random.default_rng([config.seed, zlib.crc32(category.encode()), 1])
    adapter.train()
    losses = train_steps(decoder, adapter, samples, steps, optimizer, rng, opo_click_config(config))
    return adapter.affine(), losses


class OracleAdapter:
    """The runner's ``Adapter`` with, per category, an adapter fitted to the sequence's own ground truths.

    ``sequences``: the sequences the run annotates (their ground truths are the
    training set); ``steps``: Adam steps per category. Training happens when a
    category's first object is asked for, from the plain predictor's (cached)
    raw embeddings; afterwards the adapter is fixed for the whole sequence.
    """

    wants_crops = False

    def __init__(self, predictor: Predictor, sequences: list[ObjectSequence], steps: int,
                 config: OPOConfig = OPOConfig()) -> None:
        self.steps = steps
        self.config = config
        self.plain = predictor
        self.sequences = {s.category: s for s in sequences}
        self.decoder, self._adapted, self._active = adapted_twin(predictor, "oracle", config.crops, "the oracle adapter")
        self.affines: dict[str, Affine] = {}
        self.losses: dict[str, list[float]] = {}

    def _training_samples(self, sequence: ObjectSequence) -> list:
        """One TrainSample per object: the raw embedding of its image and its ground-truth mask."""
        from clickmask.sequential.runner import predictor_embedding
        from clickmask.training.loop import TrainSample

        samples = []
        for sample in sequence.samples:
            image, gt, _ = load_sample(sample)
            self.plain.set_image(image)
            emb = np.asarray(predictor_embedding(self.plain), dtype=np.float16)
            samples.append(TrainSample(emb, gt, gt.shape, name=sample.name))
        return samples

    def affine_for(self, category: str, index: int) -> Affine | None:
        """The category's fitted (A, b), trained on first use."""
        if category not in self.affines:
            if category not in self.sequences:
                raise ClickmaskError(f"oracle adapter: no sequence {category!r}")
            samples = self._training_samples(self.sequences[category])
            self.affines[category], self.losses[category] = fit_oracle_affine(
                self.decoder, samples, self.steps, self.config, category)
        return self.affines[category]

    def predictor_for(self, category: str, index: int) -> Predictor:
        """The predictor with the category's fitted adapter (the same for every object)."""
        self._adapted.set_adapter(self.affine_for(category, index))
        return self._active

    def finished(self, category: str, index: int, image: np.ndarray, embedding: np.ndarray, mask: np.ndarray,
                 crop: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Nothing to learn during the run: the adapter was fitted beforehand."""

    def describe(self) -> dict:
        """The configuration and each category's first and last training loss, for reports."""
        return {
            "oracle_steps": self.steps, "lr": self.config.lr, "batch_size": self.config.batch_size,
            "iterative": self.config.iterative, "crops": self.config.crops,
            "loss_first_last": {c: [round(v[0], 4), round(v[-1], 4)] for c, v in self.losses.items()},
        }
