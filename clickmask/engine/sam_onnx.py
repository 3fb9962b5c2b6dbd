"""SAM-style encoder/decoder pair run with onnxruntime."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.decoder_graph import extract_candidates_model
from clickmask.engine.embedding_cache import EmbeddingCache, image_key
from clickmask.engine.predictor import Prediction, check_clicks, check_image, clip_box
from clickmask.engine.preprocess import map_coords, preprocess, resized_shape
from clickmask.errors import ClickmaskError, ModelError
from clickmask.models.registry import ModelSpec

LOW_RES = 256


def _session(path: Path | bytes, threads: int, label: str = ""):
    """An onnxruntime CPU session for a model file (or serialized model bytes)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        source = path if isinstance(path, bytes) else str(path)
        return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load model file '{label or path}': {first}") from exc


def point_prompts(clicks: Sequence[Click], box: BoxPrompt | None = None, offset: tuple[float, float] = (0.0, 0.0)
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(Nx2 float32 x, y in pixels minus ``offset``, N float32 SAM labels) of clicks and a box's corners.

    Labels: 1 positive click, 0 negative click, 2 and 3 the box's top-left and
    bottom-right corners.
    """
    points = [(c.x, c.y) for c in clicks]
    labels = [1.0 if c.positive else 0.0 for c in clicks]
    if box is not None:
        points += list(box.corners)
        labels += [2.0, 3.0]
    xy = np.array(points, np.float32).reshape(-1, 2) - np.array(offset, np.float32)
    return xy, np.array(labels, np.float32)


def prompt_count(clicks: Sequence[Click], box: BoxPrompt | None) -> int:
    """How many prompts the decoder sees: each click, and a box as its two corners."""
    return len(clicks) + (2 if box is not None else 0)


def lone_prompt(clicks: Sequence[Click], box: BoxPrompt | None) -> bool:
    """One click alone, or a box alone: the prompts whose part/whole candidates the user may pick from."""
    return (len(clicks) == 1 and box is None) or (not clicks and box is not None)


class SamOnnxPredictor:
    """Interactive predictor for a SAM-compatible ONNX encoder + prompt decoder.

    ``set_image`` computes the 1x256x64x64 embedding (or takes it from the
    cache); ``predict`` runs only the decoder. onnxruntime uses ``threads``
    threads (default: ``$CLICKMASK_THREADS``, else one per CPU). Timings of the last calls are in
    ``last_embed_ms`` / ``last_predict_ms``; ``last_embed_cached`` says whether
    the embedding came from the cache.
    """

    is_fallback = False

    def __init__(
        self, spec: ModelSpec, cache: EmbeddingCache | None = None, threads: int | None = None
    ) -> None:
        threads = threads or int(os.environ.get("CLICKMASK_THREADS", 0)) or os.cpu_count() or 1
        self.threads = threads
        self.spec = spec
        self.model_id = spec.id
        self.side = spec.input_size
        self.cache = cache if cache is not None else EmbeddingCache(None)
        self._encoder = _session(spec.encoder, threads)
        self._decoder = _session(spec.decoder, threads)
        candidates = extract_candidates_model(spec.decoder)
        self._candidates = None
        if candidates is not None:
            self._candidates = _session(candidates[0], threads, f"{spec.decoder} (candidates)")
            self._candidate_outputs = list(candidates[1])
        self._encoder_input = self._encoder.get_inputs()[0].name
        self._background_encoder = None  # created on the first prefetch
        self._embedding: np.ndarray | None = None
        self._hw: tuple[int, int] | None = None
        self.last_embed_ms = 0.0
        self.last_embed_cached = False
        self.last_predict_ms = 0.0

    # -- image -----------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Set an HxWx3 uint8 RGB image; computes or loads its embedding."""
        check_image(image)
        t0 = time.perf_counter()
        emb, self.last_embed_cached = self.image_embedding(image)
        self._embedding = emb
        self._hw = image.shape[:2]
        self.last_embed_ms = (time.perf_counter() - t0) * 1000

    def prefetch(self, image: np.ndarray) -> bool:
        """Compute and cache the embedding of an HxWx3 uint8 image without making it current.

        Safe to call from a background thread while clicks are served on the
        current image (onnxruntime sessions and the cache are thread-safe). It
        runs on a separate single-threaded encoder session, so a click arriving
        meanwhile still gets a core. Returns True if the embedding was computed.
        """
        if self._background_encoder is None:
            self._background_encoder = _session(self.spec.encoder, 1)
        _, cached = self.image_embedding(image, self._background_encoder)
        return not cached

    def image_embedding(self, image: np.ndarray, encoder=None) -> tuple[np.ndarray, bool]:
        """(1x256x64x64 float32 embedding, came_from_cache) of any HxWx3 uint8 image (the current one, a crop).

        Every embedding the predictor decodes with comes from here, computed
        and cached if needed (``encoder``: another session, for prefetching);
        a subclass that transforms embeddings (an adapter) overrides this.
        """
        key = f"{self.spec.fingerprint}-{image_key(image)}"
        emb = self.cache.get(key)
        if emb is not None:
            return emb, True
        self.cache.put(key, self.encode(image, encoder))
        emb = self.cache.get(key)  # the stored (float16-rounded) copy: same result hit or miss
        assert emb is not None
        return emb, False

    def encode(self, image: np.ndarray, encoder=None) -> np.ndarray:
        """Run the encoder: HxWx3 uint8 -> 1x256x64x64 float32 embedding."""
        x = preprocess(image, self.side)
        session = encoder if encoder is not None else self._encoder
        return session.run(None, {self._encoder_input: x})[0].astype(np.float32)

    def polish(self, pred: Prediction, clicks: Sequence[Click]) -> Prediction:
        """No image-space steps: ``pred`` as it is."""
        return pred

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the current image."""
        if self._hw is None:
            raise ClickmaskError("no image set: call set_image first")
        return self._hw

    @property
    def embedding(self) -> np.ndarray:
        """The current 1x256x64x64 float32 embedding."""
        if self._embedding is None:
            raise ClickmaskError("no image set: call set_image first")
        return self._embedding

    # -- prompts ---------------------------------------------------------------
    def predict(
        self, clicks: Sequence[Click], previous: Prediction | None = None, box: BoxPrompt | None = None
    ) -> Prediction:
        """Decode a mask for ``clicks`` and an optional ``box``.

        clicks: positive/negative points, x, y in original image pixels.
        previous: the previous prediction, whose 256x256 low-res logits are fed
            back as ``mask_input`` (mask feedback), or None.
        box: a rectangle around the object (its corners are SAM's box prompt).
        Returns full-size logits (HxW float32), the new 256x256 low-res logits,
        the predicted IoU and, for a lone prompt (one click, or a box alone),
        the other candidate masks.
        """
        t0 = time.perf_counter()
        coords, labels = self.prompts(clicks, box)
        mask_input = previous.low_res_logits if previous is not None else None
        low_res, scores = self.decode_candidates(coords, labels, mask_input)
        best = self.select_candidate(prompt_count(clicks, box), scores)
        pred = Prediction(
            logits=self.upsample(low_res[best]), low_res_logits=low_res[best], score=float(scores[best])
        )
        if lone_prompt(clicks, box) and len(scores) > 1:
            pred.candidates = [Prediction(self.upsample(low_res[k]), low_res[k], float(scores[k]))
                               for k in range(len(scores)) if k != best]
        self.last_predict_ms = (time.perf_counter() - t0) * 1000
        return pred

    def prompts(self, clicks: Sequence[Click], box: BoxPrompt | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Clicks (and a box) -> (Nx2 float32 coords in the encoder frame, N float32 labels), validated.

        A box adds its two corners with SAM's labels 2 (top-left) and 3 (bottom-right).
        """
        h, w = self.image_size
        check_clicks(clicks, h, w, box)
        xy, labels = point_prompts(clicks, box and clip_box(box, h, w))
        return map_coords(xy, h, w, self.side), labels

    @property
    def has_candidates(self) -> bool:
        """True when the decoder exposes all mask tokens (multi-mask candidates)."""
        return self._candidates is not None

    def select_candidate(self, n_prompts: int, scores: np.ndarray) -> int:
        """SAM's rule: best of tokens 1-3 for a single click, token 0 otherwise (a box counts as 2 prompts)."""
        if len(scores) == 1:
            return 0
        return 1 + int(np.argmax(scores[1:])) if n_prompts == 1 else 0

    def decode_candidates(
        self,
        coords: np.ndarray,
        labels: np.ndarray,
        mask_input: np.ndarray | None,
        embedding: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Run the decoder on prompts in the encoder frame.

        coords: Nx2 float32 (x, y) in the ``side`` frame; labels: N float32
        (1 positive, 0 negative, 2/3 box corners); a padding point is appended.
        mask_input: 256x256 logits or None. embedding: 1x256x64x64, default the
        current image's. Returns (Kx256x256 float32 low-res logits, K scores):
        K = 4 mask tokens when available, else the decoder's single mask.
        """
        coords = np.concatenate([coords, np.zeros((1, 2), np.float32)])[None].astype(np.float32)
        labels = np.concatenate([labels, np.array([-1.0], np.float32)])[None].astype(np.float32)
        has_mask = mask_input is not None
        feed = {
            "image_embeddings": self.embedding if embedding is None else embedding,
            "point_coords": coords,
            "point_labels": labels,
            "mask_input": (
                np.asarray(mask_input, np.float32).reshape(1, 1, LOW_RES, LOW_RES)
                if has_mask
                else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)
            ),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
        }
        if self._candidates is not None:
            masks, scores = self._candidates.run(self._candidate_outputs, feed)
            return masks[0].astype(np.float32, copy=False), scores[0].astype(np.float32, copy=False)
        feed["orig_im_size"] = np.array([self.side, self.side], np.float32)
        _, scores, low_res = self._decoder.run(None, feed)
        return low_res[0].astype(np.float32, copy=False), scores.reshape(-1).astype(np.float32)

    def upsample(self, low_res: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        """256x256 low-res logits -> HxW logits of the current image (or ``size`` = (h, w)).

        Same steps as SAM's postprocessing: bilinear to side x side, crop the
        padding, bilinear to the original size.
        """
        h, w = size if size is not None else self.image_size
        nh, nw = resized_shape(h, w, self.side)
        up = cv2.resize(low_res, (self.side, self.side), interpolation=cv2.INTER_LINEAR)[:nh, :nw]
        if (nh, nw) != (h, w):
            up = cv2.resize(up, (w, h), interpolation=cv2.INTER_LINEAR)
        return up
