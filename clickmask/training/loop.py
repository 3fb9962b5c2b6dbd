"""The decoder-side training step: simulated click sequences and the Iterative Click Loss.

One *sample* is a precomputed image embedding with one object's ground
truth (:class:`TrainSample`). For each sample a click sequence is simulated:
random initial clicks from the ground truth, then ``iterative_clicks`` clicks
placed one at a time by the robot user on the model's own prediction, the
previous low-res logits fed back as mask input. Every step's prediction is
scored, and the step losses are combined with the ICL weights (later clicks
weigh more). Gradients reach the trainable modules: the
:class:`EmbeddingAdapter` and, optionally, selected decoder parameters.

:func:`train_steps` is the reusable entry point, for offline training on a
dataset and for online adaptation inside an annotation session (a few SGD
steps on a memory bank of finished masks).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from clickmask.engine.clicks import Click
from clickmask.engine.refine.first_click import click_centrality
from clickmask.errors import ClickmaskError
from clickmask.learning.adapter import EmbeddingAdapter
from clickmask.training.losses import LOSSES, icl_weights, iterative_click_loss
from clickmask.training.simulate import (
    click_regions,
    initial_clicks,
    low_res_target,
    next_click,
    prompts,
    random_click_counts,
    upsample_logits,
)
from clickmask.training.torch_decoder import INPUT_SIDE, LOW_RES, TorchSamDecoder, decode


@dataclass
class TrainSample:
    """One object to learn from.

    embedding: 1x256x64x64 float32/float16 image embedding (of the raw encoder);
    gt: HxW bool object mask; hw: (height, width) of the image (= gt.shape).
    """

    embedding: np.ndarray
    gt: np.ndarray
    hw: tuple[int, int]
    name: str = ""
    _target: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _regions: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if tuple(self.gt.shape) != tuple(self.hw):
            raise ClickmaskError(f"sample {self.name or '?'}: mask shape {self.gt.shape} differs from image size {self.hw}")
        if self.embedding.ndim != 4 or self.embedding.shape[0] != 1:
            raise ClickmaskError(f"sample {self.name or '?'}: embedding must be 1xCxHxW, got {self.embedding.shape}")
        if not self.gt.any():
            raise ClickmaskError(f"sample {self.name or '?'}: the mask is empty")

    def target(self) -> tuple[np.ndarray, np.ndarray]:
        """(256x256 target, 256x256 valid) in the decoder's low-res frame (cached)."""
        if self._target is None:
            self._target = low_res_target(self.gt)
        return self._target

    def regions(self) -> tuple[np.ndarray, np.ndarray]:
        """(inner, band) HxW bool maps the initial clicks are drawn from (cached, see ``click_regions``)."""
        if self._regions is None:
            self._regions = click_regions(self.gt)
        return self._regions


FIRST_LOSSES = ("best", "mean", "expected", "central")
EXPECTED_TEMPERATURE = 0.05  # predicted IoUs differ by a few hundredths between candidates


@dataclass
class ClickConfig:
    """How click sequences are simulated and scored.

    Initial clicks: n_pos uniform in [1, max_pos], n_neg in [0, max_neg]
    (OPO in SIIS: 1-5 / 0-5). Then ``iterative_clicks`` robot clicks (CFR-ICL
    uses 3). ``loss``: "bce" or "nfl" (normalized focal loss, CFR-ICL's
    choice); ``icl``: the weight scheme of :func:`icl_weights` ("linear",
    "uniform", "last"). BCE is the default (docs/decisions/0009-offline-adapter-opt-in.md).
    ``first_loss``: how a lone first click's three candidates are scored: "best" (the
    best of them, as SAM trains), "mean" (all of them: whichever the engine picks
    must be right, for prompts meant to remove the first click's ambiguity) or
    "expected" (each weighted by a softmax of the predicted IoUs: the loss of a soft
    version of the choice SAM makes, so the scores learn to pick the right one) or
    "central" (the same, weighted by predicted IoU x click centrality: a soft version of
    the engine's ``first=central`` rule, :func:`~clickmask.engine.refine.first_click.pick_central`).
    """

    max_pos: int = 3
    max_neg: int = 3
    iterative_clicks: int = 3
    loss: str = "bce"
    icl: str = "linear"
    batch_size: int = 4
    first_loss: str = "best"

    def __post_init__(self) -> None:
        if self.first_loss not in FIRST_LOSSES:
            raise ClickmaskError(f"unknown first-click loss {self.first_loss!r} (use {', '.join(FIRST_LOSSES)})")
        if self.loss not in LOSSES:
            raise ClickmaskError(f"unknown loss {self.loss!r} (use {' or '.join(LOSSES)})")
        icl_weights(1 + self.iterative_clicks, self.icl)  # validates the scheme
        random_click_counts(np.random.default_rng(0), self.max_pos, self.max_neg)  # validates the counts
        if self.batch_size < 1:
            raise ClickmaskError(f"batch size must be at least 1, got {self.batch_size}")


