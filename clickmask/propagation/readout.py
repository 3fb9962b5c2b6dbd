"""Space-time memory read-out over encoder embeddings.

Keys are unit-length features of the embedding cells (:meth:`FrameGrid.keys`),
values the object probability of each memory cell (64x64 grid, flattened).
For each target cell the cosine similarity to every memory cell is computed,
the ``k`` most similar memory cells are kept and weighted by a softmax of
similarity / ``temperature``; the read-out is the weighted mean of their
values: a probability per target cell that the cell shows the object.

Cost: one (T x C) @ (C x M) product and a top-k per target row, T the
target's image cells (2304 for a 16:9 frame), M all memory cells. A
:class:`Projection` (the memory's principal directions) shortens C from 256
to ``dims`` and makes the product about 4x cheaper. The top-k is exact but
found in two steps (:func:`top_k`): the k best blocks of ``BLOCK`` memory
cells by their maximum (every one of the k largest values lies in one of
them), then the k largest values among those blocks' cells; a partial sort
of M/``BLOCK`` + k x ``BLOCK`` values per row instead of M.

:class:`ReadOut` runs the same read-out as one small onnxruntime graph
(matrix product, top-k, softmax, gather): the product and the top-k use
both cores, about half the time of the NumPy version on this 2-core
machine; :func:`read_out` stays the reference it is tested against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

#: Memory cells each target cell reads from.
TOP_K = 20
#: Softmax temperature on cosine similarities (in [-1, 1]): 0.05 makes a 0.05 higher similarity weigh e times more.
TEMPERATURE = 0.05
#: Memory cells per block in the two-step top-k.
BLOCK = 16


def top_k(sim: np.ndarray, k: int, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(T x k indices, T x k values) of the ``k`` largest values of each row of ``sim`` (T x M), unordered.

    Exact: the blocks (``block`` columns each, ``nb`` apart) holding the k largest
    values of a row are among the k blocks with the largest maxima, so only
    their cells are searched. Ties may be broken differently from a full sort.
    """
    t, m = sim.shape
    if k >= m:
        return np.broadcast_to(np.arange(m), sim.shape), sim
    nb = -(-m // block)
    if nb <= 2 * k:
        idx = np.argpartition(sim, -k, axis=1)[:, -k:]
        return idx, np.take_along_axis(sim, idx, axis=1)
    if nb * block != m:
        sim = np.concatenate([sim, np.full((t, nb * block - m), -np.inf, sim.dtype)], axis=1)
    # block b holds the columns b, b + nb, b + 2 nb, ...: its maximum is a reduction over the middle axis
    best_blocks = np.argpartition(sim.reshape(t, block, nb).max(axis=1), -k, axis=1)[:, -k:]  # T x k
    cand_idx = (best_blocks[:, :, None] + nb * np.arange(block)[None, None, :]).reshape(t, k * block)
    cand = np.take_along_axis(sim, cand_idx, axis=1)
    pick = np.argpartition(cand, -k, axis=1)[:, -k:]
    values = np.take_along_axis(cand, pick, axis=1)
    idx = np.take_along_axis(cand_idx, pick, axis=1)
    return idx, values


def read_out(query: np.ndarray, keys: np.ndarray, values: np.ndarray,
             k: int = TOP_K, temperature: float = TEMPERATURE) -> np.ndarray:
    """Top-k softmax read-out.

    query: T x C unit-length target keys; keys: M x C unit-length memory keys;
    values: M memory values (object probability). Returns T float32 values,
    each a convex combination of the values of its ``k`` most similar memory
    cells (all of them when M <= k).
    """
    query = np.asarray(query, np.float32)
    keys = np.asarray(keys, np.float32)
    values = np.asarray(values, np.float32)
    if keys.shape[0] == 0:
        return np.zeros(query.shape[0], np.float32)
    sim = query @ keys.T  # T x M
    idx, top = top_k(sim, k)
    top = (top - top.max(axis=1, keepdims=True)) / temperature
    weights = np.exp(top)
    weights /= weights.sum(axis=1, keepdims=True)
    return (weights * values[idx]).sum(axis=1).astype(np.float32)


def _readout_graph() -> bytes:
    """The serialized ONNX graph of :func:`read_out`: inputs query (T x C), keys (M x C), values (M,),
    k (1,) int64, temperature () float; output (T,) float."""
    from onnx import TensorProto, helper

    f = TensorProto.FLOAT
    nodes = [
        helper.make_node("Gemm", ["query", "keys"], ["sim"], transB=1),
        helper.make_node("TopK", ["sim", "k"], ["top", "idx"], axis=1),  # sorted: column 0 is the maximum
        helper.make_node("Slice", ["top", "zero", "one", "one"], ["best"]),
        helper.make_node("Sub", ["top", "best"], ["shifted"]),
        helper.make_node("Div", ["shifted", "temperature"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["weights"], axis=1),
        helper.make_node("Gather", ["values", "idx"], ["picked"], axis=0),
        helper.make_node("Mul", ["weights", "picked"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "one"], ["out"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "clickmask_readout",
        [helper.make_tensor_value_info("query", f, ["T", "C"]), helper.make_tensor_value_info("keys", f, ["M", "C"]),
         helper.make_tensor_value_info("values", f, ["M"]), helper.make_tensor_value_info("k", TensorProto.INT64, [1]),
         helper.make_tensor_value_info("temperature", f, [])],
        [helper.make_tensor_value_info("out", f, ["T"])],
        initializer=[helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
                     helper.make_tensor("one", TensorProto.INT64, [1], [1])])
    # IR 8 / opset 17: what every onnxruntime the project allows (>= 1.18) reads
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


@lru_cache(maxsize=4)
def _readout_session(threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # no spinning between runs: the decoder runs right after each read-out, and idle threads spinning here
    # would take its cores (decision 0021: about 20 ms per propagated frame on two cores)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(_readout_graph(), opts, providers=["CPUExecutionProvider"])


class ReadOut:
    """:func:`read_out` run by onnxruntime with ``threads`` threads (default ``CLICKMASK_THREADS``, else all cores).

    Same arguments and result as :func:`read_out` (to float rounding; ties in
    the top-k may be broken differently). The compiled graph is shared by
    every instance with the same thread count; ``run`` is thread-safe.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or int(os.environ.get("CLICKMASK_THREADS", 0)) or os.cpu_count() or 1

    def __call__(self, query: np.ndarray, keys: np.ndarray, values: np.ndarray,
                 k: int = TOP_K, temperature: float = TEMPERATURE) -> np.ndarray:
        query = np.ascontiguousarray(query, np.float32)
        keys = np.ascontiguousarray(keys, np.float32)
        values = np.ascontiguousarray(values, np.float32).reshape(-1)
        if keys.shape[0] == 0 or query.shape[0] == 0:
            return np.zeros(query.shape[0], np.float32)
        feed = {"query": query, "keys": keys, "values": values,
                "k": np.array([min(k, keys.shape[0])], np.int64), "temperature": np.array(temperature, np.float32)}
        return _readout_session(self.threads).run(None, feed)[0]


@dataclass
class Projection:
    """A linear map of 256-d keys onto their ``dims`` principal directions (re-normalised).

    Fitted on the keys of one or more frames of the same video (:meth:`fit`);
    ``identity()`` keeps the keys as they are.
    """

    basis: np.ndarray | None = None  # C x dims, or None for the identity

    @classmethod
    def fit(cls, keys: np.ndarray, dims: int) -> "Projection":
        """Principal directions of ``keys`` (N x C); ``dims >= C`` gives the identity."""
        keys = np.asarray(keys, np.float32)
        if dims >= keys.shape[1]:
            return cls(None)
        centred = keys - keys.mean(axis=0, keepdims=True)
        cov = centred.T @ centred
        _, vecs = np.linalg.eigh(cov.astype(np.float64))
        return cls(np.ascontiguousarray(vecs[:, ::-1][:, :dims], dtype=np.float32))

    @classmethod
    def identity(cls) -> "Projection":
        return cls(None)

    def __call__(self, keys: np.ndarray) -> np.ndarray:
        """N x C unit keys -> N x dims unit keys."""
        if self.basis is None:
            return keys
        out = keys @ self.basis
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)


@dataclass
class MemoryFrame:
    """One frame in memory: its (projected) keys, its values (M,) and why it is there."""

    index: int
    keys: np.ndarray
    values: np.ndarray
    kind: str  # "annotated" | "periodic" | "previous"


@dataclass
class Memory:
    """The memory of one propagation pass (one direction of one round), bounded in size.

    CiVOS's rule: the frame annotated in this round (``anchor``), every
    ``every``-th frame propagated from it (``|j - anchor| % every == 0``, the
    ``max_periodic`` most recent ones), and the frame propagated just
    before; plus up to ``max_annotated`` frames annotated in earlier rounds
    (the nearest ones). At most ``1 + max_annotated + max_periodic + 1`` frames.
    """

    anchor: MemoryFrame
    every: int = 5
    max_periodic: int = 2
    max_annotated: int = 1
    annotated: list[MemoryFrame] = field(default_factory=list)
    periodic: list[MemoryFrame] = field(default_factory=list)
    previous: MemoryFrame | None = None

    def add_annotated(self, frame: MemoryFrame) -> None:
        """An earlier round's annotated frame; keeps the ``max_annotated`` nearest to the anchor."""
        self.annotated.append(frame)
        self.annotated.sort(key=lambda f: abs(f.index - self.anchor.index))
        del self.annotated[self.max_annotated:]

    def add_propagated(self, frame: MemoryFrame) -> None:
        """A frame just propagated: the new ``previous``, and a periodic one on every ``every``-th step."""
        self.previous = frame
        if self.every > 0 and abs(frame.index - self.anchor.index) % self.every == 0:
            self.periodic.append(frame)
            del self.periodic[:-self.max_periodic]

    def frames(self) -> list[MemoryFrame]:
        """The memory frames, each once."""
        out, seen = [], set()
        for f in [self.anchor, *self.annotated, *self.periodic, *( [self.previous] if self.previous else [])]:
            if f.index not in seen:
                seen.add(f.index)
                out.append(f)
        return out

    def stacked(self) -> tuple[np.ndarray, np.ndarray]:
        """(M x C keys, M values) of all memory frames."""
        frames = self.frames()
        return np.concatenate([f.keys for f in frames]), np.concatenate([f.values for f in frames])
