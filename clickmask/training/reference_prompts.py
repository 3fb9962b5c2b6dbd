"""Training the dual prompt encoder of learned reference prompts (``clickmask train-reference``).

The module (:class:`DualPromptEncoder`) is the PyTorch twin of
:class:`clickmask.learning.reference_prompts.ReferencePrompts`: two two-layer
MLPs (positive, negative) mapping a unit prototype to ``(c, g)``; the decoded
embedding is ``E + sum_side c + cos(E, r) * g``. The decoder
(:class:`~clickmask.training.torch_decoder.TorchSamDecoder`) stays frozen.

A training *pair* (:class:`RefPair`) is a target (its image embedding and mask)
and a reference of the same kind on another object: its positive and negative
prototypes, pooled from the reference image's raw embedding as at inference.
Pairs are built as RefCut samples them (target and reference of the same
category; positive = the chosen parts or objects, negative = the rest):

- PascalPart (:func:`part_pairs`): a random object's single part, touching pair
  of parts or whole object; the reference is another object of the category
  with the same parts as positive and the rest of its object as negative.
  Only images of the chosen fold(s) are used (held-out evaluation on the rest).
- COCO128 (:func:`combination_pairs`): two touching instances; the reference is
  a touching pair of the same two categories in another image. Targets: each
  instance (positive: its counterpart, negative: the other one) and the union
  (positive: the union, no negative).
- DAVIS2016_dev (:func:`video_pairs`): the object in one frame, the reference
  its mask in another frame (positive only).

Embeddings come from the project's embedding cache (computed once), so every
training step only runs the decoder. Each step scores an iterative click
sequence (a first positive click, then robot clicks) with the Iterative Click
Loss; the first click's three candidates are scored under a soft version of the
engine's own choice among them (``first_loss="central"``, the command's default:
predicted IoU x click centrality), so the prompt learns to make that choice right.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from clickmask.errors import ClickmaskError
from clickmask.io.parts import MIN_AREA, group_samples, load_mask, read_listing, touching
from clickmask.learning.reference import Reference
from clickmask.learning.reference_prompts import PARAMS, SIDES, ReferencePrompts
from clickmask.training.loop import ClickConfig, TrainSample, optimize, sequence_loss

HIDDEN = 64
EPS = 1e-6
#: How a click sequence is simulated for reference training: one positive first click, two robot clicks
#: (the command passes its own options).
REFERENCE_CLICKS = ClickConfig(max_pos=1, max_neg=0, iterative_clicks=2, loss="bce", icl="linear",
                               batch_size=8, first_loss="central")


class DualPromptEncoder(nn.Module):
    """Two MLPs (C -> hidden -> 2C), positive and negative; last layers start at zero (no change)."""

    def __init__(self, channels: int = 256, hidden: int = HIDDEN, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.channels = channels
        self.sides = nn.ModuleDict()
        for side in SIDES:
            first, second = nn.Linear(channels, hidden), nn.Linear(hidden, 2 * channels)
            with torch.no_grad():
                first.weight.copy_(torch.randn(hidden, channels, generator=gen) / channels ** 0.5)
                first.bias.zero_()
                second.weight.zero_()
                second.bias.zero_()
            self.sides[side] = nn.Sequential(first, nn.ReLU(), second)

    def vectors(self, side: str, proto: Tensor) -> tuple[Tensor, Tensor]:
        out = self.sides[side](proto)
        return out[: self.channels], out[self.channels:]

    def bias(self, embedding: Tensor, positive: Tensor, negative: Tensor | None) -> Tensor:
        """1xCxGxG additive term for a 1xCxGxG embedding and unit C-d prototypes (negative optional)."""
        c = embedding.shape[1]
        cells = embedding.reshape(c, -1)
        norms = cells.norm(dim=0).clamp_min(EPS)
        out = torch.zeros_like(cells)
        for side, proto in (("pos", positive), ("neg", negative)):
            if proto is None:
                continue
            const, gate = self.vectors(side, proto)
            sims = (proto @ cells) / norms
            out = out + const[:, None] + gate[:, None] * sims[None, :]
        return out.reshape(embedding.shape)

    def prompted(self, positive: Tensor, negative: Tensor | None) -> Callable[[Tensor], Tensor]:
        """The embedding map of one reference (what the click loop decodes with)."""
        return lambda emb: emb + self.bias(emb, positive, negative)

    def to_prompts(self, meta: dict | None = None) -> ReferencePrompts:
        """The NumPy inference object with these weights."""
        params = {}
        for side in SIDES:
            first, second = self.sides[side][0], self.sides[side][2]
            params[f"{side}.w1"] = first.weight.detach().numpy().T.copy()
            params[f"{side}.b1"] = first.bias.detach().numpy().copy()
            params[f"{side}.w2"] = second.weight.detach().numpy().T.copy()
            params[f"{side}.b2"] = second.bias.detach().numpy().copy()
        assert all(f"{s}.{p}" in params for s in SIDES for p in PARAMS)
        return ReferencePrompts(params, meta)


@dataclass
class RefPair:
    """A target (TrainSample: embedding + mask) and its reference's unit prototypes (negative optional)."""

    target: TrainSample
    positive: np.ndarray
    negative: np.ndarray | None
    source: str
    name: str = ""


