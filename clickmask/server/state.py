"""Everything the server keeps in memory: store, predictor, click sessions, caches, prefetcher."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.refine import RefinedPredictor
from clickmask.engine.predictor import Prediction
from clickmask.engine.session import InteractiveSession
from clickmask.engine.tiles import Window, WindowedSession
from clickmask.errors import ClickmaskError, ImageReadError, LargeImageError
from clickmask.learning.adapted import raw_embedding
from clickmask.learning.granularity import first_click_masks
from clickmask.learning.opo import OPOConfig
from clickmask.learning.proposal import CheckedProposal, accepted_prediction
from clickmask.project.settings import stored_confidence
from clickmask.project.store import ProjectStore
from clickmask.server.adaptation import AdaptationService, adaptable_predictor
from clickmask.server.click_queue import ClickQueue
from clickmask.server.granularity import GranularityService
from clickmask.server.imaging import ImageCache, mask_runs
from clickmask.server.large import LargeImages
from clickmask.server.memory import release_memory
from clickmask.server.prefetch import Prefetcher
from clickmask.server.sequences import SequenceService
from clickmask.server.proposals import ProposalService
from clickmask.server.references import ReferenceService

logger = logging.getLogger(__name__)

PREFETCH_AHEAD = 2


#: Images whose last proposals are kept for Enter (the most recently asked about).
OFFER_IMAGES = 2
#: Objects in progress kept in memory, one per (image, browser tab): the least recently clicked
#: beyond this (a tab closed halfway through an object) is dropped, with its clicks.
MAX_SESSIONS = 8


@dataclass(frozen=True)
class InProgress:
    """The object being clicked in one tab: its mask (None before a first prompt), clicks and box,
    and which of the first prompt's masks is shown (index, count; count 0 when there is no choice)."""

    mask: np.ndarray | None
    clicks: list[Click]
    box: BoxPrompt | None = None
    choices: tuple[int, int] = (0, 0)
    redo: int = 0  # undone prompts that redo brings back
    offset: tuple[int, int] | None = None  # a large image's object: the mask is a window starting here (x0, y0)
    image_hw: tuple[int, int] | None = None  # and the image's (height, width)
    reference: str | None = None  # the key of the reference its first click used (None: none)

    @classmethod
    def of(cls, session: "InteractiveSession | WindowedSession | None", reference: str | None = None) -> "InProgress":
        if session is None:
            return cls(None, [])
        if isinstance(session, WindowedSession):
            offset, hw = session.offset, (session.image_size[1], session.image_size[0])
        else:
            offset = hw = None
        return cls(session.current_mask(), session.clicks, session.box, session.choices, session.redo_count,
                   offset, hw, reference if session.clicks and session.box is None else None)


def kept_prompts(session: "InteractiveSession | WindowedSession") -> dict[str, Any] | None:
    """The prompts of an object in progress as JSON (what :func:`replay` needs), None when it has none.

    A large image's object keeps its window too."""
    if session.prediction is None:
        return None
    box = session.box
    kept = {"box": None if box is None else [box.x0, box.y0, box.x1, box.y1],
            "clicks": [[c.x, c.y, c.positive] for c in session.clicks], "choice": session.choices[0]}
    if isinstance(session, WindowedSession) and session.window is not None:
        kept["window"] = session.window.to_json()
    return kept


def replay(session: "InteractiveSession | WindowedSession", prompts: dict[str, Any]) -> None:
    """Redo the kept prompts on a new session: the box, the first click, the chosen mask, the other clicks."""
    clicks = [Click(float(x), float(y), bool(p)) for x, y, p in prompts.get("clicks", [])]
    if isinstance(session, WindowedSession) and prompts.get("window") and prompts.get("box") is None:
        session.set_window(prompts["window"])
    box = prompts.get("box")
    if box is not None:
        session.start_box(BoxPrompt(*map(float, box)))
    elif clicks:
        session.add_click(clicks.pop(0))
    if session.choices[1] and prompts.get("choice"):
        session.choose(int(prompts["choice"]))
    for click in clicks:
        session.add_click(click)


