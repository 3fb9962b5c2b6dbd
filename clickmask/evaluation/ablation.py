"""Ablations: several inference configurations on one dataset, one encoder pass per image.

Each image's embedding is computed once and shared by every configuration
(crop embeddings of the zoom-in are cached too), so an ablation of K
configurations costs about one evaluation plus K times the decoder work.
Each configuration yields the same report as ``clickmask eval --json``.
"""

from __future__ import annotations

from typing import Callable, Sequence

from clickmask.engine.refine import InferenceOptions, InferenceStats, RefinedPredictor
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.io.datasets import Sample
from clickmask.evaluation.report import build_report
from clickmask.evaluation.runner import EvalOptions, SampleResult, evaluate_object, load_sample, peak_rss_mb


def run_ablation(
    base: SamOnnxPredictor,
    samples: Sequence[Sample],
    configs: dict[str, InferenceOptions],
    dataset: str,
    eval_options: EvalOptions = EvalOptions(),
    on_sample: Callable[[], None] | None = None,
) -> dict[str, dict]:
    """Evaluate every configuration on every sample; returns name -> report."""
    predictors = {name: RefinedPredictor(base, opts) for name, opts in configs.items()}
    for predictor in predictors.values():
        predictor.stats = InferenceStats()
    results: dict[str, list[SampleResult]] = {name: [] for name in configs}
    embed_ms: list[tuple[float, bool]] = []
    for sample in samples:
        image, gt, ignore = load_sample(sample)
        for pred in predictors.values():
            pred.set_image(image)
        embed_ms.append((base.last_embed_ms, base.last_embed_cached))
        for name, pred in predictors.items():
            result = evaluate_object(pred, gt, ignore, eval_options, name=sample.name)
            # the first configuration paid for the embedding; report that cost for all
            result.embed_ms, result.embed_cached = embed_ms[-1][0], embed_ms[-1][1]
            results[name].append(result)
        if on_sample is not None:
            on_sample()
    reports = {}
    for name, opts in configs.items():
        rep = build_report(
            results[name], dataset, base.model_id,
            {"mask_feedback": eval_options.mask_feedback, **opts.changed()},
            eval_options.max_clicks, peak_rss_mb(),
        )
        zoom = predictors[name].stats.zoom_encode_ms
        crops = predictors[name].stats.zoom_encodes
        rep["zoom"] = {
            "encodes": crops,
            "encodes_per_object": crops / max(1, rep["n"]),
            "encode_median_ms": float(sorted(zoom)[len(zoom) // 2]) if zoom else 0.0,
        }
        rep["config"] = name
        reports[name] = rep
    return reports
