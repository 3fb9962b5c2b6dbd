"""Where a frame's pixels lie on the encoder's 64x64 grid and the decoder's 256x256 low-res grid.

The encoder input is the frame resized so its longest side is ``side``
(1024) and zero-padded at the bottom/right; the embedding has one 256-d
feature per 16x16 cell of that padded square (64x64 cells), the decoder's
low-res logits one value per 4x4 block (256x256). Only the cells that hold
image (``rows x cols``, the top-left part) are used as memory keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from clickmask.engine.preprocess import resized_shape

GRID = 64
LOW_RES = 256


@dataclass(frozen=True)
class FrameGrid:
    """The grids of one frame size: ``height x width`` pixels, encoder input ``side``."""

    height: int
    width: int
    side: int = 1024

    @property
    def resized(self) -> tuple[int, int]:
        """(height, width) of the frame inside the padded ``side`` square."""
        return resized_shape(self.height, self.width, self.side)

    @property
    def cells(self) -> tuple[int, int]:
        """(rows, cols) of the 64x64 grid that hold image (a partly covered cell counts)."""
        nh, nw = self.resized
        cell = self.side / GRID
        return min(GRID, math.ceil(nh / cell)), min(GRID, math.ceil(nw / cell))

    def keys(self, embedding: np.ndarray, center: bool = True, basis: np.ndarray | None = None) -> np.ndarray:
        """(rows*cols) x 256 float32 unit-length features of the image cells of a 1x256x64x64 embedding.

        ``center``: subtract the frame's mean feature first, so the part every
        location shares (SAM features have a large one) does not dominate the
        cosine similarity. ``basis`` (256 x d, a :class:`~.readout.Projection`'s):
        the features projected onto it, (rows*cols) x d unit keys; the same as
        projecting the 256-d unit keys, since the length is taken afterwards.
        """
        rows, cols = self.cells
        feats = np.asarray(embedding, np.float32).reshape(-1, GRID, GRID)[:, :rows, :cols]
        feats = feats.reshape(feats.shape[0], -1)  # C x T
        if center:
            feats = feats - feats.mean(axis=1, keepdims=True)
        if basis is not None:
            feats = basis.T @ feats  # d x T
        norm = np.linalg.norm(feats, axis=0, keepdims=True)
        return np.ascontiguousarray((feats / np.maximum(norm, 1e-6)).T, dtype=np.float32)

    def mask_to_grid(self, mask: np.ndarray) -> np.ndarray:
        """HxW bool (or [0, 1] float) mask -> 64x64 float32 object fraction of each cell."""
        nh, nw = self.resized
        resized = cv2.resize(np.asarray(mask, np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
        padded = np.zeros((self.side, self.side), np.float32)
        padded[:nh, :nw] = resized
        return cv2.resize(padded, (GRID, GRID), interpolation=cv2.INTER_AREA)

    def mask_to_low_res(self, mask: np.ndarray, scale: float = 10.0) -> np.ndarray:
        """HxW bool mask -> 256x256 float32 logits (+-``scale``, soft at the edge) in the decoder's frame."""
        nh, nw = self.resized
        resized = cv2.resize(np.asarray(mask, np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
        padded = np.zeros((self.side, self.side), np.float32)
        padded[:nh, :nw] = resized
        prob = cv2.resize(padded, (LOW_RES, LOW_RES), interpolation=cv2.INTER_AREA)
        return prob_to_logits(prob, scale)

    def flat(self, grid: np.ndarray) -> np.ndarray:
        """64x64 values -> the (rows*cols,) values of the image cells (same order as :meth:`keys`)."""
        rows, cols = self.cells
        return np.ascontiguousarray(grid[:rows, :cols]).reshape(-1)

    def unflat(self, values: np.ndarray) -> np.ndarray:
        """(rows*cols,) values -> 64x64 float32 (0 on the padding)."""
        rows, cols = self.cells
        out = np.zeros((GRID, GRID), np.float32)
        out[:rows, :cols] = np.asarray(values, np.float32).reshape(rows, cols)
        return out


def low_res_to_grid(low_res: np.ndarray) -> np.ndarray:
    """256x256 logits -> 64x64 float32 mean object probability of each embedding cell."""
    prob = sigmoid(np.asarray(low_res, np.float32))
    f = LOW_RES // GRID
    return prob.reshape(GRID, f, GRID, f).mean(axis=(1, 3))


def grid_to_low_res(grid: np.ndarray, scale: float = 10.0) -> np.ndarray:
    """64x64 object probabilities -> 256x256 float32 logits (bilinear, then see :func:`prob_to_logits`)."""
    prob = cv2.resize(np.asarray(grid, np.float32), (LOW_RES, LOW_RES), interpolation=cv2.INTER_LINEAR)
    return prob_to_logits(prob, scale)


def prob_to_logits(prob: np.ndarray, scale: float = 10.0) -> np.ndarray:
    """Probabilities -> logits ``scale * (2p - 1)``: 0 at p = 0.5, +-``scale`` when certain.

    Linear rather than log-odds so a certain cell gives a logit of the size
    the decoder's own low-res output has, and never infinity.
    """
    return (scale * (2.0 * np.asarray(prob, np.float32) - 1.0)).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Elementwise logistic function, float32, overflow-free."""
    x = np.asarray(x, np.float32)
    return (0.5 * (1.0 + np.tanh(0.5 * x))).astype(np.float32)
