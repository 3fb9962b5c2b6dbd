"""The SAM predictor with a switchable embedding adapter: the one used by the app, OPO and ``eval --adapter``.

:class:`AdaptedPredictor` shares the onnxruntime sessions and embedding cache
of an existing :class:`SamOnnxPredictor` (nothing is reloaded) and passes every
embedding it decodes with, the whole image's and the zoom crops' (a
``RefinedPredictor`` gets crop embeddings through ``image_embedding`` too),
through the selected affine map ``(A, b)``: ``out = A x + b`` per pixel of the
1x256x64x64 float32 embedding. The map is linear per pixel, so no PyTorch is
needed here. Adapted embeddings are cached per (raw embedding, map), so
repeated clicks do not recompute them. With no map selected every embedding is
the raw one, bit for bit; the cache always holds raw embeddings, so it is
shared with the plain model. Prefetching (a background encoder) only ever
computes raw embeddings.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from clickmask.engine.embedding_affine import apply_affine
from clickmask.engine.refine import RefinedPredictor, sam_model
from clickmask.engine.predictor import Predictor
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.errors import ClickmaskError

Affine = tuple[np.ndarray, np.ndarray]  # (256x256 A, 256 b): out = A x + b per pixel
CACHE_ITEMS = 4  # adapted embeddings kept (4 MB each): the image and a few zoom crops


class AdaptedPredictor(SamOnnxPredictor):
    """A SAM ONNX predictor whose embeddings go through the affine map chosen with :meth:`set_adapter`."""

    @classmethod
    def sharing(cls, base: SamOnnxPredictor, name: str | None = None) -> "AdaptedPredictor":
        """A view of ``base`` with the same sessions, cache and current image (``base`` is not changed).

        ``name``: appended to the model id (``<id>+<name>``), e.g. an adapter
        checkpoint's; None keeps the base model's id.
        """
        view = cls.__new__(cls)
        view.__dict__.update(vars(base))
        if name:
            view.model_id = f"{base.model_id}+{name}"
        view._affine = None
        view._raw = base._embedding
        view._last_raw = None
        view._adapted = deque(maxlen=CACHE_ITEMS)  # (raw array, affine, adapted array)
        return view

    @property
    def raw_embedding(self) -> np.ndarray:
        """The current image's unadapted 1x256x64x64 float32 embedding (for proposals and training)."""
        self.embedding  # noqa: B018 - raises the usual error when no image is set
        return self._raw

    @property
    def affine(self) -> Affine | None:
        """The map in use (None = the plain model)."""
        return self._affine

    def set_adapter(self, affine: Affine | None) -> None:
        """Decode with ``affine`` = (A, b) from now on, the current image included (None = the plain model).

        The map is kept by identity: pass the same (immutable) pair again to
        reuse its cached adapted embeddings.
        """
        if affine is self._affine:
            return
        self._affine = affine
        if self._raw is not None:
            self._embedding = self._adapt(self._raw)

    def set_image(self, image: np.ndarray) -> None:
        super().set_image(image)  # stores the adapted embedding (see image_embedding)
        self._raw = self._last_raw

    def image_embedding(self, image: np.ndarray, encoder=None) -> tuple[np.ndarray, bool]:
        raw, cached = super().image_embedding(image, encoder)
        if encoder is not None:  # prefetch on the background encoder: cache raw embeddings only
            return raw, cached
        self._last_raw = raw
        return self._adapt(raw), cached

    def _adapt(self, raw: np.ndarray) -> np.ndarray:
        affine = self._affine
        if affine is None:
            return raw
        for r, a, adapted in self._adapted:
            if r is raw and a is affine:
                return adapted
        adapted = apply_affine(raw, affine)
        self._adapted.append((raw, affine, adapted))
        return adapted


def adapted_base(predictor: Predictor) -> AdaptedPredictor | None:
    """The :class:`AdaptedPredictor` inside ``predictor`` (plain or refined), or None."""
    base = sam_model(predictor)
    return base if isinstance(base, AdaptedPredictor) else None


def make_adapted(predictor: Predictor, name: str | None = None) -> tuple[Predictor, AdaptedPredictor]:
    """(``predictor`` with its SAM model wrapped in an :class:`AdaptedPredictor`, that adapted model).

    A refined predictor keeps its inference options around the adapted model.
    A new object; ``predictor`` is unchanged. ClickmaskError for a model that
    is not a SAM-style ONNX pair (GrabCut).
    """
    base = sam_model(predictor)
    if base is None:
        raise ClickmaskError(f"model {predictor.model_id}: an embedding adapter needs a SAM-style ONNX model")
    view = AdaptedPredictor.sharing(base, name)
    if isinstance(predictor, RefinedPredictor):
        return RefinedPredictor(view, predictor.options), view
    return view, view


def raw_embedding(predictor: Predictor) -> np.ndarray:
    """The current image's unadapted 1x256x64x64 embedding (ClickmaskError for a model without one)."""
    view = adapted_base(predictor)
    if view is not None:
        return view.raw_embedding
    base = sam_model(predictor)
    if base is None:
        raise ClickmaskError(f"model {predictor.model_id} has no image embedding: proposals and OPO need a "
                             "SAM-style model")
    return base.embedding