#: Online adaptation settings after SIIS's OPO: 1-5 positive / 0-5 negative random clicks,
#: BCE, batches of 8 (use with SGD at lr 5e-3 for a few steps after each finished object).
OPO_CLICKS = ClickConfig(max_pos=5, max_neg=5, iterative_clicks=0, loss="bce", batch_size=8)


def _iou(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray) -> float:
    p, g = pred & (valid > 0), gt & (valid > 0)
    union = (p | g).sum()
    return float((p & g).sum() / union) if union else 1.0


def sequence_loss(
    decoder: TorchSamDecoder,
    adapter: EmbeddingAdapter | Callable[[Tensor], Tensor] | None,
    sample: TrainSample,
    rng: np.random.Generator,
    config: ClickConfig,
) -> tuple[Tensor, list[float]]:
    """ICL loss of one simulated click sequence on ``sample``, and the low-res IoU after each step.

    ``adapter``: any callable from the 1xCxHxW embedding tensor to the one decoded with (None: as is).

    A single click is scored as in SAM training (the best of the three
    multi-mask tokens) and fed back as at inference (the token with the
    highest predicted IoU); with more clicks token 0 is used. The fed-back
    mask is detached: each step's loss trains the modules for that step only.
    """
    emb = torch.from_numpy(np.asarray(sample.embedding, dtype=np.float32))
    if adapter is not None:
        emb = adapter(emb)
    target_np, valid_np = sample.target()
    target, valid = torch.from_numpy(target_np), torch.from_numpy(valid_np)
    loss_fn = LOSSES[config.loss]
    counts = random_click_counts(rng, config.max_pos, config.max_neg)
    clicks: list[Click] = initial_clicks(sample.gt, rng, *counts, regions=sample.regions())
    weights = icl_weights(1 + config.iterative_clicks, config.icl)
    step_losses: list[Tensor] = []
    ious: list[float] = []
    previous: Tensor | None = None
    for step in range(1 + config.iterative_clicks):
        coords, labels = prompts(clicks, sample.hw)
        masks, scores = decode(decoder, emb, torch.from_numpy(coords), torch.from_numpy(labels), previous)
        if len(clicks) == 1:
            candidate_losses = torch.stack([loss_fn(masks[k], target, valid) for k in (1, 2, 3)])
            rank = scores[1:4]  # the engine's choice among the candidates: the highest predicted IoU ...
            if config.first_loss == "central":  # ... times the click's centrality in each (no gradient)
                xy = coords[0] * LOW_RES / INPUT_SIDE
                rank = rank * torch.tensor([click_centrality(masks[k].detach().numpy() > 0, xy[0], xy[1])
                                            for k in (1, 2, 3)], dtype=rank.dtype)
            if config.first_loss == "best":
                step_losses.append(candidate_losses.min())
            elif config.first_loss == "mean":
                step_losses.append(candidate_losses.mean())
            else:  # under a soft version of that choice, so the scores learn to pick the right one
                choice = torch.softmax(rank / EXPECTED_TEMPERATURE, dim=0)
                step_losses.append((choice * candidate_losses).sum())
            chosen = 1 + int(torch.argmax(rank))
        else:
            step_losses.append(loss_fn(masks[0], target, valid))
            chosen = 0
        previous = masks[chosen].detach().float()
        ious.append(_iou(previous.numpy() > 0, target_np > 0.5, valid_np))
        if step == config.iterative_clicks:
            break
        pred = upsample_logits(previous.numpy(), sample.hw) > 0
        click = next_click(sample.gt, pred, None, clicks)
        if click is None:
            break
        clicks.append(click)
    return iterative_click_loss(step_losses, weights), ious


