"""Adapter checkpoints: only the trained module, plus the base model it belongs to.

A checkpoint is the ``.npz`` of :func:`clickmask.learning.adapter.adapter_to_bytes`
whose metadata records the format, the base model's id and the sha256 of its
encoder and decoder, and how it was trained. Loading against a model checks
that the checkpoint was trained for exactly those weights.
"""

from __future__ import annotations

from pathlib import Path

from clickmask.errors import ClickmaskError
from clickmask.io.atomic import atomic_write_bytes
from clickmask.models.registry import ModelSpec
from clickmask.learning.adapter import EmbeddingAdapter, adapter_from_bytes, adapter_to_bytes

FORMAT = "clickmask-adapter-1"


def save_checkpoint(path: str | Path, adapter: EmbeddingAdapter, spec: ModelSpec, training: dict | None = None) -> None:
    """Write ``adapter`` for base model ``spec`` to ``path`` atomically (a few hundred KB)."""
    meta = {
        "format": FORMAT,
        "model_id": spec.id,
        "sha256": {k: spec.sha256.get(k, "") for k in ("encoder", "decoder")},
        "training": training or {},
    }
    atomic_write_bytes(path, adapter_to_bytes(adapter, meta))


def load_checkpoint(path: str | Path, spec: ModelSpec | None = None) -> tuple[EmbeddingAdapter, dict]:
    """Read a checkpoint: (adapter, metadata).

    With ``spec``, raise ClickmaskError (naming the file) unless the
    checkpoint was trained on the same model id and the same encoder/decoder
    files (sha256).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ClickmaskError(f"cannot read adapter checkpoint '{path}': {exc.strerror or exc}") from None
    adapter, meta = adapter_from_bytes(data, f"adapter checkpoint '{path}'")
    if meta.get("format") != FORMAT:
        raise ClickmaskError(f"adapter checkpoint '{path}': unknown format {meta.get('format')!r}, expected {FORMAT}")
    if spec is not None:
        if meta.get("model_id") != spec.id:
            raise ClickmaskError(
                f"adapter checkpoint '{path}' was trained for model {meta.get('model_id')!r}, not {spec.id!r}"
            )
        for role in ("encoder", "decoder"):
            want, have = meta.get("sha256", {}).get(role, ""), spec.sha256.get(role, "")
            if want and have and want != have:
                raise ClickmaskError(f"adapter checkpoint '{path}': the model's {role} file differs from the one it was trained on")
    return adapter, meta
