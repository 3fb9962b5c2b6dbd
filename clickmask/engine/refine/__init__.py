"""Inference-time refinements of the SAM ONNX predictor: small steps composed by one pipeline.

- :mod:`.options`: :class:`InferenceOptions` (``--infer``) and :data:`RECOMMENDED`, the default.
- :mod:`.predictor`: :class:`RefinedPredictor`, the pipeline; :class:`InferenceStats` for benchmarks.
- the steps: :mod:`.first_click`, :mod:`.cfr`, :mod:`.flip`, :mod:`.zoom`, :mod:`.local`; the
  image-space ones are :mod:`clickmask.engine.click_regions` (honor) and :mod:`clickmask.engine.boundary`.
- :mod:`.frame`: where the decoder runs (the whole image or a crop).
"""

from clickmask.engine.refine.options import RECOMMENDED, InferenceOptions
from clickmask.engine.refine.predictor import InferenceStats, RefinedPredictor, sam_model

__all__ = ["InferenceOptions", "RECOMMENDED", "RefinedPredictor", "InferenceStats", "sam_model"]
