"""SAM-style encoder/decoder pair run with onnxruntime."""

from __future__ import annotations

import os
import time
from typing import Sequence

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.embedding_cache import EmbeddingCache, image_key
from clickmask.engine.predictor import Prediction, check_clicks
from clickmask.engine.preprocess import map_coords, preprocess
from clickmask.errors import ClickmaskError, ModelError
from clickmask.models.registry import ModelSpec

LOW_RES = 256


def _session(path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several private exception types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load model file '{path}': {first}") from exc


class SamOnnxPredictor:
    """Interactive predictor for a SAM-compatible ONNX encoder + prompt decoder.

    ``set_image`` computes the 1x256x64x64 embedding (or takes it from the
    cache); ``predict`` runs only the decoder. Timings of the last calls are in
    ``last_embed_ms`` / ``last_predict_ms``; ``last_embed_cached`` says whether
    the embedding came from the cache.
    """

    is_fallback = False

    def __init__(
        self, spec: ModelSpec, cache: EmbeddingCache | None = None, threads: int | None = None
    ) -> None:
        threads = threads or os.cpu_count() or 1
        self.spec = spec
        self.model_id = spec.id
        self.side = spec.input_size
        self.cache = cache if cache is not None else EmbeddingCache(None)
        self._encoder = _session(spec.encoder, threads)
        self._decoder = _session(spec.decoder, threads)
        self._encoder_input = self._encoder.get_inputs()[0].name
        self._embedding: np.ndarray | None = None
        self._hw: tuple[int, int] | None = None
        self.last_embed_ms = 0.0
        self.last_embed_cached = False
        self.last_predict_ms = 0.0

    # -- image -----------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Set an HxWx3 uint8 RGB image; computes or loads its embedding."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ClickmaskError(
                f"set_image needs an HxWx3 uint8 RGB array, got shape {image.shape} {image.dtype}"
            )
        t0 = time.perf_counter()
        emb, self.last_embed_cached = self._embedding_for(image)
        self._embedding = emb
        self._hw = image.shape[:2]
        self.last_embed_ms = (time.perf_counter() - t0) * 1000

    def prefetch(self, image: np.ndarray) -> bool:
        """Compute and cache the embedding of an HxWx3 uint8 image without making it current.

        Safe to call from a background thread while clicks are served on the
        current image (onnxruntime sessions and the cache are thread-safe).
        Returns True if the embedding had to be computed.
        """
        _, cached = self._embedding_for(image)
        return not cached

    def _embedding_for(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """(embedding, came_from_cache) for an image, computing and caching it if needed."""
        key = f"{self.spec.fingerprint}-{image_key(image)}"
        emb = self.cache.get(key)
        if emb is not None:
            return emb, True
        self.cache.put(key, self.encode(image))
        emb = self.cache.get(key)  # the stored (float16-rounded) copy: same result hit or miss
        assert emb is not None
        return emb, False

    def encode(self, image: np.ndarray) -> np.ndarray:
        """Run the encoder: HxWx3 uint8 -> 1x256x64x64 float32 embedding."""
        x = preprocess(image, self.side)
        return self._encoder.run(None, {self._encoder_input: x})[0].astype(np.float32)

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
        self, clicks: Sequence[Click], mask_input: np.ndarray | None = None
    ) -> Prediction:
        """Decode a mask for ``clicks``.

        clicks: positive/negative points, x, y in original image pixels.
        mask_input: 256x256 float32 low-res logits of the previous prediction
            (mask feedback) or None.
        Returns full-size logits (HxW float32), the new 256x256 low-res logits
        and the predicted IoU.
        """
        h, w = self.image_size
        check_clicks(clicks, h, w)
        xy = np.array([[c.x, c.y] for c in clicks], dtype=np.float32)
        labels = np.array([1.0 if c.positive else 0.0 for c in clicks], dtype=np.float32)
        return self.decode(map_coords(xy, h, w, self.side), labels, mask_input)

    def decode(
        self, coords: np.ndarray, labels: np.ndarray, mask_input: np.ndarray | None
    ) -> Prediction:
        """Run the decoder on prompts already in the encoder frame.

        coords: Nx2 float32 (x, y) in the 1024 frame; labels: N float32
        (1 positive, 0 negative, 2/3 box corners). A padding point is appended.
        """
        t0 = time.perf_counter()
        h, w = self.image_size
        coords = np.concatenate([coords, np.zeros((1, 2), np.float32)])[None].astype(np.float32)
        labels = np.concatenate([labels, np.array([-1.0], np.float32)])[None].astype(np.float32)
        has_mask = mask_input is not None
        feed = {
            "image_embeddings": self.embedding,
            "point_coords": coords,
            "point_labels": labels,
            "mask_input": (
                np.asarray(mask_input, np.float32).reshape(1, 1, LOW_RES, LOW_RES)
                if has_mask
                else np.zeros((1, 1, LOW_RES, LOW_RES), np.float32)
            ),
            "has_mask_input": np.array([1.0 if has_mask else 0.0], np.float32),
            "orig_im_size": np.array([h, w], np.float32),
        }
        masks, iou, low_res = self._decoder.run(None, feed)
        self.last_predict_ms = (time.perf_counter() - t0) * 1000
        return Prediction(
            logits=masks[0, 0].astype(np.float32, copy=False),
            low_res_logits=low_res[0, 0].astype(np.float32, copy=False),
            score=float(iou.reshape(-1)[0]),
        )
