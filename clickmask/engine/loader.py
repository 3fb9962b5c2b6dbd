"""Choosing and building a predictor: the installed model, or the fallback."""

from __future__ import annotations

import logging
from pathlib import Path

from clickmask.engine.embedding_cache import EmbeddingCache
from clickmask.engine.grabcut import FALLBACK_MODEL_ID, GrabCutPredictor
from clickmask.engine.refine import InferenceOptions, RefinedPredictor
from clickmask.engine.predictor import Predictor
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.errors import ModelError
from clickmask.models.registry import resolve_model
from clickmask.paths import embeddings_dir

logger = logging.getLogger(__name__)


def load_predictor(
    model: str | None = None,
    *,
    allow_fallback: bool = False,
    home: Path | None = None,
    disk_cache: bool = True,
    memory_items: int = 8,
    threads: int | None = None,
    options: InferenceOptions | None = None,
) -> Predictor:
    """Build the predictor for ``model`` (an installed model id; None = default).

    ``model="grabcut"`` selects the weight-free backend explicitly. With
    ``allow_fallback``, a model that is not installed or fails to load gives the
    GrabCut backend and a warning (``predictor.is_fallback`` is True); without
    it the ModelError propagates. The model is wrapped in a :class:`RefinedPredictor`
    with ``options`` (None: the recommended inference the app and ``clickmask eval``
    use); ``InferenceOptions()`` (every step off) gives the raw model.
    """
    if options is None:
        options = InferenceOptions.parse(None)
    if model == FALLBACK_MODEL_ID:
        return GrabCutPredictor()
    try:
        spec = resolve_model(model, home)
        cache_dir = embeddings_dir(home) / spec.fingerprint if disk_cache else None
        base = SamOnnxPredictor(spec, EmbeddingCache(cache_dir, memory_items), threads=threads)
        if options is not None and options.changed():
            return RefinedPredictor(base, options)
        return base
    except ModelError as exc:
        if not allow_fallback:
            raise
        logger.warning("%s; using the weight-free GrabCut fallback (much less accurate)", exc)
        return GrabCutPredictor()
