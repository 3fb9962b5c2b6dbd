"""A per-category object map: a linear discriminant on the embedding grid, fit on finished objects.

Every finished object of a category teaches which embedding cells were object
and which were not: cells its final mask covers (>= half) are object, cells it
barely touches (<= 5%) are background, the rest are left out. The map is
Fisher's linear discriminant on the unit-normalised cell features, with the
pooled within-class covariance shrunk towards its mean variance (``shrink``),
so it stays well posed with one object. It is kept as running sums (O(C^2)
memory whatever the number of objects) and solved in closed form when asked,
so learning an object costs a few milliseconds and needs no gradient.

For the next image, :meth:`ObjectMap.scores` gives every GxG cell a score
(> 0: looks like the category's objects rather than their surroundings).
:func:`map_proposal` proposes its smoothed maximum outside the annotated
objects as the first click, and :func:`prior_logits` turns the map around a
click into SAM's 256x256 mask input.

Conventions as in :mod:`clickmask.learning.click_bank`: the embedding is
1xCxGxG for the image resized to long side ``side`` (1024) and zero-padded
bottom/right; clicks are x = column, y = row in image pixels; masks HxW bool.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.errors import ClickmaskError
from clickmask.learning.click_bank import (
    SIDE, _cell_fraction, _check_hw, _grid, _mean_filter, _upsample, _valid_cells, pixel_to_grid, usable_cells,
)

OBJECT_FRACTION = 0.5  # a cell the mask covers at least this much is an object cell
BACKGROUND_FRACTION = 0.05  # a cell the mask covers at most this much is a background cell
PRIOR_SCALE = 5.0  # the mask input's logits: scores in units of their spread, times this


def _unit_cells(embedding: np.ndarray) -> np.ndarray:
    """(G*G)xC float64 cell features of a 1xCxGxG embedding, each scaled to unit length."""
    emb = _grid(embedding)
    cells = emb.reshape(emb.shape[0], -1).T.astype(np.float64)
    return cells / np.maximum(np.linalg.norm(cells, axis=1, keepdims=True), 1e-6)


@dataclass
class _ClassSums:
    """Running count, sum (C) and second moment (CxC) of one class's cell features."""

    n: int = 0
    total: np.ndarray | None = None
    outer: np.ndarray | None = None

    def add(self, cells: np.ndarray) -> None:
        if not len(cells):
            return
        if self.total is None:
            dim = cells.shape[1]
            self.total, self.outer = np.zeros(dim), np.zeros((dim, dim))
        self.n += len(cells)
        self.total += cells.sum(axis=0)
        self.outer += cells.T @ cells

    def mean(self) -> np.ndarray:
        return self.total / self.n

    def scatter(self) -> np.ndarray:
        """Sum of (x - mean)(x - mean)^T over the class."""
        mu = self.mean()
        return self.outer - self.n * np.outer(mu, mu)


