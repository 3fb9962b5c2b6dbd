"""Learned reference prompts (RefCut's dual prompt encoding) for the frozen SAM-style decoder.

A :class:`~clickmask.learning.reference.Reference` holds two unit prototypes
(positive, negative or None). Two small MLPs of the same shape, one per side,
map a prototype ``r`` (C = 256) to two C-d vectors ``(c, g)``; the reference's
prompt is a dense additive term on the target image's embedding, per cell::

    bias(cell) = sum over the sides present of  c_side + cos(E[cell], r_side) * g_side

``c`` is RefCut's prompt as such (one vector added everywhere); ``g`` is scaled
by how much each cell looks like the prototype, so the term can mark where the
positive (negative) side is, which a constant alone cannot for a decoder that
is not retrained. Without a negative prototype its side contributes nothing.

Why a dense term: the ONNX decoder's inputs are the image embedding, points
(coordinates and labels, embedded inside the graph), a 256x256 mask and its
flag. Arbitrary prompt *tokens* cannot be passed without editing the graph, but
in SAM's decoder the image embedding is only ever used as ``embedding + dense
prompt``, so adding the term to ``image_embeddings`` is exactly a learned dense
prompt. The torch twin (:mod:`clickmask.training.reference_prompts`) trains it
through :class:`~clickmask.training.torch_decoder.TorchSamDecoder`, decoder frozen.

Inference is plain NumPy: :class:`ReferencePrompts` (the weights, ``.npz``),
:class:`EmbeddingPrompt` (one reference encoded: applied to any embedding, the
image's and zoom crops') and :class:`PromptedPredictor` (a SAM ONNX predictor
whose embeddings carry the prompt of the reference in use).
"""

from __future__ import annotations

import io
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clickmask.engine.sam_onnx import SamOnnxPredictor
from clickmask.errors import ClickmaskError
from clickmask.io.atomic import atomic_write_bytes
from clickmask.learning.adapted import CACHE_ITEMS, AdaptedPredictor
from clickmask.learning.reference import EPS, Reference

FORMAT = "clickmask-reference-prompts-1"
SIDES = ("pos", "neg")
#: parameter names per side: w1 (C x H), b1 (H), w2 (H x 2C), b2 (2C)
PARAMS = ("w1", "b1", "w2", "b2")


