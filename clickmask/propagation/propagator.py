"""One object through a video: annotated frames, propagation rounds, fusion, per-frame confidence.

:class:`Track` holds, for every frame, the object's 256x256 low-res logits
(the decoder's frame), the HxW mask, which annotated frame it came from and
how confident the propagation was. ``annotate(i, mask)`` records a mask the
user made on frame ``i``; ``propagate(i)`` then runs the round's two passes
(:func:`.rounds.round_passes`), each frame: memory read-out
(:mod:`.readout`), decoder (:mod:`.decode`), fusion with an earlier round's
mask (:mod:`.fusion`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from clickmask.propagation.decode import DecodeOptions, decode_readout
from clickmask.propagation.fusion import FUSION_MODES, distance_weight, fuse_low_res
from clickmask.propagation.grid import FrameGrid, low_res_to_grid
from clickmask.propagation.readout import TEMPERATURE, TOP_K, Memory, MemoryFrame, Projection, ReadOut
from clickmask.propagation.rounds import Pass, round_passes


class Frames(Protocol):
    """What a track reads frames from (a :class:`clickmask.io.video.FrameSource` is one)."""

    def __len__(self) -> int: ...

    def frame(self, index: int) -> np.ndarray: ...


@dataclass(frozen=True)
class PropagationOptions:
    """The propagation's parameters.

    k, temperature: the read-out (:func:`.readout.read_out`); every,
    max_periodic, max_annotated: the memory (:class:`.readout.Memory`); dims:
    key length after projection (256 = none); center: subtract each frame's
    mean feature; decode: the prompts (:class:`.decode.DecodeOptions`);
    fusion: ``fuse`` or ``overwrite`` (:mod:`.fusion`); diff: the fusion is
    difference-aware.
    """

    k: int = TOP_K
    temperature: float = TEMPERATURE
    every: int = 5
    max_periodic: int = 2
    max_annotated: int = 0
    dims: int = 64
    center: bool = True
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    fusion: str = "fuse"
    diff: bool = True

    def __post_init__(self) -> None:
        if self.fusion not in FUSION_MODES:
            raise ValueError(f"fusion must be one of {FUSION_MODES}, got {self.fusion!r}")

    def describe(self) -> dict:
        return {"k": self.k, "temperature": self.temperature, "every": self.every,
                "max_periodic": self.max_periodic, "max_annotated": self.max_annotated, "dims": self.dims,
                "center": self.center, "fusion": self.fusion, "diff": self.diff, **self.decode.describe()}


@dataclass
class FrameState:
    """What a track knows about one frame."""

    low_res: np.ndarray | None = None  # 256x256 logits
    mask: np.ndarray | None = None  # HxW bool
    source: int | None = None  # the annotated frame this mask came from
    confidence: float = 0.0  # 1 for an annotated frame
    annotated: bool = False


class Track:
    """One object in one video (see the module doc).

    model: a :class:`~clickmask.engine.sam_onnx.SamOnnxPredictor` (its
    ``image_embedding``, disk-cached, and its decoder); frames: the video.
    """

    def __init__(self, model, frames: Frames, options: PropagationOptions = PropagationOptions(),
                 key_cache: int = 32) -> None:
        self.model = model
        self.frames = frames
        self.options = options
        first = frames.frame(0)
        self.height, self.width = first.shape[:2]
        self.grid = FrameGrid(self.height, self.width, model.side)
        self.states = [FrameState() for _ in range(len(frames))]
        self.projection: Projection | None = None
        self.read_out = ReadOut(getattr(model, "threads", None))
        self._keys: OrderedDict[int, np.ndarray] = OrderedDict()
        self._key_cache = key_cache
        self.propagate_ms: list[float] = []  # one entry per propagated frame, all rounds

    def __len__(self) -> int:
        return len(self.states)

    # frames --------------------------------------------------------------------------
    def embedding(self, index: int) -> np.ndarray:
        """The 1x256x64x64 embedding of frame ``index`` (the model's cache, computed if missing)."""
        return self.model.image_embedding(self.frames.frame(index))[0]

    def keys(self, index: int, embedding: np.ndarray | None = None) -> np.ndarray:
        """Projected unit keys (T x dims) of frame ``index``, cached."""
        if index in self._keys:
            self._keys.move_to_end(index)
            return self._keys[index]
        if embedding is None:
            embedding = self.embedding(index)
        if self.projection is None:
            self.projection = Projection.fit(self.grid.keys(embedding, self.options.center), self.options.dims)
        keys = self.grid.keys(embedding, self.options.center, self.projection.basis)
        self._keys[index] = keys
        while len(self._keys) > self._key_cache:
            self._keys.popitem(last=False)
        return keys

    # state ---------------------------------------------------------------------------
    @property
    def annotated(self) -> list[int]:
        return [i for i, s in enumerate(self.states) if s.annotated]

    def masks(self) -> list[np.ndarray]:
        """HxW bool mask of every frame (empty where nothing is known yet)."""
        empty = np.zeros((self.height, self.width), bool)
        return [s.mask if s.mask is not None else empty for s in self.states]

    def confidences(self) -> list[float]:
        return [s.confidence for s in self.states]

    def annotate(self, index: int, mask: np.ndarray, low_res: np.ndarray | None = None) -> None:
        """Record the user's mask (HxW bool) of frame ``index``; ``low_res``: its 256x256 logits if known."""
        state = self.states[index]
        state.mask = np.asarray(mask, bool)
        state.low_res = low_res if low_res is not None else self.grid.mask_to_low_res(state.mask)
        state.source = index
        state.confidence = 1.0
        state.annotated = True

    # propagation ---------------------------------------------------------------------
    def propagate(self, index: int, before: np.ndarray | None = None,
                  on_frame: Callable[[int], None] | None = None) -> list[int]:
        """Propagate frame ``index``'s annotation both ways (this round's rule); returns the frames changed.

        before: frame ``index``'s mask before this round's correction (for the
        difference-aware fusion; None in the first round). ``on_frame(j)`` is
        called after each frame (progress, cancellation by raising).
        """
        state = self.states[index]
        if not state.annotated or state.mask is None:
            raise ValueError(f"frame {index} is not annotated: annotate it before propagating")
        earlier = set(self.annotated) - {index}
        anchor_keys = self.keys(index)
        anchor = MemoryFrame(index, anchor_keys, self.grid.flat(self.grid.mask_to_grid(state.mask)), "annotated")
        diff = None
        if self.options.fusion == "fuse" and self.options.diff and before is not None:
            change = np.abs(self.grid.mask_to_grid(state.mask) - self.grid.mask_to_grid(before))
            diff = self.grid.flat(change)
        changed: list[int] = []
        for p in round_passes(earlier, index, len(self)):
            changed += self._run_pass(p, index, anchor, diff, earlier, on_frame)
        return changed

    def _run_pass(self, p: Pass, index: int, anchor: MemoryFrame, diff: np.ndarray | None,
                  earlier: set[int], on_frame) -> list[int]:
        o = self.options
        memory = Memory(anchor, every=o.every, max_periodic=o.max_periodic, max_annotated=o.max_annotated)
        for e in earlier:
            if o.max_annotated > 0:
                s = self.states[e]
                memory.add_annotated(MemoryFrame(e, self.keys(e), self.grid.flat(self.grid.mask_to_grid(s.mask)),
                                                 "annotated"))
        for j in p.frames:
            t0 = time.perf_counter()
            emb = self.embedding(j)
            q = self.keys(j, emb)
            mem_keys, mem_values = memory.stacked()
            readout = self.grid.unflat(self.read_out(q, mem_keys, mem_values, o.k, o.temperature))
            dec = decode_readout(self.model, emb, self.grid, readout, o.decode)
            low = dec.low_res
            state = self.states[j]
            if o.fusion == "fuse" and state.low_res is not None and not state.annotated:
                w = distance_weight(j, index, state.source)
                diff256 = None
                if diff is not None:
                    spread = self.grid.unflat(self.read_out(q, anchor.keys, diff, o.k, o.temperature))
                    diff256 = _to_low_res(spread)
                low = fuse_low_res(low, state.low_res, w, diff256)
            state.low_res = low
            state.mask = self.model.upsample(low, (self.height, self.width)) > 0
            state.source = index
            state.confidence = dec.confidence
            memory.add_propagated(MemoryFrame(j, q, self.grid.flat(low_res_to_grid(low)), "previous"))
            self.propagate_ms.append((time.perf_counter() - t0) * 1000)
            if on_frame is not None:
                on_frame(j)
        return list(p.frames)


def _to_low_res(grid64: np.ndarray) -> np.ndarray:
    """64x64 values -> 256x256 (bilinear)."""
    import cv2

    return cv2.resize(np.asarray(grid64, np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
