"""The app's SAM predictor with a switchable per-category embedding adapter (OPO).

:class:`AdaptablePredictor` shares the onnxruntime sessions and embedding
cache of an existing :class:`SamOnnxPredictor` (nothing is reloaded) and passes
every embedding it decodes with, the whole image's and the zoom crops' (a
``RefinedPredictor`` gets crop embeddings through ``_embedding_for`` too), through
the selected adapter ``(A, b)``: ``out = A x + b`` per pixel of the
1x256x64x64 float32 embedding. Adapted embeddings are cached per (raw
embedding, published adapter), so repeated clicks do not recompute them.
With no adapter selected every embedding is the raw one, bit for bit.
Prefetching (a background thread) only ever computes raw embeddings.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from clickmask.engine.embedding_affine import apply_affine
from clickmask.engine.predictor import Predictor
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.sequential.runner import predictor_embedding

CACHE_ITEMS = 4  # adapted embeddings kept (4 MB each): the image and a few zoom crops


class AdaptablePredictor(SamOnnxPredictor):
    """A SAM ONNX predictor whose embeddings go through the adapter chosen with :meth:`use`."""

    @classmethod
    def sharing(cls, base: SamOnnxPredictor) -> "AdaptablePredictor":
        """A view of ``base`` with the same sessions, cache and current image (``base`` is not changed)."""
        view = cls.__new__(cls)
        view.__dict__.update(vars(base))
        view._selected = None  # a published adapter (anything with .affine) or None
        view._raw = base._embedding
        view._last_raw = None
        view._adapted: deque = deque(maxlen=CACHE_ITEMS)  # (raw array, selection, adapted array)
        return view

    @property
    def raw_embedding(self) -> np.ndarray:
        """The current image's unadapted 1x256x64x64 float32 embedding (for ICP and training)."""
        self.embedding  # noqa: B018 - raises the usual error when no image is set
        return self._raw

    def use(self, published: Any) -> None:
        """Decode with ``published.affine`` (None or ``published`` None = the raw model) from now on."""
        if published is self._selected:
            return
        self._selected = published
        if self._raw is not None:
            self._embedding = self._adapt(self._raw)

    def set_image(self, image: np.ndarray) -> None:
        super().set_image(image)  # stores the adapted embedding (see _embedding_for)
        self._raw = self._last_raw

    def _embedding_for(self, image: np.ndarray, encoder=None) -> tuple[np.ndarray, bool]:
        raw, cached = super()._embedding_for(image, encoder)
        if encoder is not None:  # prefetch on the background encoder: cache raw embeddings only
            return raw, cached
        self._last_raw = raw
        return self._adapt(raw), cached

    def _adapt(self, raw: np.ndarray) -> np.ndarray:
        selected = self._selected
        affine = None if selected is None else selected.affine
        if affine is None:
            return raw
        for r, sel, adapted in self._adapted:
            if r is raw and sel is selected:
                return adapted
        adapted = apply_affine(raw, affine)
        self._adapted.append((raw, selected, adapted))
        return adapted


def adaptable_base(predictor: Predictor) -> AdaptablePredictor | None:
    """The :class:`AdaptablePredictor` inside ``predictor`` (plain or refined), or None."""
    base = getattr(predictor, "base", predictor)
    return base if isinstance(base, AdaptablePredictor) else None


def raw_embedding(predictor: Predictor) -> np.ndarray:
    """The current image's unadapted 1x256x64x64 embedding (ClickmaskError for a model without one)."""
    view = adaptable_base(predictor)
    return view.raw_embedding if view is not None else predictor_embedding(predictor)


def make_adaptable(predictor: Predictor) -> Predictor:
    """``predictor`` with its SAM model wrapped in an :class:`AdaptablePredictor` (a new object; others unchanged)."""
    from clickmask.engine.inference import RefinedPredictor

    base = getattr(predictor, "base", predictor)
    if type(base) is not SamOnnxPredictor:
        return predictor
    view = AdaptablePredictor.sharing(base)
    if isinstance(predictor, RefinedPredictor):
        return RefinedPredictor(view, predictor.options)
    return view if predictor is base else predictor
