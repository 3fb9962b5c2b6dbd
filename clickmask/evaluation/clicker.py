"""The robot user of the standard interactive segmentation benchmark, one object at a time.

The click rule itself is :func:`clickmask.geometry.masks.next_click`.
"""

from __future__ import annotations

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.geometry.masks import DistanceMethod, as_mask, check_same_shape, next_click


class Clicker:
    """Robot user for one object: holds the ground truth, ignore mask and clicks so far."""

    def __init__(
        self,
        gt: np.ndarray,
        ignore: np.ndarray | None = None,
        method: DistanceMethod = "cv2",
    ) -> None:
        """``gt``: HxW bool object mask; ``ignore``: HxW bool or None."""
        self._gt = as_mask(gt, "gt").copy()
        self._ignore = None if ignore is None else as_mask(ignore, "ignore").copy()
        check_same_shape(gt=self._gt, ignore=self._ignore)
        self._method: DistanceMethod = method
        self._clicks: list[Click] = []

    @property
    def clicks(self) -> list[Click]:
        """The clicks made so far, oldest first (a copy)."""
        return list(self._clicks)

    def make_next_click(self, pred: np.ndarray) -> Click | None:
        """Compute, record and return the next click for prediction ``pred`` (HxW bool).

        Returns None (and records nothing) when ``pred`` has no error left.
        """
        click = next_click(self._gt, pred, self._ignore, self._clicks, self._method)
        if click is not None:
            self._clicks.append(click)
        return click

    def reset(self) -> None:
        """Forget all clicks."""
        self._clicks.clear()
