"""Offline training of an embedding adapter on a dataset (``clickmask train``).

Steps: load the dataset's objects (crowd regions and objects under
``min_area`` pixels left out), split the images into train / validation,
compute every image embedding once with the ONNX encoder (through the
project's embedding cache, on disk by default, so a second run skips the
encoder), add ``suem`` SUEM copy-paste samples made from training objects
(each a new image, encoded once as well), then train with
:func:`clickmask.training.loop.train_steps` and the Iterative Click Loss.
The run writes to ``out``: ``adapter.npz`` (checkpoint), ``loss.png``,
``train.log`` and ``summary.json`` (with the validation loss / IoU per click
step before and after training).
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from clickmask.engine.embedding_cache import EmbeddingCache
from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.errors import ClickmaskError
from clickmask.io.datasets import Sample, default_data_root, load_dataset
from clickmask.io.atomic import atomic_write_bytes, atomic_write_text
from clickmask.io.images import load_image
from clickmask.models.registry import resolve_model
from clickmask.paths import embeddings_dir
from clickmask.learning.adapter import EmbeddingAdapter
from clickmask.training.checkpoint import save_checkpoint
from clickmask.training.loop import ClickConfig, TrainSample, evaluate_loss, train_steps
from clickmask.training.suem import MODES, suem_augment
from clickmask.training.torch_decoder import TorchSamDecoder

logger = logging.getLogger(__name__)


@dataclass
class OfflineConfig:
    """Settings of one offline run (the ``clickmask train`` options)."""

    out: Path
    dataset: str = "COCO128"
    data_root: Path | None = None
    model: str | None = None
    steps: int = 100
    lr: float = 1e-3
    limit: int | None = None
    min_area: int = 1000
    suem: int = 16
    val_fraction: float = 0.15
    val_max: int = 40
    rank: int | None = None
    seed: int = 0
    disk_cache: bool = True
    clicks: ClickConfig = field(default_factory=ClickConfig)


class _Log:
    """Log lines kept in memory and rewritten atomically to ``path`` on each flush."""

    def __init__(self, path: Path) -> None:
        self.path, self.lines = path, []

    def __call__(self, text: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        self.lines.append(line)
        logger.info(text)

    def flush(self) -> None:
        atomic_write_text(self.path, "\n".join(self.lines) + "\n")


def _crowd_masks(root: Path, dataset: str) -> set[str]:
    """File names of the masks marked ``iscrowd`` in ``instances.json``, if any."""
    index = root / dataset / "instances.json"
    if not index.is_file():
        return set()
    try:
        entries = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise ClickmaskError(f"cannot read '{index}': {exc}") from None
    return {Path(e["mask"]).name for e in entries if isinstance(e, dict) and e.get("iscrowd")}


def split_images(samples: list[Sample], val_fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """(train, val) with whole images on one side; the split depends only on ``seed`` and the image names."""
    images = sorted({str(s.image_path) for s in samples})
    order = np.random.default_rng(seed).permutation(len(images))
    n_val = int(round(len(images) * val_fraction)) if len(images) > 1 else 0
    val_images = {images[i] for i in order[:n_val]}
    return [s for s in samples if str(s.image_path) not in val_images], [s for s in samples if str(s.image_path) in val_images]


def build_samples(
    predictor: SamOnnxPredictor,
    objects: list[Sample],
    min_area: int,
    progress: Callable[[], None] | None = None,
) -> tuple[list[TrainSample], dict[str, np.ndarray]]:
    """One TrainSample per object of at least ``min_area`` px; embeddings computed once per image.

    Returns the samples and the loaded images by path (for SUEM). Embeddings
    are kept as float16 (as the cache stores them) to halve memory.
    """
    by_image: dict[str, list[Sample]] = {}
    for s in objects:
        by_image.setdefault(str(s.image_path), []).append(s)
    out, images = [], {}
    for path, group in by_image.items():
        masks = [(s, s.load_gt()) for s in group]
        masks = [(s, m) for s, m in masks if m.sum() >= min_area]
        if masks:
            image = load_image(path)
            emb, _ = predictor.image_embedding(image)
            emb16 = emb.astype(np.float16)
            images[path] = image
            for s, m in masks:
                if m.shape != image.shape[:2]:
                    raise ClickmaskError(f"{s.mask_path}: mask size {m.shape} differs from image {image.shape[:2]}")
                out.append(TrainSample(emb16, m, m.shape, s.name))
        if progress is not None:
            progress()
    return out, images


def suem_samples(
    predictor: SamOnnxPredictor,
    train: list[TrainSample],
    images: dict[str, np.ndarray],
    image_of: dict[str, str],
    count: int,
    rng: np.random.Generator,
    progress: Callable[[], None] | None = None,
) -> list[TrainSample]:
    """``count`` SUEM samples, the four modes in turn, each from two objects of different images."""
    out = []
    names = [t for t in train if t.name in image_of]
    if len(names) < 2 or len({image_of[t.name] for t in names}) < 2:
        return out
    for i in range(count):
        mode = MODES[i % len(MODES)]
        src = names[int(rng.integers(len(names)))]
        others = [t for t in names if image_of[t.name] != image_of[src.name]]
        extra = others[int(rng.integers(len(others)))]
        aug = suem_augment(mode, images[image_of[src.name]], src.gt, images[image_of[extra.name]], extra.gt, rng)
        if aug.gt.sum() >= 64:
            emb, _ = predictor.image_embedding(aug.image)
            out.append(TrainSample(emb.astype(np.float16), aug.gt, aug.gt.shape, f"suem-{mode}-{src.name}+{extra.name}"))
        if progress is not None:
            progress()
    return out


def plot_losses(losses: list[float], path: Path, title: str) -> None:
    """Loss per step and its moving average, as a PNG written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="0.7", lw=1, label="step loss")
    k = max(1, len(losses) // 20)
    if k > 1:
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1:], smooth, color="C0", lw=2, label=f"mean of {k}")
    ax.set_xlabel("step")
    ax.set_ylabel("ICL loss")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def run_offline(config: OfflineConfig, progress_bar: Callable | None = None) -> dict:
    """Train an adapter as configured; returns the summary (also written to ``out/summary.json``).

    ``progress_bar(total, desc)`` returns a tqdm-like object (``update()``,
    ``set_postfix_str()``, context manager); None = no progress output.
    """
    t0 = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    log = _Log(out / "train.log")
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    root = config.data_root or default_data_root()
    crowd = _crowd_masks(root, config.dataset)
    listed = load_dataset(root, config.dataset, limit=config.limit)
    objects = [s for s in listed if s.mask_path.name not in crowd]
    train_objs, val_objs = split_images(objects, config.val_fraction, config.seed)
    spec = resolve_model(config.model)
    cache = EmbeddingCache(embeddings_dir() / spec.fingerprint if config.disk_cache else None, max_items=2)
    predictor = SamOnnxPredictor(spec, cache)
    log(f"dataset {config.dataset} at {root}: {len(objects)} objects ({len(listed) - len(objects)} crowd left out), "
        f"{len(train_objs)} train / {len(val_objs)} val objects; model {spec.id}")

    bar = progress_bar or (lambda total, desc: _NoBar())
    n_images = len({s.image_path for s in objects})
    with bar(n_images + config.suem, "embeddings") as pbar:
        train, images = build_samples(predictor, train_objs, config.min_area, pbar.update)
        val, _ = build_samples(predictor, val_objs, config.min_area, pbar.update)
        image_of = {s.name: str(s.image_path) for s in train_objs}
        extra = suem_samples(predictor, train, images, image_of, config.suem, rng, pbar.update)
    del images
    val = val[: config.val_max]
    if not train:
        raise ClickmaskError(f"dataset {config.dataset}: no training objects of at least {config.min_area} px")
    log(f"{len(train)} training objects + {len(extra)} SUEM samples, {len(val)} validation objects "
        f"(>= {config.min_area} px); embeddings took {time.perf_counter() - t0:.0f} s")
    train += extra

    torch.set_num_threads(1)
    decoder = TorchSamDecoder.from_onnx(spec.decoder)
    adapter = EmbeddingAdapter(rank=config.rank, seed=config.seed)
    val_before = evaluate_loss(decoder, adapter, val, config.clicks, seed=config.seed) if val else None
    if val_before:
        log(f"validation before: loss {val_before['loss']:.4f}, IoU per click step {val_before['iou_per_step']}")
    optimizer = torch.optim.Adam(adapter.parameters(), lr=config.lr)
    t_train = time.perf_counter()
    with bar(config.steps, "training") as pbar:
        def on_step(i: int, loss: float) -> None:
            pbar.update()
            pbar.set_postfix_str(f"loss {loss:.4f}")
            if (i + 1) % 10 == 0 or i + 1 == config.steps:
                log(f"step {i + 1}/{config.steps}: loss {loss:.4f}")
                log.flush()

        losses = train_steps(decoder, adapter, train, config.steps, optimizer, rng, config.clicks, on_step)
    train_s = time.perf_counter() - t_train
    val_after = evaluate_loss(decoder, adapter, val, config.clicks, seed=config.seed) if val else None
    if val_after:
        log(f"validation after: loss {val_after['loss']:.4f}, IoU per click step {val_after['iou_per_step']}")

    training = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    save_checkpoint(out / "adapter.npz", adapter, spec, training)
    title = f"{config.dataset}: {config.steps} steps, lr {config.lr}"
    if val_before and val_after:
        title += f"; val loss {val_before['loss']:.3f} -> {val_after['loss']:.3f}"
    plot_losses(losses, out / "loss.png", title)
    summary = {
        "model_id": spec.id,
        "dataset": config.dataset,
        "n_train": len(train) - len(extra),
        "n_suem": len(extra),
        "n_val": len(val),
        "config": training,
        "losses": [round(x, 5) for x in losses],
        "val_before": val_before,
        "val_after": val_after,
        "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"wrote {out / 'adapter.npz'}, loss.png, summary.json; training {train_s:.0f} s")
    log.flush()
    return summary


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass
