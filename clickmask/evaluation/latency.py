"""Latency benchmark: embedding, cache hits and per-click decoding on real images.

Measures, for each image: the encoder (``set_image`` with an empty cache), a
disk-cache hit (a new predictor on the same cache folder, so memory is cold), a
memory-cache hit, and the time of each robot click (decoder + thresholding)
with mask feedback. Images are the bundled samples, resized to ``megapixels``.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from clickmask.engine.embedding_cache import EmbeddingCache
from clickmask.engine.refine import InferenceOptions, InferenceStats, RefinedPredictor
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.evaluation.runner import EvalOptions, evaluate_object
from clickmask.models.registry import ModelSpec
from clickmask.samples import load_samples


def _resize_to(image: np.ndarray, mask: np.ndarray, megapixels: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    s = (megapixels * 1e6 / (h * w)) ** 0.5
    size = (round(w * s), round(h * s))
    img = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
    m = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
    return img, m


def measure_latency(
    spec: ModelSpec, megapixels: float = 0.5, clicks: int = 10, repeats: int = 2,
    options: InferenceOptions = InferenceOptions(),
) -> dict:
    """Run the latency benchmark; returns medians/p95s in ms and the image sizes.

    With inference ``options`` (default: the raw model) the clicks run through
    a :class:`RefinedPredictor`; a zoom-in crop encode then counts in that
    click's time, and the image-space steps (``honor``, ``boundary``) are also
    reported on their own.
    """
    embed, disk_hit, mem_hit, click = [], [], [], []
    steps: dict[str, list[float]] = {}
    sizes = []
    with tempfile.TemporaryDirectory(prefix="clickmask-bench-") as tmp:
        for rep in range(repeats):
            folder = Path(tmp) / f"r{rep}"
            for sample in load_samples():
                image, mask = _resize_to(sample.image, sample.mask, megapixels)
                sizes.append(f"{image.shape[1]}x{image.shape[0]}")
                cold = SamOnnxPredictor(spec, EmbeddingCache(folder))
                t0 = time.perf_counter()
                cold.set_image(image)
                embed.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                cold.set_image(image)
                mem_hit.append((time.perf_counter() - t0) * 1000)
                warm = SamOnnxPredictor(spec, EmbeddingCache(folder))
                t0 = time.perf_counter()
                warm.set_image(image)
                disk_hit.append((time.perf_counter() - t0) * 1000)
                predictor = RefinedPredictor(warm, options) if options.changed() else warm
                if isinstance(predictor, RefinedPredictor):
                    predictor.stats = InferenceStats()
                predictor.set_image(image)  # a memory-cache hit: the refinements need the image
                result = evaluate_object(predictor, mask, None, EvalOptions(max_clicks=clicks))
                click.extend(result.click_ms)
                if isinstance(predictor, RefinedPredictor):
                    for name, values in predictor.stats.step_ms.items():
                        steps.setdefault(name, []).extend(values)

    def stats(values: list[float]) -> dict:
        a = np.asarray(values, dtype=np.float64)
        return {"median": float(np.median(a)), "p95": float(np.percentile(a, 95)), "n": int(a.size)}

    return {
        "model": spec.id,
        "megapixels": megapixels,
        "clicks": clicks,
        "repeats": repeats,
        "image_sizes": sorted(set(sizes)),
        "embed_ms": stats(embed),
        "cache_hit_disk_ms": stats(disk_hit),
        "cache_hit_memory_ms": stats(mem_hit),
        "click_ms": stats(click),
        "inference": options.changed(),
        "steps_ms": {name: stats(values) for name, values in steps.items() if values},
    }


def format_latency(result: dict) -> str:
    """Plain-text table of :func:`measure_latency` output."""
    rows = [
        ("embedding (encoder, cold cache)", result["embed_ms"]),
        ("set_image, disk-cache hit", result["cache_hit_disk_ms"]),
        ("set_image, memory-cache hit", result["cache_hit_memory_ms"]),
        ("per click (decoder + threshold)", result["click_ms"]),
    ]
    lines = [
        f"model {result['model']}, images {', '.join(result['image_sizes'])} (~{result['megapixels']} MP)",
        f"  {'what':34s} {'median ms':>10s} {'p95 ms':>10s} {'n':>5s}",
    ]
    rows += [(f"  of which {name}", s) for name, s in result.get("steps_ms", {}).items()]
    lines += [f"  {name:34s} {s['median']:10.1f} {s['p95']:10.1f} {s['n']:5d}" for name, s in rows]
    if result.get("inference"):
        lines.insert(1, f"inference options {result['inference']}")
    return "\n".join(lines)