def _mlp(params: dict[str, np.ndarray], side: str, proto: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(c, g), C-d each, of one side's two-layer MLP on a C-d prototype."""
    h = np.maximum(proto @ params[f"{side}.w1"] + params[f"{side}.b1"], 0.0)
    out = h @ params[f"{side}.w2"] + params[f"{side}.b2"]
    c = out.shape[0] // 2
    return out[:c].astype(np.float32), out[c:].astype(np.float32)


@dataclass(frozen=True)
class EmbeddingPrompt:
    """One reference encoded: per present side its unit prototype and (c, g) vectors (C-d each)."""

    protos: np.ndarray  # SxC unit prototypes (S = 1 or 2)
    const: np.ndarray  # C: the sum of the sides' c
    gates: np.ndarray  # SxC: each side's g

    def bias(self, embedding: np.ndarray) -> np.ndarray:
        """The 1xCxGxG additive term for a 1xCxGxG embedding (float32)."""
        emb = np.asarray(embedding, np.float32)
        c = emb.shape[1]
        cells = emb.reshape(c, -1)  # CxN
        norms = np.maximum(np.sqrt(np.einsum("cn,cn->n", cells, cells)), EPS)
        sims = np.einsum("sc,cn->sn", self.protos, cells) / norms  # no BLAS threads (see reference.candidate_scores)
        out = self.const[:, None] + np.einsum("sc,sn->cn", self.gates, sims)
        return out.reshape(emb.shape).astype(np.float32)

    def __call__(self, embedding: np.ndarray) -> np.ndarray:
        """``embedding`` plus the term (a new float32 array)."""
        return (np.asarray(embedding, np.float32) + self.bias(embedding)).astype(np.float32)


class ReferencePrompts:
    """The dual prompt encoder's weights (NumPy) and its metadata; see the module doc."""

    def __init__(self, params: dict[str, np.ndarray], meta: dict | None = None) -> None:
        missing = [f"{s}.{p}" for s in SIDES for p in PARAMS if f"{s}.{p}" not in params]
        if missing:
            raise ClickmaskError(f"reference prompts: missing parameter {missing[0]}")
        self.params = {k: np.asarray(v, np.float32) for k, v in params.items()}
        self.meta = dict(meta or {})
        c = self.channels
        for s in SIDES:
            if self.params[f"{s}.w2"].shape[1] != 2 * c or self.params[f"{s}.w1"].shape[0] != c:
                raise ClickmaskError(f"reference prompts: {s} weights have inconsistent shapes")

    @property
    def channels(self) -> int:
        return int(self.params["pos.w1"].shape[0])

    @property
    def trained_on(self) -> set[str]:
        """Image names of the evaluation set (PascalPart) this encoder was trained on (held-out checks)."""
        return set(self.meta.get("pascalpart_images", []))

    def encode(self, reference: Reference, negative: bool = True) -> EmbeddingPrompt:
        """The prompt of ``reference`` (``negative=False``: its positive side only)."""
        if reference.channels != self.channels:
            raise ClickmaskError(f"reference has {reference.channels} channels, the prompt encoder {self.channels}")
        protos, gates = [], []
        const = np.zeros(self.channels, np.float32)
        sides = [("pos", reference.positive)]
        if negative and reference.negative is not None:
            sides.append(("neg", reference.negative))
        for side, proto in sides:
            p = np.asarray(proto, np.float32)
            c, g = _mlp(self.params, side, p)
            const += c
            protos.append(p / max(float(np.linalg.norm(p)), EPS))
            gates.append(g)
        return EmbeddingPrompt(np.stack(protos), const, np.stack(gates))

    # files -----------------------------------------------------------------
    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, __meta__=np.frombuffer(json.dumps({"format": FORMAT, **self.meta}).encode(), np.uint8),
                 **self.params)
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        """Write the weights and metadata to ``path`` (.npz) atomically."""
        atomic_write_bytes(Path(path), self.to_bytes())

    @classmethod
    def load(cls, path: str | Path) -> "ReferencePrompts":
        """Read a file written by :meth:`save` (ClickmaskError naming the file otherwise)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise ClickmaskError(f"cannot read reference prompts '{path}': {exc}") from None
        try:
            meta = json.loads(bytes(arrays.pop("__meta__")).decode())
        except (KeyError, ValueError):
            raise ClickmaskError(f"reference prompts '{path}': no metadata") from None
        if meta.get("format") != FORMAT:
            raise ClickmaskError(f"reference prompts '{path}': unknown format {meta.get('format')!r}")
        meta.pop("format")
        return cls(arrays, meta)


class PromptedPredictor(AdaptedPredictor):
    """A SAM ONNX predictor whose embeddings (the image's and zoom crops') carry an :class:`EmbeddingPrompt`.

    Shares the sessions and cache of the model it is made from (:meth:`sharing`);
    with no prompt set it decodes exactly as the plain model. Prompted embeddings
    are kept for the last few (raw embedding, prompt) pairs.
    """

    @classmethod
    def sharing(cls, base: SamOnnxPredictor, name: str | None = None) -> "PromptedPredictor":
        view = super().sharing(base, name)
        view._prompt = None
        view._prompted = deque(maxlen=CACHE_ITEMS)
        return view  # type: ignore[return-value]

    @property
    def prompt(self) -> EmbeddingPrompt | None:
        return self._prompt

    def set_prompt(self, prompt: EmbeddingPrompt | None) -> None:
        """Decode with ``prompt`` from now on, the current image included (None: the plain embeddings)."""
        if prompt is self._prompt:
            return
        self._prompt = prompt
        if self._raw is not None:
            self._embedding = self._adapt(self._raw)

    def _adapt(self, raw: np.ndarray) -> np.ndarray:
        out = super()._adapt(raw)
        prompt = self._prompt
        if prompt is None:
            return out
        for r, p, prompted in self._prompted:
            if r is raw and p is prompt:
                return prompted
        prompted = prompt(out)
        self._prompted.append((raw, prompt, prompted))
        return prompted
