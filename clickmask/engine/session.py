"""One object being annotated: the clicks so far and the mask they give."""

from __future__ import annotations

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Prediction, Predictor
from clickmask.errors import ClickmaskError


class InteractiveSession:
    """Click-by-click segmentation of one object on the predictor's current image.

    Each click re-runs the predictor with all clicks so far; with
    ``mask_feedback`` the previous prediction is passed along, so its low-res
    logits become the decoder's ``mask_input`` (SAM's iterative refinement). ``undo`` restores the previous
    state exactly (no re-prediction needed).
    """

    def __init__(self, predictor: Predictor, mask_feedback: bool = True) -> None:
        self.predictor = predictor
        self.mask_feedback = mask_feedback
        self._clicks: list[Click] = []
        self._history: list[Prediction] = []

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
        return self.prediction

    def reset(self) -> None:
        """Forget all clicks of this object."""
        self._clicks.clear()
        self._history.clear()
