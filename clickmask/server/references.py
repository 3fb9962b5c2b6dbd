"""Reference-guided clicks in the app (issue 24): one reference per category, stored in the project.

The user makes a reference from a finished object: its mask is the *positive*
mask; a second object of the same image gives the *negative* mask, minus the
first (the rest of an object that contains it, or a neighbour not to take), or
there is none. The reference's prototypes are pooled from the image's raw
embedding (:class:`~clickmask.learning.reference.Reference`); the first click of
a new object with that category is then decoded by a
:class:`~clickmask.learning.reference.ReferencePredictor` around the app's
predictor with :data:`APP_USES` (why those: docs/decisions/0016-app-reference.md).
Objects without a category have a reference of their own (key ``none``).

Storage: one project setting per reference, ``reference/<category id>`` (or
``reference/none``), written in one transaction: the image and instance ids,
both masks as COCO RLE (so the reference survives edits or deletion of its
objects, and can be rebuilt), the prototypes (float32, base64) with the id of
the model that made them, and the on/off switch. Never the image. A reference
made with another model is rebuilt from its image and masks at its first use.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable, Hashable

import cv2
import numpy as np

from clickmask.errors import ClickmaskError, ImageReadError
from clickmask.geometry import decode_rle, encode_rle
from clickmask.learning.reference import Reference, ReferencePredictor, ReferenceUses
from clickmask.project.errors import NotFoundError
from clickmask.project.schema import utcnow
from clickmask.project.store import ProjectStore

PREFIX = "reference/"
#: What a reference does to an object's first click in the app (decision 0016).
APP_USES = ReferenceUses(choose=True, prior=False, points=False, negative=True)
#: The thumbnail's longest side, in pixels.
THUMBNAIL_SIDE = 160
#: Context around the reference object in its thumbnail, as a fraction of the object's box.
THUMBNAIL_MARGIN = 0.25
#: An embedding function: an image id's raw 1xCxGxG embedding (None when the model has none).
Embed = Callable[[int], "np.ndarray | None"]

logger = logging.getLogger(__name__)


def reference_key(category_id: int | None) -> str:
    """The key of a category's reference (``none``: objects without a category)."""
    return "none" if category_id is None else str(int(category_id))


def key_category(key: str) -> int | None:
    """The category id of a reference key (``none`` -> None); ClickmaskError for anything else."""
    if key == "none":
        return None
    if not key.isdigit() or len(key) > 18:
        raise ClickmaskError(f"reference {key[:30]!r}: use a category id or 'none'")
    return int(key)


def _vector_text(v: np.ndarray | None) -> str | None:
    return None if v is None else base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()


def _vector(text: str | None, what: str) -> np.ndarray | None:
    if text is None:
        return None
    try:
        v = np.frombuffer(base64.b64decode(text, validate=True), "<f4").astype(np.float32)
    except (ValueError, TypeError) as exc:
        raise ClickmaskError(f"{what} is unreadable ({exc})") from None
    if v.size == 0 or not np.isfinite(v).all():
        raise ClickmaskError(f"{what} is empty or not finite")
    return v


@dataclass(frozen=True)
class Active:
    """A reference ready for a click: its key and prototypes."""

    key: str
    reference: Reference


