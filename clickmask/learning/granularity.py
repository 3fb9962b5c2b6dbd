"""Which reading of a first click a category wants, learned from its finished objects.

A single click is ambiguous: SAM's decoder answers it with several masks (its
multimask tokens, roughly a sub-part, a part and the whole object), and the
engine picks one by predicted IoU and click centrality. Which granularity the
annotator means is, however, a property of the category being labelled (the
whole horse-and-rider, or only the rider), and it is known once objects of that
category are finished: their final masks say which token was right.

:class:`GranularityMemory` keeps, per category, how often each token was the
best reading of a finished object's first click. It proposes the most frequent
one for the next object's first click, but only while that proposal has done
better than the engine's own choice on the category's finished objects (both
are scored against every finished object's final mask): a higher summed IoU
*and* more objects won than lost, so one large win cannot outvote a run of
losses (the rule a sign test would ask for). Categories whose
objects vary, or for which the engine's choice is already right, keep the
engine's choice. Plain NumPy; masks are HxW bool.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from clickmask.engine.refine import sam_model
from clickmask.errors import ClickmaskError
from clickmask.geometry.masks import iou

TIE = 1e-6  # IoU differences at most this small count as neither a win nor a loss
#: The rule :meth:`GranularityMemory.preferred` applies, as recorded in benchmark reports
#: (reports without it used the earlier rule: a positive summed gain alone).
RULE = "gain and wins > losses"


class GranularityMemory:
    """One category's first-click token statistics.

    ``counts[k]``: finished objects whose final mask was best matched by token
    ``k`` of their first click (token 0, SAM's single-mask output, is never
    counted or proposed). ``gain``: summed over finished objects, IoU of the
    token the memory proposed (or would have) minus IoU of the engine's own
    choice. ``wins`` / ``losses``: finished objects on which that proposal
    scored higher / lower than the engine's choice (ties, e.g. the same
    token, count as neither). ``objects``: finished objects recorded.
    """

    def __init__(self, tokens: int = 4, min_objects: int = 2) -> None:
        if tokens < 2:
            raise ClickmaskError(f"granularity memory needs at least 2 mask tokens, got {tokens}")
        self.counts = np.zeros(tokens, np.int64)
        self.gain = 0.0
        self.wins = 0
        self.losses = 0
        self.objects = 0
        self.min_objects = min_objects

    def _most_frequent(self) -> int | None:
        if not self.counts[1:].any():
            return None
        return 1 + int(np.argmax(self.counts[1:]))

    def preferred(self) -> int | None:
        """The token for the next object's first click, or None to keep the engine's choice."""
        if self.objects < self.min_objects or self.gain <= 0.0 or self.wins <= self.losses:
            return None
        return self._most_frequent()

    def record(self, first_masks: Sequence[np.ndarray], default: int, final: np.ndarray) -> int:
        """Learn from a finished object; returns the token that matched its final mask best.

        first_masks: K HxW bool masks, token k's reading of the object's first
        click; default: the token the engine chose by itself; final: the HxW bool
        mask the user accepted.
        """
        if len(first_masks) != len(self.counts):
            raise ClickmaskError(f"granularity memory: {len(first_masks)} first-click masks, expected {len(self.counts)}")
        scores = np.array([iou(final, np.asarray(m, bool), None) for m in first_masks])
        proposal = self._most_frequent()
        if proposal is not None:
            diff = float(scores[proposal] - scores[default])
            self.gain += diff
            self.wins += int(diff > TIE)
            self.losses += int(diff < -TIE)
        self.objects += 1
        best = 1 + int(np.argmax(scores[1:]))
        self.counts[best] += 1
        return best

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (stored in the project)."""
        return {"counts": self.counts.tolist(), "gain": self.gain, "wins": self.wins, "losses": self.losses,
                "objects": self.objects, "min_objects": self.min_objects}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GranularityMemory":
        """Inverse of :meth:`to_dict`."""
        try:
            memory = cls(len(data["counts"]), int(data.get("min_objects", 2)))
            memory.counts = np.asarray(data["counts"], np.int64)
            memory.gain, memory.objects = float(data["gain"]), int(data["objects"])
            # memories stored before wins/losses were kept start from none (the token waits for a win)
            memory.wins, memory.losses = int(data.get("wins", 0)), int(data.get("losses", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise ClickmaskError(f"granularity memory: bad stored state ({exc})") from exc
        return memory


def first_click_masks(predictor: Any, first: Any, shape: tuple[int, int]) -> tuple[list[np.ndarray], int] | None:
    """(K HxW bool token masks, engine's own token) from a first-click Prediction, or None.

    ``first``: the Prediction of an object's first click by a
    :class:`~clickmask.engine.refine.RefinedPredictor` (its ``info`` holds
    every token's low-res reading); ``predictor`` upsamples them to ``shape``.
    """
    low_res = first.info.get("first_low_res") if first is not None else None
    base = sam_model(predictor)
    if low_res is None or base is None:
        return None
    return [base.upsample(lr, shape) > 0 for lr in low_res], int(first.info["first_default"])