@dataclass
class ObjectMap:
    """One category's linear object map (see the module docstring).

    shrink: weight of the mean variance in the shrunk covariance (0..1).
    """

    shrink: float = 0.1
    objects: int = 0
    _fg: _ClassSums = field(default_factory=_ClassSums)
    _bg: _ClassSums = field(default_factory=_ClassSums)
    _solved: tuple[np.ndarray, float] | None = None

    def add(self, embedding: np.ndarray, mask: np.ndarray, image_hw: tuple[int, int], side: int = SIDE) -> bool:
        """Learn a finished object: its image's embedding (1xCxGxG) and its final HxW bool mask.

        Returns False (nothing learned) when the mask covers no grid cell by half.
        """
        h, w = _check_hw(image_hw)
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (h, w):
            raise ClickmaskError(f"mask is {mask.shape[1] if mask.ndim == 2 else '?'}x{mask.shape[0]} "
                                 f"but the image is {w}x{h}")
        cells = _unit_cells(embedding)
        g = int(round(np.sqrt(len(cells))))
        if self._fg.total is not None and cells.shape[1] != self._fg.total.shape[0]:
            raise ClickmaskError(f"object map holds {self._fg.total.shape[0]}-d features, got {cells.shape[1]}-d ones")
        frac = _cell_fraction(mask, (h, w), g, side).reshape(-1)
        valid = _valid_cells((h, w), g, side).reshape(-1)
        inside = valid & (frac >= OBJECT_FRACTION)
        if not inside.any():
            return False
        self._fg.add(cells[inside])
        self._bg.add(cells[valid & (frac <= BACKGROUND_FRACTION)])
        self.objects += 1
        self._solved = None
        return True

    @property
    def ready(self) -> bool:
        """Whether both object and background cells have been seen."""
        return self._fg.n > 0 and self._bg.n > 0

    def _solve(self) -> tuple[np.ndarray, float]:
        """(C weights, bias) of the discriminant; the bias puts 0 midway between the class means."""
        if self._solved is None:
            cov = (self._fg.scatter() + self._bg.scatter()) / (self._fg.n + self._bg.n)
            dim = cov.shape[0]
            shrunk = (1.0 - self.shrink) * cov + self.shrink * (np.trace(cov) / dim) * np.eye(dim)
            mu_f, mu_b = self._fg.mean(), self._bg.mean()
            weights = np.linalg.solve(shrunk + 1e-9 * np.eye(dim), mu_f - mu_b)
            self._solved = (weights, -float(weights @ (mu_f + mu_b)) / 2.0)
        return self._solved

    def snapshot(self) -> ObjectMap:
        """An independent copy (to score an image while the original keeps learning)."""
        return copy.deepcopy(self)

    def to_bytes(self) -> bytes:
        """The map as a NumPy .npz (its running sums; float64, about 1 MB for 256-d features)."""
        arrays: dict[str, np.ndarray] = {"shrink": np.float64(self.shrink), "objects": np.int64(self.objects)}
        for name, sums in (("fg", self._fg), ("bg", self._bg)):
            arrays[f"{name}_n"] = np.int64(sums.n)
            if sums.total is not None:
                arrays[f"{name}_total"], arrays[f"{name}_outer"] = sums.total, sums.outer
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "object map") -> ObjectMap:
        """Inverse of :meth:`to_bytes`; ``source`` names the data in the one-line error."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                out = cls(shrink=float(npz["shrink"]), objects=int(npz["objects"]))
                for name, sums in (("fg", out._fg), ("bg", out._bg)):
                    sums.n = int(npz[f"{name}_n"])
                    if sums.n:
                        sums.total = np.asarray(npz[f"{name}_total"], np.float64)
                        sums.outer = np.asarray(npz[f"{name}_outer"], np.float64)
                        dim = sums.total.shape
                        if len(dim) != 1 or sums.outer.shape != dim * 2:
                            raise ValueError(f"{name} sums of shapes {sums.total.shape} and {sums.outer.shape}")
            if out._fg.n and out._bg.n and out._fg.total.shape != out._bg.total.shape:
                raise ValueError("object and background sums differ in size")
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ClickmaskError(f"{source}: not a valid object map ({first})") from None
        return out

    def scores(self, embedding: np.ndarray) -> np.ndarray | None:
        """GxG float32 discriminant score of each cell (> 0: object-like), or None before :attr:`ready`."""
        if not self.ready:
            return None
        weights, bias = self._solve()
        cells = _unit_cells(embedding)
        if cells.shape[1] != weights.shape[0]:
            raise ClickmaskError(f"embedding has {cells.shape[1]} channels but the object map holds "
                                 f"{weights.shape[0]}-d features")
        g = int(round(np.sqrt(len(cells))))
        return (cells @ weights + bias).reshape(g, g).astype(np.float32)


def map_proposal(
    scores: np.ndarray, image_hw: tuple[int, int], ignore_mask: np.ndarray | None = None,
    smooth: int = 3, side: int = SIDE,
) -> Click | None:
    """The proposed first click: the maximum of the 3x3-smoothed GxG ``scores`` off the annotated objects.

    ``ignore_mask`` (HxW bool) marks annotated objects; None when every pixel is on one.
    """
    h, w = _check_hw(image_hw)
    if ignore_mask is not None and np.asarray(ignore_mask, bool).all():
        return None
    usable = usable_cells((h, w), scores.shape[0], ignore_mask, side)
    smoothed = _mean_filter(np.asarray(scores, np.float32), usable, smooth)
    smoothed[~usable] = smoothed.min() - 1.0
    full = _upsample(smoothed, (h, w), side)
    if ignore_mask is not None:
        full = np.where(ignore_mask, -np.inf, full)
    row, col = np.unravel_index(int(np.argmax(full)), full.shape)
    return Click(x=float(col), y=float(row), positive=True)


def map_support(scores: np.ndarray, mask: np.ndarray, side: int = SIDE) -> float:
    """Share (0..1) of an HxW bool ``mask`` that the GxG ``scores`` call object-like (> 0); 0 for an empty mask.

    The confidence of a map proposal: a mask the category's map recognises
    all over scores near 1, a mask that spreads over what the map calls
    background (a whole table, the frame) scores low.
    """
    if not mask.any():
        return 0.0
    full = _upsample(np.asarray(scores, np.float32), mask.shape, side)
    return float(np.count_nonzero(full[mask] > 0) / np.count_nonzero(mask))


def prior_logits(
    scores: np.ndarray, click: Click, image_hw: tuple[int, int], ignore_mask: np.ndarray | None = None,
    side: int = SIDE,
) -> np.ndarray:
    """SAM's 256x256 mask input from the map: the object-like region connected to ``click``.

    Cells scoring > 0 that are not connected (8-neighbourhood) to the click's
    cell, or are on annotated objects, are made background, so other
    instances of the category do not join the mask. Scores are divided by
    their spread and multiplied by :data:`PRIOR_SCALE`.
    """
    h, w = _check_hw(image_hw)
    g = scores.shape[0]
    usable = usable_cells((h, w), g, ignore_mask, side)
    grid = np.where(usable, scores, np.minimum(scores, -1.0)).astype(np.float32)
    gx, gy = pixel_to_grid(click.x, click.y, (h, w), g, side)
    col, row = (min(max(int(round(v)), 0), g - 1) for v in (gx, gy))
    _, labels = cv2.connectedComponents((grid > 0).astype(np.uint8), connectivity=8)
    if labels[row, col] > 0:
        grid = np.where(labels == labels[row, col], grid, np.minimum(grid, -1.0)).astype(np.float32)
    low = cv2.resize(grid, (256, 256), interpolation=cv2.INTER_LINEAR)
    return (low / max(float(np.std(low)), 1e-6) * PRIOR_SCALE).astype(np.float32)
