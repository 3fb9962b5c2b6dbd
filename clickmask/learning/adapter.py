"""A small trainable module on the image embedding, placed before the decoder.

:class:`EmbeddingAdapter` is a residual 1x1 convolution on the 1x256x64x64
embedding, ``out = x + W x + b`` per pixel, initialised to ``W = 0, b = 0``
(the identity), so an untrained adapter leaves every prediction unchanged.
With ``rank=r`` the residual is low-rank, ``W = up @ down`` (``up`` starts at
zero, ``down`` random), which keeps a per-category copy small (2*256*r + 256
numbers). The map is linear per pixel, so inference needs no torch:
:func:`clickmask.engine.embedding_affine.apply_affine` applies the equivalent
256x256 matrix in NumPy before the ONNX decoder.

Serialisation is plain ``.npz`` (no pickle): :func:`adapter_to_bytes` /
:func:`adapter_from_bytes` for storing one adapter per category in a project,
and the checkpoint module for files with provenance.
"""

from __future__ import annotations

import io
import json

import numpy as np
import torch
from torch import Tensor, nn

from clickmask.errors import ClickmaskError

CHANNELS = 256


class EmbeddingAdapter(nn.Module):
    """Residual 1x1 conv on BxCxHxW embeddings, identity at initialisation."""

    def __init__(self, channels: int = CHANNELS, rank: int | None = None, seed: int = 0) -> None:
        super().__init__()
        self.channels = channels
        self.rank = rank
        self.bias = nn.Parameter(torch.zeros(channels))
        if rank is None:
            self.weight = nn.Parameter(torch.zeros(channels, channels))
        else:
            if not 1 <= rank <= channels:
                raise ClickmaskError(f"adapter rank must be in 1..{channels}, got {rank}")
            gen = torch.Generator().manual_seed(seed)
            self.down = nn.Parameter(torch.randn(rank, channels, generator=gen) / channels**0.5)
            self.up = nn.Parameter(torch.zeros(channels, rank))

    def residual_matrix(self) -> Tensor:
        """The CxC matrix W of the residual (``out = x + W x + b``)."""
        return self.weight if self.rank is None else self.up @ self.down

    def forward(self, x: Tensor) -> Tensor:
        """BxCxHxW -> BxCxHxW."""
        w = self.residual_matrix()
        return x + torch.einsum("ck,bkhw->bchw", w, x) + self.bias[None, :, None, None]

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(CxC matrix A = I + W, C bias) as float32 arrays: ``out = A x + b`` per pixel."""
        with torch.no_grad():
            a = torch.eye(self.channels) + self.residual_matrix()
            return a.numpy().astype(np.float32), self.bias.detach().numpy().astype(np.float32)

    def config(self) -> dict:
        """Constructor arguments, for rebuilding the module."""
        return {"channels": self.channels, "rank": self.rank}


def adapter_arrays(adapter: EmbeddingAdapter) -> dict[str, np.ndarray]:
    """The adapter's parameters as float32 arrays, keyed by parameter name."""
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in adapter.state_dict().items()}


def adapter_to_bytes(adapter: EmbeddingAdapter, meta: dict | None = None) -> bytes:
    """Serialise an adapter (and optional JSON-able ``meta``) as ``.npz`` bytes."""
    buf = io.BytesIO()
    header = {"config": adapter.config(), "meta": meta or {}}
    np.savez(buf, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **adapter_arrays(adapter))
    return buf.getvalue()


def adapter_from_bytes(data: bytes, what: str = "adapter") -> tuple[EmbeddingAdapter, dict]:
    """Inverse of :func:`adapter_to_bytes`: (adapter, meta). ``what`` names the source in errors."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            header = json.loads(bytes(npz["__header__"]).decode())
            arrays = {k: npz[k] for k in npz.files if k != "__header__"}
        adapter = EmbeddingAdapter(**header["config"])
        adapter.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in arrays.items()})
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClickmaskError(f"{what}: not a valid adapter ({first})") from None
    return adapter, dict(header.get("meta", {}))