@dataclass
class PairSet:
    """Training pairs by source, and which PascalPart images they come from."""

    pairs: dict[str, list[RefPair]] = field(default_factory=lambda: defaultdict(list))
    pascalpart_images: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.pairs.items()}


def _reference(embedding: np.ndarray, hw: tuple[int, int], pos: np.ndarray, neg: np.ndarray | None) -> Reference | None:
    try:
        return Reference.from_masks(np.asarray(embedding, np.float32), hw, pos,
                                    neg if neg is not None and neg.any() else None)
    except ClickmaskError:
        return None


def pascalpart_fold(images: list[str], fold: int, folds: int) -> list[str]:
    """The images of ``fold`` (0-based) of ``folds``: every ``folds``-th image name in sorted order."""
    if not 0 <= fold < folds:
        raise ClickmaskError(f"fold {fold} of {folds}: use 0..{folds - 1}")
    return sorted(images)[fold::folds]


def part_pairs(root: Path, embed: Callable[[Path], np.ndarray], images: set[str], rng: np.random.Generator,
               per_object: int = 8) -> list[RefPair]:
    """PascalPart pairs on ``images`` only (both target and reference); see the module doc."""
    samples = [s for s in group_samples(read_listing(root / "parts.json")) if s.image in images and s.whole]
    by_cat: dict[str, list] = defaultdict(list)
    for s in samples:
        by_cat[s.category].append(s)
    out: list[RefPair] = []
    for s in samples:
        refs = [r for r in by_cat[s.category] if r.key != s.key]
        parts = sorted(p for p, e in s.parts.items() if e.area >= MIN_AREA)
        if not refs or not parts:
            continue
        masks = {p: load_mask(root, s.parts[p]) for p in parts}
        whole = load_mask(root, s.whole)
        pairs_touching = [(a, b) for i, a in enumerate(parts) for b in parts[i + 1:] if touching(masks[a], masks[b])]
        emb = embed(root / "images" / s.image)
        for _ in range(per_object):
            ref = refs[int(rng.integers(len(refs)))]
            kind = rng.random()
            if kind < 0.2:
                names: tuple[str, ...] = ()
            elif kind < 0.6 or not pairs_touching:
                names = (parts[int(rng.integers(len(parts)))],)
            else:
                names = pairs_touching[int(rng.integers(len(pairs_touching)))]
            if any(p not in ref.parts for p in names):
                continue
            gt = np.logical_or.reduce([masks[p] for p in names]) if names else whole
            if gt.sum() < MIN_AREA:
                continue
            ref_whole = load_mask(root, ref.whole)
            pos = np.logical_or.reduce([load_mask(root, ref.parts[p]) for p in names]) if names else ref_whole
            neg = ref_whole & ~pos
            reference = _reference(embed(root / "images" / ref.image), ref_whole.shape, pos, neg)
            if reference is None:
                continue
            out.append(RefPair(TrainSample(emb, gt, gt.shape, f"{s.name}:{'+'.join(names) or 'object'}"),
                               reference.positive, reference.negative, "PascalPart"))
    return out


