"""One object being annotated: the clicks so far and the mask they give."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.predictor import Prediction, Predictor
from clickmask.errors import ClickmaskError

#: Predictions kept whole for undo (besides the first click's); older ones are kept compact:
#: the mask as bits and the low-res logits as float16 (about 0.2 MB instead of 2 MB a click).
KEEP_WHOLE = 2
#: Candidate masks that overlap an earlier one by more than this IoU are not offered as another choice.
SAME_CHOICE_IOU = 0.9


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
        self._box: BoxPrompt | None = None
        self._history: list[Prediction | _Compact] = []
        self._choices: list[Prediction] = []  # the lone first prompt's masks, smallest first
        self._choice = 0
        self._redo: list[tuple[Click | BoxPrompt, Prediction]] = []  # undone prompts, the last undone last

    @property
    def box(self) -> BoxPrompt | None:
        """The box the object was started with, or None."""
        return self._box

    @property
    def choices(self) -> tuple[int, int]:
        """(index of the mask shown, number of masks to choose from) for a lone first prompt; (0, 0) otherwise."""
        return (self._choice, len(self._choices)) if len(self._choices) > 1 and len(self._history) == 1 else (0, 0)

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
            [*self._clicks, click], previous=prev if self.mask_feedback else None, box=self._box
        )
        self._clicks.append(click)
        self._redo.clear()
        self._push(pred)
        return pred

    def start_box(self, box: BoxPrompt) -> Prediction:
        """Begin the object with a box around it (SAM's box prompt); clicks then refine it.

        Raises ClickmaskError if the object already has a click or a box.
        """
        if self._history:
            raise ClickmaskError("a box starts an object: finish or drop the current clicks first")
        pred = self.predictor.predict([], previous=None, box=box)
        self._box = box
        self._redo.clear()
        self._push(pred)
        return pred

    def choose(self, index: int) -> Prediction:
        """Show the ``index``-th mask (modulo their number) the lone first prompt offered, smallest first.

        Only before a second prompt (see :attr:`choices`); the chosen mask is
        the mask feedback of the next click. Raises ClickmaskError otherwise.
        """
        if len(self._history) != 1 or len(self._choices) < 2:
            raise ClickmaskError("no other masks to choose from: they exist only after a first click or box")
        self._choice = index % len(self._choices)
        pick = self._choices[self._choice]
        if pick.info.get("unpolished"):  # the image-space steps once per choice, as the shown mask had
            info = {k: v for k, v in pick.info.items() if k != "unpolished"}
            pick = self.predictor.polish(Prediction(pick.logits.copy(), pick.low_res_logits, pick.score,
                                                    info=info), self._clicks)
            self._choices[self._choice] = pick
        self._history[0] = pick
        return pick

    def _push(self, pred: Prediction) -> None:
        """Append a prediction; a lone first prompt's candidates become the choices (offered again
        when later clicks are undone)."""
        self._history.append(pred)
        old = len(self._history) - 1 - KEEP_WHOLE
        if old > 0 and isinstance(self._history[old], Prediction):
            self._history[old] = _Compact.of(self._history[old])
        if len(self._history) == 1:
            self._choices, self._choice = ordered_choices(pred) if pred.candidates else ([], 0)

    def start_from(self, click: Click, prediction: Prediction) -> Prediction:
        """Begin the object with a first click whose mask is already known (an accepted proposal).

        ``prediction`` stands for ``predictor.predict([click])``; later clicks
        refine it like any other (its low-res logits are the mask feedback).
        Raises ClickmaskError if the object already has clicks.
        """
        if self._history:
            raise ClickmaskError("start_from needs an object without clicks")
        self._clicks.append(click)
        self._redo.clear()
        self._push(prediction)
        return prediction

    def undo(self) -> Prediction | None:
        """Remove the last click; returns the prediction now current (or None)."""
        if self._clicks:
            prompt: Click | BoxPrompt = self._clicks.pop()
        elif self._box is not None:
            prompt, self._box = self._box, None
        else:
            return self.prediction
        last = self._history.pop()
        self._redo.append((prompt, last if isinstance(last, Prediction) else last.expand()))
        if self._history and isinstance(self._history[-1], _Compact):
            self._history[-1] = self._history[-1].expand()
        if not self._history:
            self._choices, self._choice = [], 0
        return self.prediction

    @property
    def redo_count(self) -> int:
        """How many undone clicks (or the box) :meth:`redo` can bring back."""
        return len(self._redo)

    def redo(self) -> Prediction | None:
        """Bring back the last undone click (or box) with its exact mask; a new click forgets what was undone."""
        if not self._redo:
            return self.prediction
        prompt, pred = self._redo.pop()
        if isinstance(prompt, BoxPrompt):
            self._box = prompt
        else:
            self._clicks.append(prompt)
        self._push(pred)
        return pred

    def reset(self) -> None:
        """Forget all clicks of this object."""
        self._redo.clear()
        self._clicks.clear()
        self._box = None
        self._history.clear()
        self._choices, self._choice = [], 0


def ordered_choices(pred: Prediction) -> tuple[list[Prediction], int]:
    """(``pred`` and its distinct candidates, smallest mask first; the index of ``pred``).

    A candidate that is empty, or overlaps a mask already listed by more than
    :data:`SAME_CHOICE_IOU`, is left out: cycling shows masks that differ.
    """
    shown = pred.mask
    kept: list[tuple[Prediction, np.ndarray]] = [(pred, shown)]
    for cand in pred.candidates:
        mask = cand.mask
        if not mask.any() or any(_iou(mask, m) > SAME_CHOICE_IOU for _, m in kept):
            continue
        kept.append((Prediction(cand.logits, cand.low_res_logits, cand.score, info={**pred.info, "unpolished": True}), mask))
    kept.sort(key=lambda item: int(np.count_nonzero(item[1])))
    order = [p for p, _ in kept]
    return order, next(i for i, p in enumerate(order) if p is pred)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return np.count_nonzero(a & b) / union if union else 1.0