class ReferenceService:
    """The open project's references, their prototypes, and which object's first click used which."""

    def __init__(self, store: ProjectStore, predictor) -> None:
        self.store = store
        self.model_id = predictor.model_id
        self.reason: str | None = None
        try:
            self.predictor: ReferencePredictor | None = ReferencePredictor(predictor, uses=APP_USES)
        except ClickmaskError as exc:
            self.predictor, self.reason = None, str(exc)
        self._lock = threading.Lock()
        self._records: dict[str, dict[str, Any]] = {}  # the stored records, by key (a click reads no database)
        self._prototypes: dict[str, Reference] = {}  # this model's prototypes, by key
        self._used: dict[Hashable, str] = {}  # object (image, tab) -> key of the reference its first click used
        self._broken: dict[str, str] = {}  # key -> why it could not be rebuilt for this model
        self._load()

    @property
    def available(self) -> bool:
        return self.predictor is not None

    # ------------------------------------------------------------ storage
    def _keys(self) -> list[str]:
        return ["none"] + [str(c["id"]) for c in self.store.list_categories()]

    def _record(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._records.get(key)

    def _save(self, key: str, record: dict[str, Any] | None, reference: Reference | None = None) -> None:
        """Store (or, with None, forget) a record in one transaction, then in memory with its prototypes."""
        with self._lock:
            self._broken.pop(key, None)
            if record is None:
                self.store.forget_setting(PREFIX + key)
                self._records.pop(key, None)
                self._prototypes.pop(key, None)
                return
            self.store.set_setting(PREFIX + key, record)
            self._records[key] = record
            if reference is not None:
                self._prototypes[key] = reference

    def _load(self) -> None:
        for key in self._keys():
            record = self.store.get_setting(PREFIX + key)
            if not isinstance(record, dict):
                continue
            self._records[key] = record
            if record.get("model_id") != self.model_id:
                continue  # made with another model: rebuilt at its first use
            try:
                self._prototypes[key] = self._decode(record, key)
            except (ClickmaskError, AttributeError, KeyError) as exc:
                logger.warning("%s; it is rebuilt from its image at its first use", exc)

    @staticmethod
    def _decode(record: dict[str, Any], key: str) -> Reference:
        protos = record["prototypes"]
        what = f"the stored prototypes of reference {key}"
        positive = _vector(protos["positive"], what)
        if positive is None:
            raise ClickmaskError(f"{what} have no positive prototype")
        return Reference(positive, _vector(protos.get("negative"), what))

    # ------------------------------------------------------------ the API's operations
    def make(self, instance_id: int, negative_instance_id: int | None, category_id: Any, embed: Embed
             ) -> dict[str, Any]:
        """Make (or replace) a category's reference from a finished object; returns its JSON.

        ``negative_instance_id``: a second object of the same image; the negative
        mask is it minus the reference object (None: positive only).
        ``category_id``: the category the reference belongs to (``...``: the
        object's own). Nothing is stored when a check fails.
        """
        if self.predictor is None:
            raise ClickmaskError(f"references are off: {self.reason}")
        inst = self.store.instance(instance_id)
        category = inst["category_id"] if category_id is ... else category_id
        if category is not None and not any(c["id"] == category for c in self.store.list_categories()):
            raise NotFoundError(f"category {category} does not exist")
        positive = decode_rle(inst["rle"])
        if not positive.any():
            raise ClickmaskError(f"instance {instance_id} has an empty mask: it cannot be a reference")
        negative, kind = None, "none"
        if negative_instance_id is not None:
            if negative_instance_id == instance_id:
                raise ClickmaskError(f"instance {instance_id} cannot be its own negative: pick another object")
            other = self.store.instance(negative_instance_id)
            if other["image_id"] != inst["image_id"]:
                raise ClickmaskError(f"instance {negative_instance_id} is on another image than instance "
                                     f"{instance_id}: the negative must be on the reference's image")
            whole = decode_rle(other["rle"])
            negative = whole & ~positive
            if not negative.any():
                raise ClickmaskError(f"instance {negative_instance_id} lies inside instance {instance_id}: "
                                     "nothing is left as the negative")
            kind = "rest" if (whole & positive).sum() >= 0.9 * positive.sum() else "other"
        embedding = embed(inst["image_id"])
        if embedding is None:
            raise ClickmaskError(f"model {self.model_id} has no image embedding: references need the SAM model")
        self._check_size(positive, f"instance {instance_id}")
        reference = Reference.from_masks(embedding, positive.shape, positive, negative)
        key = reference_key(category)
        record = {"category_id": category, "image_id": inst["image_id"], "instance_id": instance_id,
                  "negative_instance_id": negative_instance_id, "negative": kind,
                  "positive_mask": encode_rle(positive), "negative_mask": None if negative is None else encode_rle(negative),
                  "model_id": self.model_id, "enabled": True, "created_at": utcnow().isoformat(),
                  "prototypes": {"positive": _vector_text(reference.positive),
                                 "negative": _vector_text(reference.negative)}}
        self._save(key, record, reference)
        return self.describe(key)

    def record(self, key: str) -> dict[str, Any]:
        """The stored record of a reference; NotFoundError when there is none."""
        category = key_category(key)
        record = self._record(key)
        if record is None:
            what = "objects without a category" if category is None else f"category {category}"
            raise NotFoundError(f"{what} has no reference")
        return record

    def describe(self, key: str) -> dict[str, Any]:
        """A reference as the API shows it (no masks, no prototypes)."""
        r = self.record(key)
        names = {c["id"]: c["name"] for c in self.store.list_categories()}
        try:
            image = self.store.image(r["image_id"])["path"]
        except NotFoundError:
            image = None
        neg = r.get("negative_mask")
        return {"key": key, "category_id": r["category_id"], "category": names.get(r["category_id"]),
                "image_id": r["image_id"], "image": image, "instance_id": r["instance_id"],
                "negative_instance_id": r["negative_instance_id"], "negative": r["negative"],
                "area": int(decode_rle(r["positive_mask"]).sum()),
                "negative_area": 0 if neg is None else int(decode_rle(neg).sum()),
                "enabled": bool(r["enabled"]), "model_id": r["model_id"], "created_at": r["created_at"],
                "uses": APP_USES.text(), "problem": self._broken.get(key)}

    def describe_all(self) -> list[dict[str, Any]]:
        """Every reference of the project (objects without a category first, then by category)."""
        return [self.describe(k) for k in self._keys() if self._record(k) is not None]

    def set_enabled(self, key: str, enabled: bool) -> dict[str, Any]:
        """Switch a reference on or off (kept either way)."""
        record = self.record(key)
        if record["enabled"] != enabled:
            self._save(key, {**record, "enabled": bool(enabled)})
        return self.describe(key)

    def clear(self, key: str) -> None:
        """Forget a reference (NotFoundError when there is none)."""
        self.record(key)
        self.forget(key_category(key))

    def forget(self, category_id: int | None) -> None:
        """Forget a category's reference, if it has one (the category is deleted)."""
        self._save(reference_key(category_id), None)

    def thumbnail(self, key: str, image: np.ndarray) -> bytes:
        """A PNG of the reference object cut out of its image (``image``, HxWx3 uint8 RGB): the
        surroundings dimmed, the negative tinted red, the object outlined; at most THUMBNAIL_SIDE px."""
        r = self.record(key)
        positive = decode_rle(r["positive_mask"])
        negative = None if r.get("negative_mask") is None else decode_rle(r["negative_mask"])
        if positive.shape != image.shape[:2]:
            raise ClickmaskError(f"the image of reference {key} is now {image.shape[1]}x{image.shape[0]}, "
                                 f"not {positive.shape[1]}x{positive.shape[0]}: set the reference again")
        return thumbnail_png(image, positive, negative)

    # ------------------------------------------------------------ clicks
    def lookup(self, category_id: int | None, embed: Embed | None = None) -> Active | None:
        """The category's reference if it is on, its prototypes rebuilt with ``embed`` when they were
        made with another model (None without ``embed``, or when that fails: the click goes on without)."""
        if self.predictor is None:
            return None
        key = reference_key(category_id)
        record = self._record(key)
        if record is None or not record.get("enabled"):
            return None
        with self._lock:
            reference = self._prototypes.get(key)
            broken = key in self._broken
        if reference is None and embed is not None and not broken:
            reference = self._rebuild(key, record, embed)
        return None if reference is None else Active(key, reference)

    def lookup_key(self, key: Any) -> Active | None:
        """The reference ``key`` (an unfinished object's, replayed) as :meth:`lookup` finds it, never
        rebuilt (the predictor is on the object's image); None for a key that is not one."""
        try:
            return None if key is None else self.lookup(key_category(str(key)))
        except ClickmaskError:
            return None

    def _rebuild(self, key: str, record: dict[str, Any], embed: Embed) -> Reference | None:
        try:
            embedding = embed(record["image_id"])
            if embedding is None:
                return None
            positive = decode_rle(record["positive_mask"])
            negative = None if record.get("negative_mask") is None else decode_rle(record["negative_mask"])
            self._check_size(positive, f"reference {key}")
            reference = Reference.from_masks(embedding, positive.shape, positive, negative)
        except (ClickmaskError, ImageReadError, KeyError, TypeError, ValueError) as exc:
            logger.warning("reference %s cannot be rebuilt for model %s (%s): clicks go on without it",
                           key, self.model_id, exc)
            with self._lock:
                self._broken[key] = str(exc)  # not tried again at every click; set the reference again
            return None
        self._save(key, {**record, "model_id": self.model_id, "prototypes": {
            "positive": _vector_text(reference.positive), "negative": _vector_text(reference.negative)}}, reference)
        return reference

    def _check_size(self, mask: np.ndarray, what: str) -> None:
        """ClickmaskError unless ``mask`` fits the image just embedded (the file may have been replaced)."""
        assert self.predictor is not None
        h, w = self.predictor.image_size
        if mask.shape != (h, w):
            raise ClickmaskError(f"{what}: the mask is {mask.shape[1]}x{mask.shape[0]} but its image is now "
                                 f"{w}x{h} (the file was replaced?)")

    def start(self, obj: Hashable, active: Active | None) -> None:
        """The next prediction is an object's first click: decode it with ``active`` (None: without)."""
        if self.predictor is None:
            return
        self.predictor.set_reference(None if active is None else active.reference)
        if active is None:
            self._used.pop(obj, None)
        else:
            self._used[obj] = active.key

    def used(self, obj: Hashable) -> str | None:
        """The key of the reference the object's first click used (None: none)."""
        return self._used.get(obj)


def thumbnail_png(image: np.ndarray, positive: np.ndarray, negative: np.ndarray | None) -> bytes:
    """The reference's thumbnail (see :meth:`ReferenceService.thumbnail`) as PNG bytes."""
    h, w = positive.shape
    region = positive | (negative if negative is not None else False)
    ys, xs = np.nonzero(region)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = int((x1 - x0) * THUMBNAIL_MARGIN) + 2, int((y1 - y0) * THUMBNAIL_MARGIN) + 2
    x0, x1, y0, y1 = max(0, x0 - mx), min(w, x1 + mx), max(0, y0 - my), min(h, y1 + my)
    crop = image[y0:y1, x0:x1].astype(np.float32)
    pos, neg = positive[y0:y1, x0:x1], None if negative is None else negative[y0:y1, x0:x1]
    out = np.where(pos[..., None], crop, crop * 0.4)
    if neg is not None:
        out[neg] = out[neg] * 0.5 + np.array([200.0, 30.0, 30.0]) * 0.5
    scale = min(1.0, THUMBNAIL_SIDE / max(out.shape[:2]))
    size = (max(1, round(out.shape[1] * scale)), max(1, round(out.shape[0] * scale)))
    out = cv2.resize(out.clip(0, 255).astype(np.uint8), size, interpolation=cv2.INTER_AREA)
    small = cv2.resize(pos.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(small, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 196, 0), 1)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ClickmaskError("cannot encode the reference's thumbnail as PNG")
    return buf.tobytes()