def combination_pairs(root: Path, embed: Callable[[Path], np.ndarray], rng: np.random.Generator,
                      min_area: int = 1000, max_pairs: int = 400) -> list[RefPair]:
    """COCO128 pairs of touching instances with a same-category touching pair in another image."""
    entries = json.loads((root / "instances.json").read_text())
    by_image: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        if not e.get("iscrowd") and e["area"] >= min_area:
            by_image[e["image"]].append(e)
    touching_pairs: dict[tuple[str, str], list[tuple[str, dict, dict]]] = defaultdict(list)
    cache: dict[str, np.ndarray] = {}

    def mask(e: dict) -> np.ndarray:
        if e["mask"] not in cache:
            m = cv2.imread(str(root / e["mask"]), cv2.IMREAD_GRAYSCALE)
            if m is None:
                raise ClickmaskError(f"cannot read mask {root / e['mask']}")
            cache[e["mask"]] = m > 0
        return cache[e["mask"]]

    for image, group in sorted(by_image.items()):
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if touching(mask(a), mask(b)):
                    a2, b2 = (a, b) if a["category"] <= b["category"] else (b, a)
                    touching_pairs[(a2["category"], b2["category"])].append((image, a2, b2))
    candidates = []
    for key, items in touching_pairs.items():
        for image, a, b in items:
            others = [it for it in items if it[0] != image]
            if others:
                candidates.append((image, a, b, others))
    rng.shuffle(candidates)
    out: list[RefPair] = []
    for image, a, b, others in candidates[: max_pairs // 3 + 1]:
        _, ra, rb = others[int(rng.integers(len(others)))]
        emb, ref_emb = embed(root / image), embed(root / _image_of(others, ra))
        ma, mb, mra, mrb = mask(a), mask(b), mask(ra), mask(rb)
        if a["category"] == b["category"] and rng.random() < 0.5:  # same category: either matching is right
            mra, mrb = mrb, mra
        for gt, pos, neg, what in ((ma, mra, mrb, "a"), (mb, mrb, mra, "b"), (ma | mb, mra | mrb, None, "ab")):
            reference = _reference(ref_emb, pos.shape, pos, neg)
            if reference is not None:
                out.append(RefPair(TrainSample(emb, gt, gt.shape, f"{Path(image).stem}:{what}"),
                                   reference.positive, reference.negative, "COCO128"))
    cache.clear()
    return out[:max_pairs]


def _image_of(items: list[tuple[str, dict, dict]], entry: dict) -> str:
    return next(image for image, a, b in items if a is entry or b is entry)


def video_pairs(root: Path, embed: Callable[[Path], np.ndarray], frames: tuple[int, ...] = (0, 20, 40, 60)) -> list[RefPair]:
    """DAVIS2016_dev: each listed frame of every sequence, the others as references (positive only)."""
    out: list[RefPair] = []
    for seq in (root / "sequences.txt").read_text().split():
        paths = sorted((root / "images" / seq).glob("*.jpg"))
        chosen = [paths[i] for i in frames if i < len(paths)]
        data = []
        for p in chosen:
            m = cv2.imread(str(root / "masks" / seq / (p.stem + ".png")), cv2.IMREAD_GRAYSCALE)
            if m is None or not (m > 0).any():
                continue
            data.append((p, embed(p), m > 0))
        for i, (p, emb, gt) in enumerate(data):
            for j, (q, ref_emb, ref_gt) in enumerate(data):
                if i != j:
                    reference = _reference(ref_emb, ref_gt.shape, ref_gt, None)
                    if reference is not None:
                        out.append(RefPair(TrainSample(emb, gt, gt.shape, f"{seq}/{p.stem}<{q.stem}"),
                                           reference.positive, None, "DAVIS2016_dev"))
    return out



def pair_loss(decoder, encoder: DualPromptEncoder | None, pair: RefPair, rng: np.random.Generator,
              config: ClickConfig, drop_negative: bool = False) -> tuple[Tensor, list[float]]:
    """ICL loss of one click sequence on the pair's target, decoded with its reference's prompt."""
    if encoder is None:
        return sequence_loss(decoder, None, pair.target, rng, config)
    pos = torch.from_numpy(np.asarray(pair.positive, np.float32))
    neg = None if pair.negative is None or drop_negative else torch.from_numpy(np.asarray(pair.negative, np.float32))
    return sequence_loss(decoder, encoder.prompted(pos, neg), pair.target, rng, config)


def sample_batch(pairs: dict[str, list[RefPair]], weights: dict[str, float], n: int,
                 rng: np.random.Generator) -> list[RefPair]:
    """``n`` pairs: a source by ``weights`` (sources without pairs left out), then a pair of it uniformly."""
    sources = [s for s in pairs if pairs[s] and weights.get(s, 0) > 0]
    if not sources:
        raise ClickmaskError("no training pairs")
    p = np.array([weights[s] for s in sources], float)
    p /= p.sum()
    out = []
    for _ in range(n):
        src = sources[int(rng.choice(len(sources), p=p))]
        out.append(pairs[src][int(rng.integers(len(pairs[src])))])
    return out


def train_encoder(decoder, encoder: DualPromptEncoder, pairs: dict[str, list[RefPair]], steps: int, lr: float,
                  rng: np.random.Generator, config: ClickConfig = REFERENCE_CLICKS,
                  weights: dict[str, float] | None = None, drop_negative: float = 0.25,
                  on_step: Callable[[int, float], None] | None = None) -> list[float]:
    """``steps`` Adam steps on batches of ``config.batch_size`` pairs; the decoder frozen. Returns the losses."""
    weights = weights or {s: 1.0 for s in pairs}
    for p in decoder.parameters():
        p.requires_grad_(False)
    optimizer = torch.optim.Adam(encoder.parameters(), lr=lr)
    return optimize(optimizer, steps, lambda: sample_batch(pairs, weights, config.batch_size, rng),
                    lambda pair: pair_loss(decoder, encoder, pair, rng, config,
                                           drop_negative=rng.random() < drop_negative)[0], on_step)


def evaluate_pairs(decoder, encoder: DualPromptEncoder | None, pairs: list[RefPair], config: ClickConfig,
                   seed: int = 0) -> dict:
    """Mean ICL loss and low-res IoU per click step on ``pairs`` (same clicks for every encoder)."""
    losses, ious = [], []
    with torch.no_grad():
        for i, pair in enumerate(pairs):
            loss, iou = pair_loss(decoder, encoder, pair, np.random.default_rng([seed, i]), config)
            losses.append(float(loss))
            ious.append(iou + [iou[-1]] * (1 + config.iterative_clicks - len(iou)))
    return {"n": len(pairs), "loss": float(np.mean(losses)) if losses else float("nan"),
            "iou_per_step": np.mean(ious, axis=0).round(4).tolist() if ious else []}


@dataclass
class ReferenceTrainConfig:
    """The ``clickmask train-reference`` options."""

    out: Path
    data_root: Path | None = None
    model: str | None = None
    steps: int = 300
    lr: float = 1e-3
    hidden: int = HIDDEN
    fold: int | None = 0  # PascalPart images of this fold are trained on; None = no PascalPart
    folds: int = 2
    sources: tuple[str, ...] = ("PascalPart", "COCO128", "DAVIS2016_dev")
    weights: dict[str, float] = field(default_factory=lambda: {"PascalPart": 0.7, "COCO128": 0.2,
                                                               "DAVIS2016_dev": 0.1})
    val_fraction: float = 0.1
    seed: int = 0
    clicks: ClickConfig = field(default_factory=lambda: REFERENCE_CLICKS)
    command: str = ""  # the command line that ran this training, kept in summary.json


def build_pairs(config: ReferenceTrainConfig, embed: Callable[[Path], np.ndarray], rng: np.random.Generator,
                log: Callable[[str], None] = print) -> PairSet:
    from clickmask.io.datasets import default_data_root

    root = config.data_root or default_data_root()
    out = PairSet()
    if "PascalPart" in config.sources and config.fold is not None:
        pp = root / "PascalPart"
        names = sorted({e.image for e in read_listing(pp / "parts.json")})
        chosen = pascalpart_fold(names, config.fold, config.folds)
        out.pascalpart_images = chosen
        out.pairs["PascalPart"] = part_pairs(pp, embed, set(chosen), rng, per_object=16)
        log(f"PascalPart fold {config.fold}/{config.folds}: {len(chosen)} images, {len(out.pairs['PascalPart'])} pairs")
    if "COCO128" in config.sources:
        out.pairs["COCO128"] = combination_pairs(root / "COCO128", embed, rng)
        log(f"COCO128: {len(out.pairs['COCO128'])} pairs")
    if "DAVIS2016_dev" in config.sources:
        out.pairs["DAVIS2016_dev"] = video_pairs(root / "DAVIS2016_dev", embed)
        log(f"DAVIS2016_dev: {len(out.pairs['DAVIS2016_dev'])} pairs")
    return out


def run_train_reference(config: ReferenceTrainConfig, progress: Callable[[int, float], None] | None = None) -> dict:
    """Train as configured; writes ``out/reference_prompts.npz``, ``summary.json``, ``train.log``."""
    from clickmask.engine.embedding_cache import EmbeddingCache
    from clickmask.engine.sam_onnx import SamOnnxPredictor
    from clickmask.io.atomic import atomic_write_text
    from clickmask.io.images import load_image
    from clickmask.models.registry import resolve_model
    from clickmask.paths import embeddings_dir
    from clickmask.training.torch_decoder import TorchSamDecoder

    t0 = time.perf_counter()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []

    def log(text: str) -> None:
        lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}")
        atomic_write_text(out / "train.log", "\n".join(lines) + "\n")

    spec = resolve_model(config.model)
    predictor = SamOnnxPredictor(spec, EmbeddingCache(embeddings_dir() / spec.fingerprint, max_items=2))
    embeddings: dict[str, np.ndarray] = {}

    def embed(path: Path) -> np.ndarray:
        key = str(path)
        if key not in embeddings:
            emb, _ = predictor.image_embedding(load_image(path))
            embeddings[key] = emb.astype(np.float16)
        return embeddings[key]

    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    pairs = build_pairs(config, embed, rng, log)
    # a validation share of every source's pairs (by target name: pairs of one target stay together)
    train: dict[str, list[RefPair]] = {}
    val: list[RefPair] = []
    for src, items in pairs.pairs.items():
        targets = sorted({p.target.name.split(":")[0].split("<")[0] for p in items})
        held = set(np.random.default_rng(config.seed).permutation(targets)[: int(round(len(targets) * config.val_fraction))])
        train[src] = [p for p in items if p.target.name.split(":")[0].split("<")[0] not in held]
        val += [p for p in items if p.target.name.split(":")[0].split("<")[0] in held][:20]
    log(f"{sum(len(v) for v in train.values())} training pairs {{{', '.join(f'{k}: {len(v)}' for k, v in train.items())}}}, "
        f"{len(val)} validation pairs; embeddings {time.perf_counter() - t0:.0f} s")
    torch.set_num_threads(1)
    decoder = TorchSamDecoder.from_onnx(spec.decoder)
    encoder = DualPromptEncoder(hidden=config.hidden, seed=config.seed)
    before_none = evaluate_pairs(decoder, None, val, config.clicks, config.seed)
    log(f"validation without prompts: {before_none}")
    t1 = time.perf_counter()

    def on_step(i: int, loss: float) -> None:
        if (i + 1) % 10 == 0:
            log(f"step {i + 1}/{config.steps}: loss {loss:.4f}")
        if progress is not None:
            progress(i, loss)

    losses = train_encoder(decoder, encoder, train, config.steps, config.lr, rng, config.clicks,
                           config.weights, on_step=on_step)
    after = evaluate_pairs(decoder, encoder, val, config.clicks, config.seed)
    log(f"validation with prompts: {after}")
    meta = {"model_id": spec.id, "sha256": {k: spec.sha256.get(k, "") for k in ("encoder", "decoder")},
            "pascalpart_images": pairs.pascalpart_images, "fold": config.fold, "folds": config.folds,
            "sources": list(config.sources), "steps": config.steps, "lr": config.lr, "hidden": config.hidden,
            "seed": config.seed, "weights": config.weights, "iterative_clicks": config.clicks.iterative_clicks,
            "first_loss": config.clicks.first_loss,
            "pairs": {k: len(v) for k, v in train.items()}}
    encoder.to_prompts(meta).save(out / "reference_prompts.npz")
    summary = {**meta, "n_val": len(val), "val_without": before_none, "val_with": after,
               "losses": [round(x, 5) for x in losses], "train_seconds": round(time.perf_counter() - t1, 1),
               "total_seconds": round(time.perf_counter() - t0, 1)}
    if config.command:
        summary["command"] = config.command
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    log(f"wrote {out / 'reference_prompts.npz'}")
    return summary