@dataclass
class AppState:
    """Shared server state. The predictor is used by one request at a time, in arrival order (``click_lock``)."""

    store: ProjectStore
    predictor: Any
    token: str | None = None
    local_only: bool = False  # refuse requests whose Host is not localhost (DNS-rebinding guard)
    prefetch_ahead: int = PREFETCH_AHEAD
    images: ImageCache = field(default_factory=ImageCache)
    sessions: OrderedDict[tuple[int, str], InteractiveSession | WindowedSession] = field(default_factory=OrderedDict)
    click_lock: ClickQueue = field(default_factory=ClickQueue)
    opo_config: OPOConfig | None = None  # None: OPOConfig() (SIIS settings)
    prepare_crops: bool = True  # encode the next click's zoom-in crop while the user looks (off: benchmarks compare)
    pyramid_cache: Path | None = None  # where large images' overviews go (None: clickmask_home()/pyramids)
    _current_image: int | None = None
    # the proposals last offered, by image (the OFFER_IMAGES most recent) and category: accepting one
    # shows its checked mask. More than one image, so a late answer for the image just left does not
    # drop the offers of the image now open.
    _offered: OrderedDict[int, dict[int, CheckedProposal]] = field(default_factory=OrderedDict)

    def __post_init__(self) -> None:
        self.predictor = adaptable_predictor(self.predictor)  # a SAM model gets per-category adapters (OPO)
        self.prefetcher = Prefetcher(self.predictor, self.load_image)
        self.proposals = ProposalService(self.store, self.predictor.model_id)
        self.adaptation = AdaptationService(self.store, self.predictor, self.opo_config)
        self.granularity = GranularityService(self.store)
        self.large = LargeImages(self.store, self.pyramid_cache)
        self.references = ReferenceService(self.store, self.predictor)
        self.sequences = SequenceService(self)  # the project's videos and volumes

    def _activate_window(self, image_id: int, window: Window) -> None:
        """Make a window of a large image the predictor's image (lock held)."""
        key = (image_id, window)
        if self._current_image != key:
            self.predictor.set_image(self.large.get(image_id).read(window.x0, window.y0, window.x1, window.y1))
            self._current_image = key

    # ---------------------------------------------------------------- images
    def load_image(self, image_id: int) -> np.ndarray:
        """Decode an image (cached) with its display settings; records its size, or its error, in the store.

        Settings that no longer fit the file (a band it lost when it was
        replaced) are dropped, with a warning: the image opens with the defaults.
        """
        if self.large.get(image_id) is not None:
            raise LargeImageError(f"{self.store.image(image_id)['path']}: a large image is read window by window")
        info = self.store.image(image_id)
        path, display = self.store.image_path(image_id), self.store.display(image_id)
        try:
            try:
                image = self.images.get(image_id, path, display)
            except ImageReadError as exc:
                if display is None:
                    raise
                logger.warning("image %s: its display settings no longer fit (%s); back to the defaults",
                               image_id, exc)
                self.store.set_display(image_id, None)
                image = self.images.get(image_id, path, None)
        except ImageReadError as exc:
            if info["error"] != str(exc):
                self.store.set_image_info(image_id, None, None, str(exc))
            raise
        h, w = image.shape[:2]
        if (info["width"], info["height"], info["error"]) != (w, h, None):
            self.store.set_image_info(image_id, w, h, None)
        return image

    def display(self, image_id: int) -> dict[str, Any]:
        """What the display panel shows of an image: kind, metadata, the settings in effect (``io.display``)."""
        from clickmask.io.display import describe

        large = self.large.get(image_id)  # its limits from the overviews, not from a read of the whole file
        return describe(self.store.image_path(image_id), self.store.display(image_id),
                        name=self.store.image(image_id)["path"], view=None if large is None else large.view())

    def set_display(self, image_id: int, value: Any) -> dict[str, Any]:
        """Change an image's display settings (None: the defaults); the browser and the model get the new pixels.

        The settings are checked against the file (decoded once with them)
        before they are kept. The image's click sessions are dropped: an
        unfinished object is replayed on the new pixels (new embedding: the
        cache keys images by content) at the next click or look.
        """
        from clickmask.io.display import check_display, image_kind, render

        path = self.store.image_path(image_id)
        settings = check_display(image_kind(path), value)
        large = self.large.get(image_id) is not None
        if settings is not None and not large:
            render(path, settings)  # a band that does not exist fails here, with nothing kept
        if settings is not None and large:
            self.large.check(image_id, settings)
        with self.click_lock:
            self.store.set_display(image_id, settings)
            for key in [k for k in self.sessions if k[0] == image_id]:
                self.sessions.pop(key)
                self.adaptation.release(key)
            if self._current_image == image_id:
                self._current_image = None
            self.prefetcher.forget(image_id)
            self._offered.pop(image_id, None)
            if large:
                self.large.forget(image_id)
            else:
                self.load_image(image_id)
        return self.display(image_id)

    def open_image(self, image_id: int) -> dict[str, Any]:
        """Prepare an image for annotation and prefetch the next ones' embeddings."""
        ids = [i["id"] for i in self.store.list_images() if not i["error"]]
        large = self.large.get(image_id)
        if large is not None:  # its overviews are made in the background; nothing is decoded whole
            self.large.prepare_soon(image_id)
            return {**self.store.image(image_id), "tiles": large.describe()}
        try:
            self.load_image(image_id)
            pos = ids.index(image_id) if image_id in ids else -1
            self.prefetcher.request([image_id, *ids[pos + 1 : pos + 1 + self.prefetch_ahead]])
        except ImageReadError:
            pass
        return self.store.image(image_id)

    # ---------------------------------------------------------------- clicks
    def _session(self, image_id: int, tab: str) -> InteractiveSession:
        """The click session of an image in one browser tab, with the predictor set to that image (lock held)."""
        key = (image_id, tab)
        large = self.large.get(image_id)
        if large is not None:
            return self._windowed_session(image_id, tab, large)
        if self._current_image != image_id or key not in self.sessions:
            image = self.load_image(image_id)
        if self._current_image != image_id:
            self.prefetcher.wait_for(image_id)  # the embedding is being computed: do not compute it twice
            self.predictor.set_image(image)
            self._current_image = image_id
        if key not in self.sessions:
            self._add_session(key, InteractiveSession(self.references.predictor or self.predictor), references=True)
        self.sessions.move_to_end(key)
        return self.sessions[key]

    def _windowed_session(self, image_id: int, tab: str, large) -> WindowedSession:
        """A large image's click session: on a window around the object (lock held)."""
        key = (image_id, tab)
        if key not in self.sessions:
            self._add_session(key, WindowedSession(self.predictor, lambda w: large.read(w.x0, w.y0, w.x1, w.y1),
                                                   (large.width, large.height),
                                                   lambda w: self._activate_window(image_id, w)))
        self.sessions.move_to_end(key)
        return self.sessions[key]

    def _add_session(self, key: tuple[int, str], session: InteractiveSession | WindowedSession,
                     references: bool = False) -> None:
        """Keep a new session, with the object left unfinished on its image replayed (lock held); with
        ``references``, its first click is replayed with the reference it had, if that is still on and ready."""
        image_id = key[0]
        kept = None if any(k[0] == image_id for k in self.sessions) else self.store.unfinished(image_id)
        self.sessions[key] = session
        if references:
            self.references.start(key, self.references.lookup_key(kept.get("reference")) if kept else None)
        if kept:  # an object left unfinished in a tab now closed, or by a server that was stopped
            try:
                replay(session, kept)
            except (ClickmaskError, TypeError, ValueError) as exc:
                logger.warning("image %s: the unfinished object could not be restored (%s)", image_id, exc)
                session.reset()
        while len(self.sessions) > MAX_SESSIONS:
            dropped, _ = self.sessions.popitem(last=False)
            self.adaptation.release(dropped)
            release_memory()

    def click(self, image_id: int, x: float, y: float, positive: bool, tab: str = "",
              category_id: int | None = None, view: list[float] | None = None) -> tuple[InProgress, float]:
        """Add a click; returns the object in progress and the server time in ms.

        With ``category_id`` the object is segmented with that category's OPO
        adapter (if any), and its first positive click with the category's
        reference, when it has one switched on. A first positive click exactly on the proposal last
        offered for this image and category (Enter) starts from the mask the
        proposal's check found, without a decoder run. On a large image,
        ``view`` (the visible rectangle ``[x0, y0, x1, y1]``) sizes a new
        object's window (:mod:`clickmask.engine.tiles`).
        """
        t0 = time.perf_counter()
        click = Click(x=float(x), y=float(y), positive=bool(positive))
        with self.click_lock.bounded():
            # before the session: a reference made with another model is rebuilt on its own image's embedding
            reference = self.references.lookup(category_id, self._embedding) if click.positive else None
            session = self._session(image_id, tab)
            if isinstance(session, WindowedSession):
                self.adaptation.select((image_id, tab), None, new_object=not session.clicks)
                session.set_view(view)
                session.add_click(click)
                return self._kept(image_id, session, tab), (time.perf_counter() - t0) * 1000
            self.adaptation.select((image_id, tab), category_id, new_object=not session.clicks)
            fresh = session.prediction is None
            accepted = self._accepted_proposal(image_id, category_id, click) if fresh else None
            if fresh:  # an accepted proposal's mask is its own (no decoder run, no reference)
                self.references.start((image_id, tab), reference if accepted is None else None)
            if accepted is not None:
                session.start_from(click, accepted)
            else:
                if fresh and isinstance(self.predictor, RefinedPredictor):
                    self.predictor.set_first_token(self.granularity.preferred(category_id))
                self.prefetcher.wait_for_crop(image_id)  # the crop this click zooms into may be on its way
                session.add_click(click)
            self._prepare_next_crop(image_id, session)
            return self._kept(image_id, session, tab), (time.perf_counter() - t0) * 1000

    def _prepare_next_crop(self, image_id: int, session: InteractiveSession | WindowedSession) -> None:
        """Start encoding the zoom-in crop the object's next click will use, while the user looks (lock held)."""
        if isinstance(session, WindowedSession):
            return  # the prefetcher knows whole images only
        if self.prepare_crops and isinstance(self.predictor, RefinedPredictor) and session.prediction is not None:
            pixels = self.predictor.crop_to_prepare(session.prediction)
            if pixels is not None:
                self.prefetcher.request_crop(image_id, session.prediction.info["next_crop"], pixels)

    def box(self, image_id: int, box: BoxPrompt, tab: str = "", category_id: int | None = None
            ) -> tuple[InProgress, float]:
        """Start an object with a box around it (it replaces clicks not yet finished); returns it and the ms."""
        t0 = time.perf_counter()
        with self.click_lock.bounded():
            session = self._session(image_id, tab)
            session.reset()
            self.adaptation.select((image_id, tab), category_id, new_object=True)
            session.start_box(box)
            self._prepare_next_crop(image_id, session)
            return self._kept(image_id, session, tab), (time.perf_counter() - t0) * 1000

    def choose(self, image_id: int, index: int, tab: str = "") -> InProgress:
        """Show another of the first prompt's masks (``index`` modulo their number)."""
        with self.click_lock:
            session = self.sessions.get((image_id, tab))
            if session is None:
                raise ClickmaskError(f"image {image_id}: no object in progress to choose a mask for")
            session.choose(index)
            return self._kept(image_id, session, tab)

    def _kept(self, image_id: int, session: InteractiveSession, tab: str) -> InProgress:
        """Write the object's prompts to the project (a restart gives them back); returns it (lock held)."""
        obj = InProgress.of(session, self.references.used((image_id, tab)))
        prompts = kept_prompts(session)
        if prompts is not None and obj.reference is not None:
            prompts["reference"] = obj.reference
        self.store.set_unfinished(image_id, prompts)
        return obj

    def _accepted_proposal(self, image_id: int, category_id: int | None, click: Click) -> Prediction | None:
        """The first Prediction of an accepted proposal (``click`` is the one offered), else None (lock held).

        Objects of the category annotated since the offer are cut out of its mask too.
        """
        offered = self._offered.get(image_id, {}).get(category_id) if category_id is not None else None
        if offered is None or not click.positive or (click.x, click.y) != (offered.click.x, offered.click.y):
            return None
        hw = self.predictor.image_size
        return accepted_prediction(offered, self.predictor, self.proposals.ignore_mask(image_id, category_id, hw))

    def undo_click(self, image_id: int, tab: str = "") -> InProgress:
        """Take back the object's last click (or its box); returns what is left."""
        with self.click_lock:
            session = self.sessions.get((image_id, tab))
            if session is None:
                return InProgress.of(None)
            session.undo()
            return self._kept(image_id, session, tab)

    def redo_click(self, image_id: int, tab: str = "") -> InProgress:
        """Bring back the object's last undone click (or box)."""
        with self.click_lock:
            session = self.sessions.get((image_id, tab))
            if session is None:
                return InProgress.of(None)
            session.redo()
            return self._kept(image_id, session, tab)

    def reset_clicks(self, image_id: int, tab: str = "") -> None:
        with self.click_lock:
            session = self.sessions.pop((image_id, tab), None)
            if session is not None:
                session.reset()
            self.store.set_unfinished(image_id, None)
            self.adaptation.release((image_id, tab))
        if session is not None:
            release_memory()

    def current_mask(self, image_id: int, tab: str = "") -> np.ndarray | None:
        return self.in_progress(image_id, tab).mask

    def in_progress(self, image_id: int, tab: str = "") -> InProgress:
        """The object being clicked on an image in a tab (one kept in the project is restored first)."""
        with self.click_lock:
            session = self.sessions.get((image_id, tab))
            if session is None and self.store.unfinished(image_id) and \
                    not any(k[0] == image_id for k in self.sessions):
                session = self._session(image_id, tab)
            return InProgress.of(session, self.references.used((image_id, tab)))

    def finish(self, image_id: int, category_id: int | None, tab: str = "") -> dict[str, Any]:
        """Store the current click mask as a new instance and start a new object.

        With a category, the object teaches that category's initial click
        proposals (its mask the object map; its first positive click the click
        bank), its first click's mask
        readings into the category's granularity memory, and the object is
        queued for training the category's OPO adapter (in the background).
        """
        obj = self.in_progress(image_id, tab)
        mask = obj.mask
        if mask is None or not mask.any():
            raise ClickmaskError(f"image {image_id}: no object to finish (click on it first)")
        if obj.offset is not None:  # a large image's window: stored without an image-sized mask; nothing learned
            inst = self.store.add_instance(image_id, mask, category_id, offset=obj.offset)
            self.reset_clicks(image_id, tab)
            return inst
        first = next(iter(self.clicks_of(image_id, tab)), None)
        session = self.sessions.get((image_id, tab))
        readings = None
        if category_id is not None and session is not None and first is not None and first.positive:
            readings = first_click_masks(self.predictor, session.first_prediction, mask.shape)
        inst = self.store.add_instance(image_id, mask, category_id)
        if category_id is not None:
            with self.click_lock:
                embedding = self._embedding(image_id)
            if embedding is not None:
                self.proposals.learn(category_id, embedding, first, mask)
                self.adaptation.learn(category_id, embedding, mask)
            if readings is not None:
                self.granularity.learn(category_id, readings[0], readings[1], mask)
        self.reset_clicks(image_id, tab)
        return inst

    def _embedding(self, image_id: int) -> np.ndarray | None:
        """The raw (unadapted) embedding of an image, made current (lock held); None for a model without one
        or a large image (segmented by windows)."""
        if self.large.get(image_id) is not None:
            return None
        if self._current_image != image_id:
            image = self.load_image(image_id)
            self.prefetcher.wait_for(image_id)
            self.predictor.set_image(image)
            self._current_image = image_id
        try:
            return raw_embedding(self.predictor)
        except ClickmaskError:
            return None

    def proposal(self, image_id: int, category_id: int) -> dict[str, Any]:
        """The proposed first click for the next object of ``category_id`` on an image.

        Returns ``{"proposal": {"x", "y", "checked", "confidence", "mask"} or None, "bank_size": n}``;
        None when the bank is empty, the model has no embedding, every pixel
        is annotated, the click would lie on the image's border band, or the
        confidence (the check's similarity to the category's finished objects)
        is below the user's ``proposal_confidence`` setting. ``checked``: the proposal passed the object check, and
        accepting it (a positive first click exactly there) shows the check's
        mask; ``mask`` previews it (row-major runs, see
        :func:`~clickmask.server.imaging.mask_runs`; before the boundary
        snapping that accepting adds), None when unchecked.
        """
        size = self.proposals.size(category_id)
        if size == 0:
            return {"proposal": None, "bank_size": 0}
        with self.click_lock:
            embedding = self._embedding(image_id)
            if embedding is None:
                return {"proposal": None, "bank_size": size}
            hw = self.predictor.image_size
        # outside the click lock: the object check runs the decoder on this image's embedding
        # only (a few hundred ms), so a click on any image is never kept waiting by it
        checked = self.proposals.propose(image_id, category_id, embedding, hw, self.predictor)
        level = stored_confidence(self.store.get_setting("proposal_confidence"))
        if checked is not None and (checked.similarity or 0.0) < level:
            checked = None  # below the confidence the user asked for: not shown, and Enter accepts nothing
        with self.click_lock:
            offers = self._offered.setdefault(image_id, {})
            self._offered.move_to_end(image_id)
            while len(self._offered) > OFFER_IMAGES:
                self._offered.popitem(last=False)  # each offer holds an image-sized mask
            if checked is None:
                offers.pop(category_id, None)
            else:
                offers[category_id] = checked
        if checked is None:
            return {"proposal": None, "bank_size": size}
        click, preview = checked.click, checked.prediction()
        return {"proposal": {"x": click.x, "y": click.y, "checked": preview is not None,
                             "confidence": round(float(checked.similarity or 0.0), 3),
                             "mask": None if preview is None else mask_runs(preview.mask)},
                "bank_size": size}

    def make_reference(self, instance_id: int, negative_instance_id: int | None, category_id: Any = ...
                       ) -> dict[str, Any]:
        """Make a finished object its category's reference (``category_id``: another category, ``...``: its
        own); the prototypes come from its image's raw embedding (encoded here if it is not cached)."""
        def embed(image_id: int) -> np.ndarray | None:
            with self.click_lock:
                return self._embedding(image_id)

        return self.references.make(instance_id, negative_instance_id, category_id, embed)

    def clicks_of(self, image_id: int, tab: str = "") -> list[Click]:
        """The current clicks of an image in a tab."""
        session = self.sessions.get((image_id, tab))
        return [] if session is None else session.clicks

    def close(self) -> None:
        """Stop the background work (the OPO trainer); the store stays usable."""
        self.adaptation.close()

    def status(self) -> dict[str, Any]:
        return {
            "model_id": self.predictor.model_id,
            "is_fallback": bool(self.predictor.is_fallback),
            "busy": self.click_lock.busy or self.prefetcher.status()["busy"],
            "clicking": self.click_lock.busy,
            "waiting": self.click_lock.waiting,
            "prefetch": self.prefetcher.status(),
            "counts": self.store.counts(),
            "project": str(self.store.root),
        }
