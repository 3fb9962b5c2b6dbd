"""Initial click proposals (ICP) in the app: one click bank per category, stored in the project.

The banks live in the project's settings under ``icp_click_banks`` (the JSON
of :class:`~clickmask.sequential.click_bank.CategoryClickBanks`, keyed by
category id), so they survive a restart and travel with the project. A
finished object's first positive click (an accepted proposal or the user's
own) is added to its category's bank, with the object's feature under its
mask; proposals are checked at the object level
(:func:`~clickmask.sequential.proposal.checked_proposal`).
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from clickmask.engine.clicks import Click
from clickmask.engine.predictor import Predictor
from clickmask.errors import ClickmaskError
from clickmask.project.masks import decode_mask
from clickmask.project.store import ProjectStore
from clickmask.sequential.click_bank import CategoryClickBanks
from clickmask.sequential.proposal import DEFAULT_CANDIDATES, CheckedProposal, checked_proposal

SETTING = "icp_click_banks"
logger = logging.getLogger(__name__)


class ProposalService:
    """Per-category click banks of a project: proposals and learning from finished objects."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store
        self._banks: CategoryClickBanks | None = None
        self._lock = threading.Lock()

    def banks(self) -> CategoryClickBanks:
        """The project's banks (loaded once; a corrupt setting is logged and replaced by empty banks)."""
        if self._banks is None:
            raw = self.store.get_setting(SETTING)
            banks = CategoryClickBanks()
            if raw:
                try:
                    banks = CategoryClickBanks.from_json(raw, source=f"project setting {SETTING}")
                except ClickmaskError as exc:
                    logger.warning("%s; starting with empty click banks", exc)
            self._banks = banks
        return self._banks

    def size(self, category_id: int) -> int:
        """How many first clicks the category's bank holds."""
        with self._lock:
            bank = self.banks().banks.get(str(category_id))
            return 0 if bank is None else len(bank)

    def ignore_mask(self, image_id: int, category_id: int, hw: tuple[int, int]) -> np.ndarray:
        """HxW bool union of the image's objects of this category (already annotated)."""
        ignore = np.zeros(hw, dtype=bool)
        for inst in self.store.list_instances(image_id):
            if inst["category_id"] == category_id:
                mask = decode_mask(inst["rle"])
                if mask.shape == ignore.shape:
                    ignore |= mask
        return ignore

    def propose(
        self, image_id: int, category_id: int, embedding: np.ndarray, hw: tuple[int, int],
        predictor: Predictor | None = None,
    ) -> CheckedProposal | None:
        """The proposed first click for the next object of a category on an image, or None.

        With ``predictor`` (only its decoder is used, on the given raw embedding,
        so its current image may be another) the bank's best peaks are
        segmented and checked at the object level, and the proposal carries
        the mask of the object the check recognised.
        """
        ignore = self.ignore_mask(image_id, category_id, hw)
        with self._lock:
            bank = self.banks().banks.get(str(category_id))
            if bank is None or not len(bank):
                return None
            bank = bank.snapshot()  # the check takes a few hundred ms: learning and resets need not wait
        if predictor is None:
            click = bank.propose(embedding, hw, ignore)
            return None if click is None else CheckedProposal(click)
        return checked_proposal(bank, predictor, embedding, hw, ignore, DEFAULT_CANDIDATES)

    def learn(self, category_id: int, embedding: np.ndarray, click: Click, mask: np.ndarray) -> None:
        """Add a finished object (its first click and HxW bool mask) to its category's bank; save the banks."""
        with self._lock:
            bank = self.banks().bank(str(category_id))
            bank.add_click(embedding, click, mask.shape)
            bank.add_object(embedding, mask, mask.shape)
            self.store.set_setting(SETTING, self.banks().to_json())

    def reset(self, category_id: int) -> None:
        """Empty a category's bank."""
        with self._lock:
            banks = self.banks()
            banks.banks.pop(str(category_id), None)
            self.store.set_setting(SETTING, banks.to_json())
