"""Inference with a trained adapter: the ONNX decoder on adapted embeddings.

The adapter acts on the image embedding only, so the fast onnxruntime
decoder stays in use: :class:`AdaptedSamPredictor` is a
:class:`SamOnnxPredictor` whose embeddings pass through the adapter (in NumPy)
after the cache, so the cache keeps the raw encoder output and is shared with
the plain model. Zoom-in crops (``RefinedPredictor``) get their embeddings the
same way, so they are adapted too.

Wiring ``clickmask eval --adapter CKPT``: build the predictor with
:func:`load_adapted_predictor` instead of ``load_predictor``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clickmask.engine.embedding_cache import EmbeddingCache
from clickmask.engine.inference import InferenceOptions, RefinedPredictor
from clickmask.engine.predictor import Predictor
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.models.registry import ModelSpec, resolve_model
from clickmask.paths import embeddings_dir
from clickmask.training.adapter import EmbeddingAdapter, apply_adapter
from clickmask.training.checkpoint import load_checkpoint


class AdaptedSamPredictor(SamOnnxPredictor):
    """A SAM ONNX predictor whose image embeddings are passed through an adapter.

    ``adapter``: an :class:`EmbeddingAdapter` or its ``affine()`` pair; it can be
    swapped at any time with :meth:`set_adapter` (e.g. per category) and
    applies from the next ``set_image``. ``name`` is appended to ``model_id``.
    ``adapt_crops=False`` adapts only the full image's embedding: zoom-in crops
    (and the mirrored image) then use the plain model.
    """

    def __init__(
        self,
        spec: ModelSpec,
        adapter: EmbeddingAdapter | tuple[np.ndarray, np.ndarray] | None,
        cache: EmbeddingCache | None = None,
        threads: int | None = None,
        name: str = "adapter",
        adapt_crops: bool = True,
    ) -> None:
        super().__init__(spec, cache, threads)
        self.model_id = f"{spec.id}+{name}"
        self.adapt_crops = adapt_crops
        self._affine: tuple[np.ndarray, np.ndarray] | None = None
        self.set_adapter(adapter)

    def set_adapter(self, adapter: EmbeddingAdapter | tuple[np.ndarray, np.ndarray] | None) -> None:
        """Use ``adapter`` (None = the plain model) for embeddings computed from now on."""
        self._affine = adapter.affine() if isinstance(adapter, EmbeddingAdapter) else adapter

    def set_image(self, image: np.ndarray) -> None:
        super().set_image(image)
        if self._affine is not None and not self.adapt_crops:
            self._embedding = apply_adapter(self._embedding, self._affine)

    def _embedding_for(self, image: np.ndarray, encoder=None) -> tuple[np.ndarray, bool]:
        emb, cached = super()._embedding_for(image, encoder)
        if self._affine is None or not self.adapt_crops:
            return emb, cached
        return apply_adapter(emb, self._affine), cached


def load_adapted_predictor(
    checkpoint: str | Path,
    model: str | None = None,
    *,
    home: Path | None = None,
    disk_cache: bool = True,
    memory_items: int = 8,
    threads: int | None = None,
    options: InferenceOptions | None = None,
) -> Predictor:
    """Like ``clickmask.engine.loader.load_predictor`` for an adapter checkpoint (checked against the model)."""
    spec = resolve_model(model, home)
    adapter, _ = load_checkpoint(checkpoint, spec)
    cache_dir = embeddings_dir(home) / spec.fingerprint if disk_cache else None
    base = AdaptedSamPredictor(spec, adapter, EmbeddingCache(cache_dir, memory_items), threads, Path(checkpoint).stem)
    if options is not None and options.changed():
        return RefinedPredictor(base, options)
    return base