def freeze_decoder(decoder: TorchSamDecoder, trainable: Sequence[str] = ()) -> list[torch.nn.Parameter]:
    """Freeze the decoder except parameters whose name starts with one of ``trainable``; returns those."""
    out = []
    for name, param in decoder.named_parameters():
        train = any(name.startswith(prefix) for prefix in trainable)
        param.requires_grad_(train)
        if train:
            out.append(param)
    return out


def train_steps(
    decoder: TorchSamDecoder,
    adapter: EmbeddingAdapter | None,
    samples: Sequence[TrainSample],
    steps: int,
    optimizer: torch.optim.Optimizer,
    rng: np.random.Generator,
    config: ClickConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Run ``steps`` optimisation steps; returns the mean ICL loss of each step.

    Each step draws ``config.batch_size`` samples (with replacement) from
    ``samples``, simulates a click sequence for each, averages their ICL
    losses and takes one optimizer step. Decoder parameters not in
    ``optimizer`` are frozen (``requires_grad`` off); the optimizer decides what
    is trained. Online use: ``train_steps(decoder, category_adapter, bank, 4,
    torch.optim.SGD(category_adapter.parameters(), lr=5e-3), rng, OPO_CLICKS)``.
    ``on_step(i, loss)`` is called after each step.
    """
    if not samples:
        raise ClickmaskError("train_steps needs at least one sample")
    config = config or ClickConfig()
    trained = {id(p) for group in optimizer.param_groups for p in group["params"]}
    for p in decoder.parameters():
        p.requires_grad_(id(p) in trained)
    def batch() -> list[TrainSample]:
        return [samples[int(k)] for k in rng.integers(len(samples), size=config.batch_size)]

    return optimize(optimizer, steps, batch, lambda sample: sequence_loss(decoder, adapter, sample, rng, config)[0],
                    on_step)


def optimize(optimizer: torch.optim.Optimizer, steps: int, batch: Callable[[], Sequence],
             loss: Callable[[object], torch.Tensor], on_step: Callable[[int, float], None] | None = None
             ) -> list[float]:
    """``steps`` optimizer steps, each on the mean of ``loss(item)`` over one ``batch()`` (gradients accumulated
    item by item, so a batch never holds more than one item's graph); returns each step's mean loss."""
    losses: list[float] = []
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        items = list(batch())
        total = 0.0
        for item in items:
            value = loss(item)
            (value / len(items)).backward()
            total += float(value.detach())
        optimizer.step()
        losses.append(total / len(items))
        if on_step is not None:
            on_step(i, losses[-1])
    return losses


def evaluate_loss(
    decoder: TorchSamDecoder,
    adapter: EmbeddingAdapter | None,
    samples: Sequence[TrainSample],
    config: ClickConfig,
    seed: int = 0,
) -> dict:
    """Mean ICL loss and mean low-res IoU per step on ``samples``, without gradients.

    Every sample gets its own generator seeded from ``seed`` and its index, so
    two adapters are compared on the same initial clicks.
    """
    losses, ious = [], []
    with torch.no_grad():
        for i, sample in enumerate(samples):
            loss, iou = sequence_loss(decoder, adapter, sample, np.random.default_rng([seed, i]), config)
            losses.append(float(loss))
            ious.append(iou + [iou[-1]] * (1 + config.iterative_clicks - len(iou)))
    return {
        "n": len(samples),
        "loss": float(np.mean(losses)) if losses else float("nan"),
        "iou_per_step": np.mean(ious, axis=0).round(4).tolist() if ious else [],
    }
