"""Segmentation losses and the Iterative Click Loss (ICL) weights.

All losses take logits and a {0, 1} target of the same shape (here 256x256
low-res maps) plus an optional ``valid`` mask (1 = counted; the padding of
the 1024 frame is 0), and return a scalar tensor.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from clickmask.errors import ClickmaskError


def _valid(target: Tensor, valid: Tensor | None) -> Tensor:
    return torch.ones_like(target) if valid is None else valid.to(target.dtype)


def bce_loss(logits: Tensor, target: Tensor, valid: Tensor | None = None) -> Tensor:
    """Mean binary cross-entropy over the valid pixels."""
    v = _valid(target, valid)
    per_pixel = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (per_pixel * v).sum() / v.sum().clamp_min(1.0)


def normalized_focal_loss(
    logits: Tensor, target: Tensor, valid: Tensor | None = None, alpha: float = 0.5, gamma: float = 2.0, eps: float = 1e-8
) -> Tensor:
    """Normalized focal loss (as used by RITM and CFR-ICL).

    The focal term ``(1 - p_t) ** gamma`` is rescaled so that it sums to the
    number of valid pixels: hard pixels dominate without the loss shrinking
    as the prediction improves. ``alpha`` weights the object class. The scale
    factor is treated as a constant (no gradient), as in RITM. Returns the
    mean over valid pixels.
    """
    v = _valid(target, valid)
    p = torch.sigmoid(logits)
    p_t = torch.where(target > 0.5, p, 1.0 - p)
    alpha_t = torch.where(target > 0.5, torch.full_like(p, alpha), torch.full_like(p, 1.0 - alpha))
    beta = (1.0 - p_t) ** gamma * v
    scale = (v.sum() / (beta.sum() + eps)).detach()
    log_pt = -F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # log p_t, stable
    loss = -alpha_t * beta * scale * log_pt
    return loss.sum() / v.sum().clamp_min(1.0)


LOSSES = {"nfl": normalized_focal_loss, "bce": bce_loss}


def icl_weights(n_steps: int, scheme: str = "linear", normalize: bool = True) -> list[float]:
    """Weights of the ``n_steps`` terms of the Iterative Click Loss.

    Step 0 is the prediction from the initial random clicks, step i the one
    after the i-th iteratively added click. ``scheme``: ``"linear"`` (weight
    i + 1: later clicks weigh more, as ICL asks), ``"uniform"`` (all equal) or
    ``"last"`` (only the final step: the conventional loss ICL replaces).
    ``normalize`` scales the weights to sum 1, so the loss scale does not
    depend on the number of steps.
    """
    if n_steps < 1:
        raise ClickmaskError(f"ICL needs at least one step, got {n_steps}")
    if scheme == "linear":
        w = [float(i + 1) for i in range(n_steps)]
    elif scheme == "uniform":
        w = [1.0] * n_steps
    elif scheme == "last":
        w = [0.0] * (n_steps - 1) + [1.0]
    else:
        raise ClickmaskError(f"unknown ICL weight scheme {scheme!r} (use linear, uniform or last)")
    if normalize:
        total = sum(w)
        w = [x / total for x in w]
    return w


def iterative_click_loss(step_losses: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Weighted sum of the per-step losses (weights from :func:`icl_weights` for the full length).

    When the click sequence stopped early (no error left), only the first
    ``len(step_losses)`` weights are used, renormalised to their original sum.
    """
    if not step_losses:
        raise ClickmaskError("iterative_click_loss needs at least one step loss")
    w = list(weights)[: len(step_losses)]
    total, used = sum(weights), sum(w)
    if used <= 0:  # e.g. scheme "last" and the sequence stopped early: the last step there is
        return step_losses[-1] * total
    return sum(wi * (total / used) * li for wi, li in zip(w, step_losses))
