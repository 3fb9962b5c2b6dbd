"""Initial Click Proposal (ICP): a per-category bank of first-click features.

Each finished object of a category contributes one feature vector: the image
embedding sampled at the object's first confirmed click (an accepted proposal
or the user's own first click). For a new image the proposal is the pixel whose
embedding is, on average, most cosine-similar to the bank, after a mean filter
on the embedding grid, leaving out pixels already covered by annotated objects
(the ignore mask) and the encoder's zero padding.

The bank also keeps one object feature per finished object (the embedding
averaged over the object's final mask, :func:`mask_feature`), so a proposal
can be checked at the object level: :mod:`clickmask.learning.proposal`
segments the best few peaks and keeps the one whose mask looks most like an
object already annotated.

Conventions: pixel coordinates ``x`` = column, ``y`` = row, pixel centres at
integers (as :class:`~clickmask.engine.clicks.Click`); masks are HxW bool. The
embedding is 1xCxGxG (C = 256, G = 64) for the image resized so its long side
is ``side`` (1024) and zero-padded bottom/right; grid cell ``(i, j)`` covers
encoder pixels ``[16j, 16j + 16) x [16i, 16i + 16)``, its centre at ``16j + 7.5``.
A pixel ``x`` maps to the continuous grid column
``(x + 0.5) * side / long_side / stride - 0.5`` (same for rows).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.preprocess import resized_shape
from clickmask.errors import ClickmaskError

SIDE = 1024
BANK_FORMAT = "clickmask-click-bank/1"
IGNORE_CELL_FRACTION = 0.1  # grid cells covered this much by the ignore mask are left out


def _grid(embedding: np.ndarray) -> np.ndarray:
    """Validate a 1xCxGxG (or CxGxG) embedding; return it as CxGxG float32."""
    emb = np.asarray(embedding)
    if emb.ndim == 4 and emb.shape[0] == 1:
        emb = emb[0]
    if emb.ndim != 3 or emb.shape[1] != emb.shape[2] or emb.shape[1] < 1:
        raise ClickmaskError(f"embedding must be 1xCxGxG with a square grid, got shape {np.shape(embedding)}")
    return emb.astype(np.float32, copy=False)


def _check_hw(image_hw: tuple[int, int]) -> tuple[int, int]:
    h, w = (int(v) for v in image_hw)
    if h < 1 or w < 1:
        raise ClickmaskError(f"image size must be positive, got {w}x{h}")
    return h, w


def pixel_to_grid(x: float, y: float, image_hw: tuple[int, int], grid: int, side: int = SIDE) -> tuple[float, float]:
    """Continuous grid coordinates ``(gx, gy)`` of image pixel ``(x, y)``.

    ``image_hw`` = (height, width) of the original image; ``grid`` = G.
    ``gx = (x + 0.5) * side / long_side / (side / grid) - 0.5``; cell ``j``'s
    centre is at ``gx = j``.
    """
    h, w = _check_hw(image_hw)
    scale = side / max(h, w) / (side / grid)
    return (x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5


def feature_at(embedding: np.ndarray, x: float, y: float, image_hw: tuple[int, int], side: int = SIDE) -> np.ndarray:
    """The C-d embedding feature at image pixel ``(x, y)``, sampled bilinearly.

    embedding: 1xCxGxG; image_hw: (height, width) of the image it encodes.
    Grid coordinates outside ``[0, G-1]`` are clamped. Returns C float32.
    """
    emb = _grid(embedding)
    h, w = _check_hw(image_hw)
    if not (0 <= x < w and 0 <= y < h):
        raise ClickmaskError(f"click at (x={x:g}, y={y:g}) is outside the {w}x{h} image")
    g = emb.shape[1]
    gx, gy = pixel_to_grid(x, y, (h, w), g, side)
    gx, gy = min(max(gx, 0.0), g - 1.0), min(max(gy, 0.0), g - 1.0)
    x0, y0 = int(np.floor(gx)), int(np.floor(gy))
    x1, y1 = min(x0 + 1, g - 1), min(y0 + 1, g - 1)
    fx, fy = gx - x0, gy - y0
    top = emb[:, y0, x0] * (1 - fx) + emb[:, y0, x1] * fx
    bottom = emb[:, y1, x0] * (1 - fx) + emb[:, y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _cell_fraction(mask: np.ndarray, image_hw: tuple[int, int], grid: int, side: int) -> np.ndarray:
    """Fraction (GxG float32) of each grid cell covered by an HxW bool mask (padding = uncovered)."""
    h, w = image_hw
    nh, nw = resized_shape(h, w, side)
    frame = np.zeros((side, side), np.float32)
    frame[:nh, :nw] = cv2.resize(mask.astype(np.float32), (nw, nh), interpolation=cv2.INTER_AREA)
    return cv2.resize(frame, (grid, grid), interpolation=cv2.INTER_AREA)


def _valid_cells(image_hw: tuple[int, int], grid: int, side: int) -> np.ndarray:
    """GxG bool: cells whose area is mostly inside the resized image (not padding)."""
    return _cell_fraction(np.ones(image_hw, bool), image_hw, grid, side) >= 0.5


def usable_cells(image_hw: tuple[int, int], grid: int, ignore_mask: np.ndarray | None, side: int = SIDE) -> np.ndarray:
    """GxG bool: cells on the image (not padding) and not noticeably on an annotated object.

    A cell partly on an annotated object (``ignore_mask``, HxW bool) still
    carries its features (the encoder's receptive field): every cell it covers
    by at least ``IGNORE_CELL_FRACTION`` is left out.
    """
    usable = _valid_cells(image_hw, grid, side)
    if ignore_mask is not None:
        usable &= _cell_fraction(ignore_mask, image_hw, grid, side) < IGNORE_CELL_FRACTION
    return usable


def mask_feature(embedding: np.ndarray, mask: np.ndarray, image_hw: tuple[int, int], side: int = SIDE) -> np.ndarray | None:
    """Unit-length C-d mean of the embedding (1xCxGxG) over an HxW bool mask, or None if it covers no cell.

    Each grid cell is weighted by the fraction of it the mask covers.
    """
    emb = _grid(embedding)
    h, w = _check_hw(image_hw)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != (h, w):
        raise ClickmaskError(f"mask is {mask.shape[1] if mask.ndim == 2 else '?'}x{mask.shape[0]} but the image is {w}x{h}")
    weights = _cell_fraction(mask, (h, w), emb.shape[1], side).reshape(-1)
    total = float(weights.sum())
    if total <= 1e-6:
        return None
    feat = emb.reshape(emb.shape[0], -1) @ weights / total
    norm = float(np.linalg.norm(feat))
    return (feat / norm).astype(np.float32) if norm > 1e-6 else None


def _mean_filter(values: np.ndarray, valid: np.ndarray, size: int) -> np.ndarray:
    """size x size mean of ``values`` over the ``valid`` cells only (GxG float32 both).

    Cells with no valid neighbour keep their value; invalid cells are not averaged in.
    """
    if size <= 1:
        return values
    weights = valid.astype(np.float32)
    num = cv2.boxFilter(values * weights, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    den = cv2.boxFilter(weights, -1, (size, size), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return np.where(den > 0, num / np.maximum(den, 1e-6), values).astype(np.float32)


def _upsample(grid_map: np.ndarray, image_hw: tuple[int, int], side: int) -> np.ndarray:
    """GxG map -> HxW (bilinear to side x side, crop the padding, bilinear to the image)."""
    h, w = image_hw
    nh, nw = resized_shape(h, w, side)
    up = cv2.resize(grid_map, (side, side), interpolation=cv2.INTER_LINEAR)[:nh, :nw]
    if (nh, nw) != (h, w):
        up = cv2.resize(up, (w, h), interpolation=cv2.INTER_LINEAR)
    return up


def _vectors(items: list, what: str) -> list[np.ndarray]:
    """Parse a list of flat number lists into float32 vectors; errors name ``what`` and the index."""
    out = []
    for index, item in enumerate(items):
        try:
            vec = np.asarray(item, dtype=np.float32)
        except (TypeError, ValueError):
            raise ClickmaskError(f"{what} {index} is not a list of numbers") from None
        if vec.ndim != 1 or vec.size == 0:
            raise ClickmaskError(f"{what} {index} is not a flat list of numbers")
        out.append(vec)
    return out


@dataclass
class ClickBank:
    """The first-click features of one category's finished objects (oldest first).

    ``smooth``: side of the mean filter on the GxG similarity grid (1 = none).
    ``max_items``: keep only the most recent N features (None = all).
    ``objects``: unit C-d object features of the finished objects (see
    :func:`mask_feature`), also capped at ``max_items``.
    """

    features: list[np.ndarray] = field(default_factory=list)
    objects: list[np.ndarray] = field(default_factory=list)
    smooth: int = 3
    max_items: int | None = None

    def __len__(self) -> int:
        return len(self.features)

    def snapshot(self) -> "ClickBank":
        """A copy that later additions to this bank do not change (the stored vectors are shared, never mutated)."""
        return replace(self, features=list(self.features), objects=list(self.objects))

    @property
    def dim(self) -> int | None:
        """Feature length C, or None while the bank is empty."""
        return int(self.features[0].shape[0]) if self.features else None

    def add_feature(self, feature: np.ndarray) -> None:
        """Append a C-d feature vector (must match the bank's C and not be all zero)."""
        vec = np.asarray(feature, dtype=np.float32).reshape(-1)
        if self.dim is not None and vec.shape[0] != self.dim:
            raise ClickmaskError(f"click bank holds {self.dim}-d features, got a {vec.shape[0]}-d one")
        if not np.all(np.isfinite(vec)) or not np.any(vec):
            raise ClickmaskError("click bank feature must be finite and not all zero")
        self.features.append(vec.copy())
        if self.max_items is not None and len(self.features) > self.max_items:
            del self.features[: len(self.features) - self.max_items]

    def add_click(self, embedding: np.ndarray, click: Click, image_hw: tuple[int, int], side: int = SIDE) -> None:
        """Store the feature of the embedding (1xCxGxG) at a first click (x, y pixels)."""
        self.add_feature(feature_at(embedding, click.x, click.y, image_hw, side))

    def add_object(self, embedding: np.ndarray, mask: np.ndarray, image_hw: tuple[int, int], side: int = SIDE) -> bool:
        """Store a finished object's feature (embedding 1xCxGxG averaged over its HxW bool mask).

        Returns False (nothing stored) when the mask covers no grid cell.
        """
        feat = mask_feature(embedding, mask, image_hw, side)
        if feat is None:
            return False
        if self.objects and feat.shape[0] != self.objects[0].shape[0]:
            raise ClickmaskError(f"click bank holds {self.objects[0].shape[0]}-d object features, got a {feat.shape[0]}-d one")
        self.objects.append(feat)
        if self.max_items is not None and len(self.objects) > self.max_items:
            del self.objects[: len(self.objects) - self.max_items]
        return True

    def object_similarity(self, feature: np.ndarray) -> float | None:
        """Highest cosine similarity of a unit object feature to the stored objects (None if there are none)."""
        if not self.objects:
            return None
        return float(np.max(np.stack(self.objects) @ np.asarray(feature, np.float32)))

    def _grid_confidence(
        self,
        embedding: np.ndarray,
        image_hw: tuple[int, int],
        ignore_mask: np.ndarray | None,
        side: int,
    ) -> np.ndarray:
        """GxG float32 smoothed similarity to the bank, -1 on left-out cells (bank not empty)."""
        emb = _grid(embedding)
        h, w = _check_hw(image_hw)
        c, g, _ = emb.shape
        if c != self.dim:
            raise ClickmaskError(f"embedding has {c} channels but the click bank holds {self.dim}-d features")
        cells = emb.reshape(c, -1)
        bank = np.stack(self.features)
        cells = cells / np.maximum(np.linalg.norm(cells, axis=0, keepdims=True), 1e-6)
        bank = bank / np.maximum(np.linalg.norm(bank, axis=1, keepdims=True), 1e-6)
        # mean over the bank of cos(cell, f_i) = cell_hat . mean_i(f_i_hat) (SIIS)
        sim = (bank.mean(axis=0) @ cells).reshape(g, g).astype(np.float32)
        valid = usable_cells((h, w), g, ignore_mask, side)
        sim = _mean_filter(sim, valid, self.smooth)
        sim[~valid] = -1.0
        return sim

    def confidence(
        self,
        embedding: np.ndarray,
        image_hw: tuple[int, int],
        ignore_mask: np.ndarray | None = None,
        side: int = SIDE,
    ) -> np.ndarray | None:
        """HxW float32 mean cosine similarity to the bank (smoothed); None if empty.

        Grid cells covered by ``ignore_mask`` (HxW bool; >= 10% of the cell) or
        mostly by padding are left out of the mean filter and set to -1 before
        upsampling, so pixels next to an annotated object score low too.
        """
        if not self.features:
            return None
        sim = self._grid_confidence(embedding, image_hw, ignore_mask, side)
        return _upsample(sim, _check_hw(image_hw), side)

    def propose(
        self,
        embedding: np.ndarray,
        image_hw: tuple[int, int],
        ignore_mask: np.ndarray | None = None,
        side: int = SIDE,
    ) -> Click | None:
        """The proposed first click (positive), or None (empty bank, or everything ignored).

        embedding: 1xCxGxG of the image; image_hw: its (height, width);
        ignore_mask: HxW bool, True where objects are already annotated.
        """
        h, w = _check_hw(image_hw)
        if ignore_mask is not None:
            ignore_mask = np.asarray(ignore_mask, dtype=bool)
            if ignore_mask.shape != (h, w):
                raise ClickmaskError(
                    f"ignore mask is {ignore_mask.shape[1] if ignore_mask.ndim == 2 else '?'}x"
                    f"{ignore_mask.shape[0]} but the image is {w}x{h}"
                )
        score = self.confidence(embedding, (h, w), ignore_mask, side)
        if score is None:
            return None
        if ignore_mask is not None:
            if ignore_mask.all():
                return None
            score = np.where(ignore_mask, -np.inf, score)
        row, col = np.unravel_index(int(np.argmax(score)), score.shape)
        return Click(x=float(col), y=float(row), positive=True)

    def peaks(
        self,
        embedding: np.ndarray,
        image_hw: tuple[int, int],
        ignore_mask: np.ndarray | None = None,
        count: int = 4,
        spacing: int = 3,
        side: int = SIDE,
    ) -> list[Click]:
        """Up to ``count`` candidate first clicks, best first: :meth:`propose`, then other local peaks.

        The other peaks are the centres of the most similar grid cells that are
        more than ``spacing`` cells (Chebyshev) from every peak already taken
        and not on the ignore mask. Empty list when :meth:`propose` gives None.
        """
        first = self.propose(embedding, image_hw, ignore_mask, side)
        if first is None:
            return []
        h, w = _check_hw(image_hw)
        sim = self._grid_confidence(embedding, (h, w), ignore_mask, side)
        g = sim.shape[0]
        fx, fy = pixel_to_grid(first.x, first.y, (h, w), g, side)
        taken = [(int(round(fy)), int(round(fx)))]
        out = [first]
        scale = max(h, w) / side * (side / g)  # image pixels per grid cell
        for index in np.argsort(-sim, axis=None):
            if len(out) >= count:
                break
            row, col = divmod(int(index), g)
            if sim[row, col] <= -1.0:
                break
            if any(abs(row - r) <= spacing and abs(col - c) <= spacing for r, c in taken):
                continue
            x = min((col + 0.5) * scale - 0.5, w - 1.0)
            y = min((row + 0.5) * scale - 0.5, h - 1.0)
            if ignore_mask is not None and ignore_mask[int(round(y)), int(round(x))]:
                continue
            taken.append((row, col))
            out.append(Click(x=float(x), y=float(y), positive=True))
        return out

    # -- serialization -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (features rounded to 6 significant digits)."""
        return {
            "smooth": self.smooth,
            "max_items": self.max_items,
            "features": [[float(f"{v:.6g}") for v in feat] for feat in self.features],
            "objects": [[float(f"{v:.6g}") for v in feat] for feat in self.objects],
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "click bank") -> "ClickBank":
        """Inverse of :meth:`to_dict`; ``source`` names the file in error messages."""
        if not isinstance(data, dict) or not isinstance(data.get("features"), list):
            raise ClickmaskError(f"{source}: expected an object with a 'features' list")
        smooth = data.get("smooth", 3)
        max_items = data.get("max_items")
        if not isinstance(smooth, int) or smooth < 1:
            raise ClickmaskError(f"{source}: 'smooth' must be a positive integer, got {smooth!r}")
        if max_items is not None and (not isinstance(max_items, int) or max_items < 1):
            raise ClickmaskError(f"{source}: 'max_items' must be a positive integer or null, got {max_items!r}")
        bank = cls(smooth=smooth, max_items=max_items)
        for index, vec in enumerate(_vectors(data["features"], f"{source}: feature")):
            try:
                bank.add_feature(vec)
            except ClickmaskError as exc:
                raise ClickmaskError(f"{source}: feature {index}: {exc}") from None
        objects = data.get("objects", [])  # absent in banks saved before object features existed
        if not isinstance(objects, list):
            raise ClickmaskError(f"{source}: 'objects' must be a list")
        for index, vec in enumerate(_vectors(objects, f"{source}: object")):
            norm = float(np.linalg.norm(vec))
            if not np.all(np.isfinite(vec)) or norm <= 1e-6:
                raise ClickmaskError(f"{source}: object {index} must be finite and not all zero")
            if bank.objects and vec.shape != bank.objects[0].shape:
                raise ClickmaskError(f"{source}: object {index} has {vec.shape[0]} values, not {bank.objects[0].shape[0]}")
            bank.objects.append(vec / norm)
        return bank


@dataclass
class CategoryClickBanks:
    """One :class:`ClickBank` per category name (created on first use)."""

    banks: dict[str, ClickBank] = field(default_factory=dict)
    smooth: int = 3
    max_items: int | None = None

    def bank(self, category: str) -> ClickBank:
        """The bank of ``category`` (an empty one is created if needed)."""
        if category not in self.banks:
            self.banks[category] = ClickBank(smooth=self.smooth, max_items=self.max_items)
        return self.banks[category]

    def to_json(self) -> str:
        """Serialize all banks as a JSON document."""
        return json.dumps({
            "format": BANK_FORMAT,
            "smooth": self.smooth,
            "max_items": self.max_items,
            "categories": {name: bank.to_dict() for name, bank in self.banks.items()},
        })

    @classmethod
    def from_json(cls, text: str, source: str = "click banks") -> "CategoryClickBanks":
        """Parse :meth:`to_json` output; ``source`` (e.g. the file) is named in errors."""
        try:
            data = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ClickmaskError(f"{source}: not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != BANK_FORMAT:
            raise ClickmaskError(f"{source}: not a click bank file (expected format {BANK_FORMAT!r})")
        categories = data.get("categories")
        if not isinstance(categories, dict):
            raise ClickmaskError(f"{source}: 'categories' must be an object")
        smooth = data.get("smooth", 3)
        max_items = data.get("max_items")
        if not isinstance(smooth, int) or smooth < 1:
            raise ClickmaskError(f"{source}: 'smooth' must be a positive integer, got {smooth!r}")
        out = cls(smooth=smooth, max_items=max_items if isinstance(max_items, int) else None)
        for name, bank in categories.items():
            out.banks[str(name)] = ClickBank.from_dict(bank, f"{source}: category {name!r}")
        return out
