"""Initial click proposals (ICP) in the app: a click bank and an object map per category, stored in the project.

Every finished object of a category teaches its category's
:class:`~clickmask.learning.object_map.ObjectMap` (its final mask), and
its first positive click (an accepted proposal or the user's own) goes into
the category's click bank, with the object's feature under its mask.

Proposals come from the object map once it has learned an object
(:func:`~clickmask.learning.proposal.map_checked_proposal`: the map's
maximum off the annotated objects, with the decoder's mask shaped by the
map), otherwise from the bank, checked at the object level
(:func:`~clickmask.learning.proposal.checked_proposal`). Why the map comes
first: docs/decisions/0005-icp-object-map-proposals.md.

The banks live in the project's settings under ``icp_click_banks`` (the JSON
of :class:`~clickmask.learning.click_bank.CategoryClickBanks`, keyed by
category id), the maps in the ``object_maps`` table with the id of the model
whose embeddings they read (a map of another model is not used), so both
survive a restart and travel with the project.
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
from clickmask.learning.click_bank import CategoryClickBanks
from clickmask.learning.object_map import ObjectMap
from clickmask.learning.proposal import DEFAULT_CANDIDATES, CheckedProposal, checked_proposal, map_checked_proposal

SETTING = "icp_click_banks"
logger = logging.getLogger(__name__)


#: Share of the image's shorter side (at least BORDER_MIN px) along the edges where no proposal is shown:
#: a peak there is a cut-off object or the frame itself far more often than the object the user wants next.
BORDER_SHARE = 0.02
BORDER_MIN = 4


def off_border(proposal: CheckedProposal | None, hw: tuple[int, int]) -> CheckedProposal | None:
    """``proposal``, or None when its click lies in the border band of an HxW image."""
    if proposal is None:
        return None
    h, w = hw
    band = max(BORDER_MIN, int(round(BORDER_SHARE * min(h, w))))
    x, y = proposal.click.x, proposal.click.y
    return proposal if band <= x < w - band and band <= y < h - band else None


class ProposalService:
    """Per-category click banks and object maps of a project: proposals and learning from finished objects.

    model_id: the model whose embeddings the maps read (stored with them).
    """

    def __init__(self, store: ProjectStore, model_id: str = "") -> None:
        self.store = store
        self.model_id = model_id
        self._banks: CategoryClickBanks | None = None
        self._maps: dict[int, ObjectMap] = {}
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

    def object_map(self, category_id: int) -> ObjectMap:
        """The category's object map (lock held; loaded once; empty when missing, corrupt or of another model)."""
        if category_id not in self._maps:
            found, stored = ObjectMap(), self.store.get_object_map(category_id)
            if stored is not None and stored["model_id"] != self.model_id:
                logger.warning("object map of category %s was learned with model %s, not %s; starting anew",
                               category_id, stored["model_id"], self.model_id)
            elif stored is not None:
                try:
                    found = ObjectMap.from_bytes(stored["data"], source=f"object map of category {category_id}")
                except ClickmaskError as exc:
                    logger.warning("%s; starting anew", exc)
            self._maps[category_id] = found
        return self._maps[category_id]

    def size(self, category_id: int) -> int:
        """How many finished objects the category's proposals have learned from (bank or map, the larger)."""
        with self._lock:
            bank = self.banks().banks.get(str(category_id))
            return max(0 if bank is None else len(bank), self.object_map(category_id).objects)

    def ignore_mask(self, image_id: int, category_id: int, hw: tuple[int, int]) -> np.ndarray:
        """HxW bool union of the image's annotated objects, of every category: a proposal never points at
        an object that is done, and its mask leaves them out. (``category_id`` is kept for the callers.)"""
        ignore = np.zeros(hw, dtype=bool)
        for inst in self.store.list_instances(image_id):
            if not inst["hidden"]:
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
        so its current image may be another) the proposal carries the mask of
        the object it points at: from the category's object map once it has
        learned an object, else from the bank's best peaks checked at the
        object level. Without it, the bank's plain proposal.
        """
        ignore = self.ignore_mask(image_id, category_id, hw)
        with self._lock:
            bank = self.banks().banks.get(str(category_id))
            object_map = self.object_map(category_id)
            # snapshots: the decoder runs take a few hundred ms, learning and resets need not wait
            object_map = object_map.snapshot() if object_map.ready and predictor is not None else None
            bank = None if bank is None or not len(bank) else bank.snapshot()
        if object_map is not None:
            proposal = map_checked_proposal(object_map, predictor, embedding, hw, ignore)
            if proposal is not None or ignore.all():
                return off_border(proposal, hw)
        if bank is None:
            return None
        if predictor is None:
            click = bank.propose(embedding, hw, ignore)
            return None if click is None else off_border(CheckedProposal(click), hw)
        return off_border(checked_proposal(bank, predictor, embedding, hw, ignore, DEFAULT_CANDIDATES), hw)

    def learn(self, category_id: int, embedding: np.ndarray, click: Click | None, mask: np.ndarray) -> None:
        """Learn a finished object: its HxW bool mask into the category's map, and into its bank with its
        first click when that was positive (``click``; None or negative: map only); save both."""
        with self._lock:
            object_map = self.object_map(category_id)
            if object_map.add(embedding, mask, mask.shape):
                self.store.put_object_map(category_id, object_map.objects, self.model_id, object_map.to_bytes())
            if click is not None and click.positive:
                bank = self.banks().bank(str(category_id))
                bank.add_click(embedding, click, mask.shape)
                bank.add_object(embedding, mask, mask.shape)
                self.store.set_setting(SETTING, self.banks().to_json())

    def reset(self, category_id: int) -> None:
        """Forget what a category's proposals learned (its bank and its map)."""
        with self._lock:
            banks = self.banks()
            banks.banks.pop(str(category_id), None)
            self.store.set_setting(SETTING, banks.to_json())
            self._maps.pop(category_id, None)
            self.store.delete_object_map(category_id)
