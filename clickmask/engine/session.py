"""One object being annotated: the clicks so far and the mask they give."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction, Predictor
from clickmask.errors import ClickmaskError

#: Predictions kept whole for undo (besides the first click's); older ones are kept compact:
#: the mask as bits and the low-res logits as float16 (about 0.2 MB instead of 2 MB a click).
KEEP_WHOLE = 2


@dataclass(frozen=True)
class _Compact:
    """An older prediction, reduced to what undo gives back: the exact mask, the mask feedback, the score."""

    bits: np.ndarray
    shape: tuple[int, int]
    low_res: np.ndarray | None
    score: float
    info: dict

    @classmethod
    def of(cls, pred: Prediction) -> "_Compact":
        low = None if pred.low_res_logits is None else pred.low_res_logits.astype(np.float16)
        return cls(np.packbits(pred.mask, axis=None), pred.mask.shape, low, pred.score, pred.info)

    def expand(self) -> Prediction:
        mask = np.unpackbits(self.bits, count=self.shape[0] * self.shape[1]).reshape(self.shape).astype(bool)
        low = None if self.low_res is None else self.low_res.astype(np.float32)
        return Prediction(np.where(mask, 1.0, -1.0).astype(np.float32), low, self.score, info=self.info)


class InteractiveSession:
    """Click-by-click segmentation of one object on the predictor's current image.

    Each click re-runs the predictor with all clicks so far; with
    ``mask_feedback`` the previous prediction is passed along, so its low-res
    logits become the decoder's ``mask_input`` (SAM's iterative refinement). ``undo`` restores the previous
    mask exactly (no re-prediction needed). The first and the last :data:`KEEP_WHOLE`
    predictions are kept whole; undoing further back restores the mask, and the
    mask feedback rounded to float16, so memory stays small however many clicks
    an object takes.
    """

    def __init__(self, predictor: Predictor, mask_feedback: bool = True) -> None:
        self.predictor = predictor
        self.mask_feedback = mask_feedback
        self._clicks: list[Click] = []
        self._history: list[Prediction | _Compact] = []

    @property
    def clicks(self) -> list[Click]:
        """The clicks so far, in order (a copy)."""
        return list(self._clicks)

    @property
    def prediction(self) -> Prediction | None:
        """The latest prediction, or None before the first click."""
        return self._history[-1] if self._history else None

    @property
    def first_prediction(self) -> Prediction | None:
        """The prediction of the object's first click, or None before it."""
        return self._history[0] if self._history else None

    def current_mask(self, shape: tuple[int, int] | None = None) -> np.ndarray | None:
        """HxW bool mask of the latest prediction (empty mask of ``shape`` if none)."""
        pred = self.prediction
        if pred is not None:
            return pred.mask
        return np.zeros(shape, dtype=bool) if shape is not None else None

    def add_click(self, click: Click) -> Prediction:
        """Add a click and return the new prediction."""
        prev = self.prediction
        pred = self.predictor.predict(
            [*self._clicks, click], previous=prev if self.mask_feedback else None
        )
        self._clicks.append(click)
        self._history.append(pred)
        old = len(self._history) - 1 - KEEP_WHOLE
        if old > 0 and isinstance(self._history[old], Prediction):
            self._history[old] = _Compact.of(self._history[old])
        return pred

    def start_from(self, click: Click, prediction: Prediction) -> Prediction:
        """Begin the object with a first click whose mask is already known (an accepted proposal).

        ``prediction`` stands for ``predictor.predict([click])``; later clicks
        refine it like any other (its low-res logits are the mask feedback).
        Raises ClickmaskError if the object already has clicks.
        """
        if self._clicks:
            raise ClickmaskError("start_from needs an object without clicks")
        self._clicks.append(click)
        self._history.append(prediction)
        return prediction

    def undo(self) -> Prediction | None:
        """Remove the last click; returns the prediction now current (or None)."""
        if self._clicks:
            self._clicks.pop()
            self._history.pop()
            if self._history and isinstance(self._history[-1], _Compact):
                self._history[-1] = self._history[-1].expand()
        return self.prediction

    def reset(self) -> None:
        """Forget all clicks of this object."""
        self._clicks.clear()
        self._history.clear()
