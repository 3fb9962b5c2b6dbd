"""Online Purification Optimization (OPO): a per-category embedding adapter trained while annotating.

Each category has its own :class:`~clickmask.training.adapter.EmbeddingAdapter`
(residual 1x1 conv on the 1x256x64x64 embedding, identity at start) and a
memory of its most recent finished objects: the raw embedding and the final
*predicted* mask the user accepted (never a ground truth). After every
finished object a few SGD steps run on that memory with clicks re-simulated
from the masks (1-5 positive, 0-5 negative; BCE), through the differentiable
decoder of :mod:`clickmask.training.torch_decoder`. The adapter is linear per
pixel, so inference applies it in NumPy and keeps the ONNX decoder.

Object ``n`` of a category is segmented with the adapter trained on objects
``1 .. n - delta`` (``delta`` >= 1), so training can run behind the user.
With ``gate`` > 0 (the default) a trained version is served only while the
adapter has beaten the plain model on recent finished objects it had not
been trained on (:class:`PrequentialGate`); otherwise that version is the
plain model. The parts:

- :class:`CategoryAdapter` is the state of one category (adapter, optimizer,
  memory, one frozen ``(A, b)`` version after each trained object);
- the app trains in a child process with the same settings and click simulation
  (:mod:`clickmask.server.opo_worker`): a click only reads the latest
  published version;
- :class:`OnlineAdapter` is the benchmark's deterministic variant: it trains
  synchronously between objects and serves version ``n - delta``.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from dataclasses import asdict, dataclass

import numpy as np

from clickmask.engine.predictor import Predictor
from clickmask.errors import ClickmaskError

Affine = tuple[np.ndarray, np.ndarray]  # (256x256 A, 256 b): out = A x + b per pixel


@dataclass(frozen=True)
class OPOConfig:
    """Online training settings (SIIS: SGD, lr 5e-3, batch 8, 4 steps, clicks 1-5 / 0-5).

    ``memory``: how many recent finished objects per category are trained on;
    ``delta``: object n uses the adapter trained on objects up to n - delta.
    """

    delta: int = 2
    memory: int = 32
    steps: int = 4
    batch_size: int = 8
    lr: float = 5e-3
    momentum: float = 0.9
    max_pos: int = 5
    max_neg: int = 5
    rank: int | None = None
    seed: int = 0
    iterative: int = 0  # robot clicks after the random ones, previous mask fed back, ICL over the steps
    crops: bool = True  # also adapt zoom-in crop embeddings (the adapter is trained on full images only)
    gate: int = 10  # > 0: serve the adapter only while it beat the plain model on the last `gate` unseen objects
    crop_views: bool = False  # also train and gate-test on the zoom-in crop of each finished object (when zoomed)
    gate_test: str = "proxy"  # "proxy": low-res torch decoder on the whole image; "robot": replay the real inference
    optimizer: str = "sgd"  # "sgd" (SIIS: lr, momentum) or "adam" (lr only)

    def __post_init__(self) -> None:
        if self.delta < 1:
            raise ClickmaskError(f"OPO delta must be at least 1, got {self.delta}")
        if self.memory < 1 or self.steps < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ClickmaskError("OPO needs memory >= 1, steps >= 0, batch size >= 1 and a positive learning rate")
        if self.iterative < 0:
            raise ClickmaskError(f"OPO iterative clicks must be at least 0, got {self.iterative}")
        if self.gate < 0:
            raise ClickmaskError(f"OPO gate window must be at least 0 (0 = off), got {self.gate}")
        if self.gate_test not in ("proxy", "robot"):
            raise ClickmaskError(f"OPO gate test must be 'proxy' or 'robot', got {self.gate_test!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ClickmaskError(f"OPO optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")


def make_optimizer(params, config: OPOConfig):
    """The optimizer of an OPO adapter's parameters (shared by the benchmark and the app's trainer)."""
    import torch

    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum)


def opo_click_config(config: OPOConfig):
    """The click simulation and loss of one OPO step (shared by the benchmark and the app's trainer).

    ``config.iterative`` > 0 adds robot clicks on the adapter's own prediction
    with the previous mask fed back (as the robot user and the app do at
    inference), every step scored with the ICL weights.
    """
    from clickmask.training.loop import ClickConfig

    return ClickConfig(max_pos=config.max_pos, max_neg=config.max_neg, iterative_clicks=config.iterative, loss="bce",
                       batch_size=config.batch_size)


#: The gate's test of an adapter on an object: one random positive click inside it, then three
#: robot clicks at the centre of the largest error (previous mask fed back), drawn this many times.
GATE_DRAWS = 3


def held_out_gain(decoder, adapter, sample, seed: int) -> float:
    """How much ``adapter`` improves the plain decoder on ``sample``, an object it was not trained on.

    Both models get the same click sequences' starts (``GATE_DRAWS`` draws of
    one random positive click, then 3 robot clicks on each model's own
    prediction); the result is the mean low-res IoU over all steps and draws
    of the adapted model minus that of the plain one (in [-1, 1]; > 0 = the
    adapter helps). The target is the user's accepted mask, never a ground truth.
    """
    from clickmask.training.loop import ClickConfig, evaluate_loss

    clicks = ClickConfig(max_pos=1, max_neg=0, iterative_clicks=3, loss="bce", batch_size=1)
    draws = [sample] * GATE_DRAWS
    adapted = evaluate_loss(decoder, adapter, draws, clicks, seed)["iou_per_step"]
    plain = evaluate_loss(decoder, None, draws, clicks, seed)["iou_per_step"]
    return float(np.mean(adapted) - np.mean(plain))


class PrequentialGate:
    """Serve an adapter only while it has helped on objects it had not been trained on.

    Before a finished object joins the training memory, the adapter of that
    moment is tested on it (:func:`held_out_gain`). The gate is open when the
    mean gain over the last ``window`` such tests is positive; with no test
    yet it is closed (the plain model is served). This keeps a category's
    adaptation from making it worse when its finished masks do not teach
    anything that carries over to the next object.
    """

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ClickmaskError(f"OPO gate window must be at least 1, got {window}")
        self.window = window
        self.gains: list[float] = []

    def record(self, gain: float) -> None:
        """Add one held-out test result."""
        self.gains.append(float(gain))

    def is_open(self) -> bool:
        """True when the recent held-out gains are positive on average."""
        recent = self.gains[-self.window:]
        return bool(recent) and float(np.mean(recent)) > 0.0


class CategoryAdapter:
    """One category's adapter, optimizer, sample memory and published versions.

    ``versions[k]`` is the (A, b) affine map after training on the first k
    finished objects (``versions[0]`` = identity, i.e. None).
    """

    def __init__(self, category: str, decoder, config: OPOConfig) -> None:
        from clickmask.training.adapter import EmbeddingAdapter

        self.category = category
        self.config = config
        self.decoder = decoder
        self.adapter = EmbeddingAdapter(rank=config.rank, seed=config.seed)
        self.optimizer = make_optimizer(self.adapter.parameters(), config)
        self.memory: deque = deque(maxlen=config.memory)
        self.rng = np.random.default_rng([config.seed, zlib.crc32(category.encode())])
        self.versions: list[Affine | None] = [None]
        self.losses: list[float] = []
        self.gate = PrequentialGate(config.gate) if config.gate else None

    def learn(self, embedding: np.ndarray, mask: np.ndarray, name: str = "",
              crop: tuple[np.ndarray, np.ndarray] | None = None, gain: float | None = None) -> None:
        """Add a finished object (raw 1x256x64x64 embedding, final HxW bool mask) and train.

        ``crop``: the object's zoom-in view as (raw crop embedding, the mask's
        crop), used as a second sample and gate test when
        ``config.crop_views`` is on. An empty mask (nothing accepted) adds
        nothing but still publishes a version, so version k always belongs to
        object k. With the gate, a new object first tests the current adapter
        (it has not seen it; the mean gain over its views, or ``gain`` when the
        caller tested it, see :meth:`tested`), and the version published is
        None (plain model) while the gate is closed.
        """
        from clickmask.training.loop import train_steps

        samples = object_views(embedding, mask, crop if self.config.crop_views else None, name)
        if samples:
            if self.tested():
                seed = len(self.versions)
                if gain is None:
                    gain = float(np.mean([held_out_gain(self.decoder, self.adapter, s, seed) for s in samples]))
                self.gate.record(gain)
            self.memory.extend(samples)
        if self.memory and self.config.steps > 0:
            self.adapter.train()
            self.losses += train_steps(self.decoder, self.adapter, list(self.memory), self.config.steps,
                                       self.optimizer, self.rng, opo_click_config(self.config))
        closed = self.gate is not None and not self.gate.is_open()
        self.versions.append(None if closed else self.adapter.affine())

    def tested(self) -> bool:
        """Whether the next finished object tests the adapter for the gate (trained, and not on that object)."""
        return self.gate is not None and bool(self.memory) and self.config.steps > 0

    def version_for(self, index: int) -> Affine | None:
        """The adapter for 0-based object ``index``: trained on objects ``0 .. index - delta``."""
        count = index - self.config.delta + 1
        return self.versions[max(0, min(count, len(self.versions) - 1))]


def object_views(embedding: np.ndarray, mask: np.ndarray, crop: tuple[np.ndarray, np.ndarray] | None,
                 name: str = "") -> list:
    """The training samples of one finished object: the whole image, then its crop view if given and non-empty.

    embedding: raw 1x256x64x64; mask: HxW bool; crop: (raw crop embedding,
    the mask cut to the crop). Embeddings are kept as float16 (half the
    memory; training casts to float32). An empty mask gives no sample.
    """
    from clickmask.training.loop import TrainSample

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    views = [TrainSample(np.asarray(embedding, dtype=np.float16), mask.copy(), mask.shape, name=name)]
    if crop is not None:
        crop_emb, crop_mask = crop[0], np.asarray(crop[1], dtype=bool)
        if crop_mask.any():
            views.append(TrainSample(np.asarray(crop_emb, dtype=np.float16), crop_mask.copy(), crop_mask.shape,
                                     name=f"{name} crop"))
    return views


def load_frozen_decoder(spec):
    """The differentiable decoder of a model spec, frozen (only adapters are trained)."""
    from clickmask.training.torch_decoder import TorchSamDecoder

    decoder = TorchSamDecoder.from_onnx(spec.decoder)
    for param in decoder.parameters():
        param.requires_grad_(False)
    return decoder


def _torch_threads() -> None:
    """Use $CLICKMASK_THREADS threads for torch when set (benchmarks share the CPU)."""
    import torch

    threads = int(os.environ.get("CLICKMASK_THREADS", 0) or 0)
    if threads > 0:
        torch.set_num_threads(threads)


def adapted_twin(predictor: Predictor, name: str, crops: bool, what: str):
    """(frozen torch decoder, AdaptedSamPredictor, the predictor to click with) around a plain SAM predictor.

    The adapted predictor shares the plain one's embedding cache and, for a
    ``RefinedPredictor``, its inference options; it starts with no adapter.
    ``what`` names the feature in the error for a model that is not SAM-style.
    """
    from clickmask.engine.inference import RefinedPredictor
    from clickmask.engine.sam_onnx import SamOnnxPredictor
    from clickmask.training.adapted import AdaptedSamPredictor

    base = getattr(predictor, "base", predictor)
    if not isinstance(base, SamOnnxPredictor):
        raise ClickmaskError(f"model {predictor.model_id}: {what} needs a SAM-style ONNX model")
    _torch_threads()
    adapted = AdaptedSamPredictor(base.spec, None, base.cache, name=name, adapt_crops=crops)
    adapted.model_id = base.model_id
    active: Predictor = RefinedPredictor(adapted, predictor.options) if isinstance(predictor, RefinedPredictor) else adapted
    return load_frozen_decoder(base.spec), adapted, active


class OnlineAdapter:
    """OPO for the sequential benchmark (the runner's ``Adapter``), deterministic.

    Wraps the plain predictor's model in an ``AdaptedSamPredictor`` that shares
    its embedding cache (and ``RefinedPredictor`` options, if any); training
    runs synchronously when an object is finished.
    """

    def __init__(self, predictor: Predictor, config: OPOConfig = OPOConfig()) -> None:
        self.config = config
        self.decoder, self._adapted, self._active = adapted_twin(predictor, "opo", config.crops, "OPO")
        self.categories: dict[str, CategoryAdapter] = {}

    @classmethod
    def for_predictor(cls, predictor: Predictor, config: OPOConfig = OPOConfig()) -> "OnlineAdapter":
        """Build OPO around a predictor from ``load_predictor``."""
        return cls(predictor, config)

    def state(self, category: str) -> CategoryAdapter:
        """The category's adapter state (created on first use)."""
        if category not in self.categories:
            self.categories[category] = CategoryAdapter(category, self.decoder, self.config)
        return self.categories[category]

    def predictor_for(self, category: str, index: int) -> Predictor:
        """The adapted predictor for object ``index`` of ``category`` (applies on its next set_image)."""
        self._adapted.set_adapter(self.state(category).version_for(index))
        return self._active

    @property
    def wants_crops(self) -> bool:
        """Whether ``finished`` uses the objects' zoom-in crop views (``config.crop_views``)."""
        return self.config.crop_views

    def affine_for(self, category: str, index: int) -> Affine | None:
        """The (A, b) map object ``index`` of ``category`` is segmented with (None = identity)."""
        return self.state(category).version_for(index)

    def finished(self, category: str, index: int, image: np.ndarray, embedding: np.ndarray, mask: np.ndarray,
                 crop: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Train the category's adapter on the finished object (its raw embedding and final mask).

        ``crop``: (raw embedding, mask) of the object's zoom-in crop, or None.
        """
        state = self.state(category)
        if len(state.versions) != index + 1:
            raise ClickmaskError(f"OPO: objects of {category!r} must be finished in order (got {index})")
        gain = None
        if self.config.gate_test == "robot" and state.tested() and np.any(mask):
            from clickmask.sequential.gate_replay import replay_gain

            gain = replay_gain(self._adapted, self._active, image, np.asarray(mask, bool), state.adapter.affine(),
                               seed=len(state.versions))
        state.learn(embedding, mask, name=f"{category}#{index}", crop=crop, gain=gain)

    def describe(self) -> dict:
        """The configuration, for reports."""
        return asdict(self.config)

    def gate_log(self) -> dict[str, dict]:
        """Per category: the held-out gains the gate saw and which published versions were the adapter."""
        return {
            name: {"gains": [round(g, 4) for g in state.gate.gains],
                   "served": [v is not None for v in state.versions[1:]]}
            for name, state in self.categories.items() if state.gate is not None
        }
