"""ProjectStore: every read and write of a project's database.

Each public method that changes something runs in one transaction, so a crash
leaves either the whole change or none of it. Instance edits carry a version:
a write based on an older version raises :class:`ConflictError`. Edits of an
image's instances are recorded in the ``history`` table, so undo/redo survives
a restart.
"""

from __future__ import annotations

import getpass
import json
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from sqlalchemy import create_engine, event, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from clickmask.errors import ClickmaskError, ImageReadError
from clickmask.io.atomic import atomic_write_text
from clickmask.io.pyramid import is_large
from clickmask.project import masks as maskutil
from clickmask.project.errors import ConflictError, NotFoundError
from clickmask.project.scan import PROJECT_DIR, scan_images
from clickmask.project.settings import stored_tolerance
from clickmask.project.schema import (
    SCHEMA_VERSION, STATUSES, AdapterRow, Base, CategoryRow, HistoryRow, ImageRow, InstanceRow, ObjectMapRow, SettingRow,
    utcnow,
)

PALETTE = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6",
           "#bcf60c", "#fabebe", "#008080", "#e6beff", "#9a6324", "#800000", "#aaffc3"]
MAX_NAME = 200  # characters of a category name (the column's size)
_INSTANCE_FIELDS = ("category_id", "z_order", "hidden", "rle", "polygons", "area", "bbox",
                    "attributes", "author")


def _check_color(color: str) -> str:
    c = str(color).strip().lower()
    if len(c) != 7 or c[0] != "#" or any(ch not in "0123456789abcdef" for ch in c[1:]):
        raise ClickmaskError(f"invalid colour {color!r}: use #rrggbb")
    return c


def _check_name(name: str) -> str:
    """A category name, stripped: 1 to MAX_NAME characters."""
    name = str(name).strip()
    if not name or len(name) > MAX_NAME:
        raise ClickmaskError(f"a category name has 1 to {MAX_NAME} characters, got {len(name)}")
    return name


def default_url(root: Path) -> str:
    """The SQLite URL of a project folder's database."""
    return f"sqlite:///{(root / PROJECT_DIR / 'project.db').as_posix()}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


class ProjectStore:
    """The database of one project (image folder ``root``)."""

    def __init__(self, root: Path, url: str | None = None, author: str | None = None) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ClickmaskError(f"{root}: not a folder of images")
        if url is None:
            try:
                (self.root / PROJECT_DIR).mkdir(exist_ok=True)
            except OSError as exc:
                raise ClickmaskError(f"{self.root / PROJECT_DIR}: cannot create the project folder ({exc.strerror})") from None
            url = default_url(self.root)
        self.url = url
        self.author = author if author is not None else _user()
        try:
            self.engine = make_engine(url)
            Base.metadata.create_all(self.engine)
        except Exception as exc:  # noqa: BLE001 - any driver error becomes one line
            raise ClickmaskError(f"{url}: cannot open the project database ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._lock = threading.RLock()
        if self.url.startswith("sqlite"):
            _autoincrement_instances(self.engine)
        with self._tx() as s:
            row = s.get(SettingRow, "schema_version")
            if row is None:
                s.add(SettingRow(key="schema_version", value=SCHEMA_VERSION))
            elif row.value < SCHEMA_VERSION:
                row.value = SCHEMA_VERSION

    # ------------------------------------------------------------------ basics
    @contextmanager
    def _tx(self) -> Iterator[Session]:
        """One transaction (committed on success, rolled back on any error).

        A write whose version condition matched no row (another process changed
        or deleted the object since it was read) becomes a ConflictError.
        """
        try:
            with self._lock, self._sessions() as session, session.begin():
                yield session
        except StaleDataError:
            raise ConflictError("the object was changed or deleted elsewhere: reload the image") from None

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def integrity_ok(self) -> bool:
        """SQLite ``PRAGMA integrity_check`` (True for other databases)."""
        if not self.url.startswith("sqlite"):
            return True
        with self.engine.connect() as conn:
            return conn.execute(text("PRAGMA integrity_check")).scalar() == "ok"

    # ------------------------------------------------------------------ settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        with self._tx() as s:
            row = s.get(SettingRow, key)
            return default if row is None else row.value

    def set_setting(self, key: str, value: Any) -> None:
        with self._tx() as s:
            row = s.get(SettingRow, key)
            if row is None:
                s.add(SettingRow(key=key, value=value))
            else:
                row.value = value

    def forget_setting(self, key: str) -> None:
        """Remove a setting (nothing happens if it is not set)."""
        with self._tx() as s:
            row = s.get(SettingRow, key)
            if row is not None:
                s.delete(row)

    # ------------------------------------------------------------------ the object in progress
    def set_unfinished(self, image_id: int, prompts: dict[str, Any] | None) -> None:
        """Keep the prompts of an image's unfinished object (JSON: box, clicks, chosen mask), or forget them (None).

        Written after every click, so a server that is killed gives the
        object back on restart (the app replays the prompts).
        """
        key = f"unfinished/{int(image_id)}"
        if prompts is None:
            self.forget_setting(key)
        else:
            self.set_setting(key, prompts)

    def unfinished(self, image_id: int) -> dict[str, Any] | None:
        """The prompts kept by :meth:`set_unfinished` for an image, or None."""
        return self.get_setting(f"unfinished/{int(image_id)}")

    # ------------------------------------------------------------------ display settings
    def display(self, image_id: int) -> dict[str, Any] | None:
        """An image's display settings (``clickmask.io.display``: a raster's bands and stretch, a DICOM's
        window), or None for the defaults."""
        return self.get_setting(f"display/{int(image_id)}")

    def set_display(self, image_id: int, value: dict[str, Any] | None) -> None:
        """Keep an image's display settings (checked by ``clickmask.io.display.check_display``), or forget them."""
        self._get_image_exists(int(image_id))
        key = f"display/{int(image_id)}"
        if value is None:
            self.forget_setting(key)
        else:
            self.set_setting(key, value)

    def _get_image_exists(self, image_id: int) -> None:
        with self._tx() as s:
            self._get_image(s, image_id)

    # ------------------------------------------------------------------ OPO adapters
    def list_adapters(self) -> list[dict[str, Any]]:
        """Every stored category adapter: {category_id, version, samples, model_id, data (bytes)}."""
        with self._tx() as s:
            return [{"category_id": r.category_id, "version": r.version, "samples": r.samples,
                     "model_id": r.model_id, "data": bytes(r.data)} for r in s.scalars(select(AdapterRow))]

    def put_adapter(self, category_id: int, version: int, samples: int, model_id: str, data: bytes) -> None:
        """Store (replace) a category's adapter in one transaction."""
        self._put_per_category(AdapterRow, category_id, version=version, samples=samples, model_id=model_id,
                               data=data)

    def delete_adapter(self, category_id: int) -> None:
        """Forget a category's adapter (no error if there is none)."""
        self._delete_per_category(AdapterRow, category_id)

    # ------------------------------------------------------------------ ICP object maps
    def get_object_map(self, category_id: int) -> dict[str, Any] | None:
        """A category's stored object map: {category_id, objects, model_id, data (bytes)}, or None."""
        with self._tx() as s:
            row = s.get(ObjectMapRow, category_id)
            return None if row is None else {"category_id": row.category_id, "objects": row.objects,
                                             "model_id": row.model_id, "data": bytes(row.data)}

    def put_object_map(self, category_id: int, objects: int, model_id: str, data: bytes) -> None:
        """Store (replace) a category's object map in one transaction."""
        self._put_per_category(ObjectMapRow, category_id, objects=objects, model_id=model_id, data=data)

    def delete_object_map(self, category_id: int) -> None:
        """Forget a category's object map (no error if there is none)."""
        self._delete_per_category(ObjectMapRow, category_id)

    def _put_per_category(self, table: type, category_id: int, **fields: Any) -> None:
        """Insert or replace the row of a one-row-per-category table (stamped ``updated_at``) in one transaction."""
        with self._tx() as s:
            if s.get(CategoryRow, category_id) is None:
                raise NotFoundError(f"category {category_id} does not exist")
            row = s.get(table, category_id)
            if row is None:
                row = table(category_id=category_id)
                s.add(row)
            for name, value in {**fields, "updated_at": utcnow()}.items():
                setattr(row, name, value)

    def _delete_per_category(self, table: type, category_id: int) -> None:
        """Delete a category's row of a one-row-per-category table (no error if there is none)."""
        with self._tx() as s:
            row = s.get(table, category_id)
            if row is not None:
                s.delete(row)

    # ------------------------------------------------------------------ images
    def sync_images(self) -> int:
        """Add the image files found under the folder; returns how many were new."""
        found = scan_images(self.root)
        with self._tx() as s:
            known = set(s.scalars(select(ImageRow.path)))
            new = [p for p in found if p not in known]
            s.add_all(ImageRow(path=p) for p in new)
        return len(new)

    def list_images(self) -> list[dict[str, Any]]:
        """All images in path order, each with its instance count."""
        with self._tx() as s:
            counts = dict(s.execute(select(InstanceRow.image_id, func.count()).group_by(InstanceRow.image_id)).all())
            rows = s.scalars(select(ImageRow).order_by(ImageRow.path)).all()
            return [self._image_dict(r, counts.get(r.id, 0)) for r in rows]

    def image(self, image_id: int) -> dict[str, Any]:
        with self._tx() as s:
            row = self._get_image(s, image_id)
            count = s.scalar(select(func.count()).where(InstanceRow.image_id == image_id))
            return self._image_dict(row, int(count or 0))

    def image_path(self, image_id: int) -> Path:
        """Absolute path of an image file; an error if it is a link that leads out of the project folder."""
        path = self.root / self.image(image_id)["path"]
        if not path.resolve().is_relative_to(self.root):
            raise ImageReadError(f"cannot read image '{path}': it links to a file outside the project folder")
        return path

    def set_image_info(self, image_id: int, width: int | None, height: int | None, error: str | None) -> None:
        """Record an image's decoded size, or the error that stops it from loading."""
        with self._tx() as s:
            row = self._get_image(s, image_id)
            row.width, row.height, row.error = width, height, error

    def set_status(self, image_id: int, status: str) -> dict[str, Any]:
        if status not in STATUSES:
            raise ClickmaskError(f"invalid status {status!r}: use one of {', '.join(STATUSES)}")
        with self._tx() as s:
            row = self._get_image(s, image_id)
            row.status = status
            row.updated_at = utcnow()
        return self.image(image_id)

    def counts(self) -> dict[str, int]:
        """Number of images per status, plus images, instances and errors."""
        with self._tx() as s:
            out = {k: 0 for k in STATUSES}
            for status, n in s.execute(select(ImageRow.status, func.count()).group_by(ImageRow.status)):
                out[status] = n
            out["images"] = int(s.scalar(select(func.count()).select_from(ImageRow)) or 0)
            out["instances"] = int(s.scalar(select(func.count()).select_from(InstanceRow)) or 0)
            out["errors"] = int(s.scalar(select(func.count()).where(ImageRow.error.is_not(None))) or 0)
            out["uncategorised"] = int(s.scalar(select(func.count()).where(InstanceRow.category_id.is_(None))) or 0)
            return out

    # ------------------------------------------------------------------ categories
    def list_categories(self) -> list[dict[str, Any]]:
        with self._tx() as s:
            rows = s.scalars(select(CategoryRow).order_by(CategoryRow.position, CategoryRow.id)).all()
            return [{"id": r.id, "name": r.name, "color": r.color} for r in rows]

    def add_category(self, name: str, color: str | None = None) -> dict[str, Any]:
        name = _check_name(name)
        with self._tx() as s:
            if s.scalar(select(CategoryRow).where(CategoryRow.name == name)) is not None:
                raise ConflictError(f"category {name!r} already exists")
            n = int(s.scalar(select(func.count()).select_from(CategoryRow)) or 0)
            if not color:  # the first palette colour no category has, so new categories stay apart
                used = set(s.scalars(select(CategoryRow.color)))
                color = next((c for c in PALETTE if c not in used), PALETTE[n % len(PALETTE)])
            row = CategoryRow(name=name, color=_check_color(color), position=n)
            s.add(row)
            s.flush()
            return {"id": row.id, "name": row.name, "color": row.color}

    def update_category(self, category_id: int, name: str | None = None, color: str | None = None) -> dict[str, Any]:
        with self._tx() as s:
            row = s.get(CategoryRow, category_id)
            if row is None:
                raise NotFoundError(f"category {category_id} does not exist")
            if name is not None:
                name = _check_name(name)
                other = s.scalar(select(CategoryRow).where(CategoryRow.name == name))
                if other is not None and other.id != category_id:
                    raise ConflictError(f"category name {name!r} is already used")
                row.name = name
            if color is not None:
                row.color = _check_color(color)
            return {"id": row.id, "name": row.name, "color": row.color}

    def delete_category(self, category_id: int) -> None:
        """Delete a category; its instances become uncategorised."""
        with self._tx() as s:
            row = s.get(CategoryRow, category_id)
            if row is None:
                raise NotFoundError(f"category {category_id} does not exist")
            for inst in s.scalars(select(InstanceRow).where(InstanceRow.category_id == category_id)):
                inst.category_id = None
                inst.version += 1
            s.delete(row)

    def save_categories(self, path: Path) -> Path:
        """Write the categories as JSON (``{"categories": [{id, name, color}]}``)."""
        atomic_write_text(path, json.dumps({"categories": self.list_categories()}, indent=2) + "\n")
        return Path(path)

    def load_categories(self, path: Path) -> list[dict[str, Any]]:
        """Merge a category file (JSON as saved, or text lines ``name [#rrggbb]``) by name."""
        entries = read_category_file(Path(path))
        existing = {c["name"]: c for c in self.list_categories()}
        for name, color in entries:
            if name in existing:
                if color:
                    self.update_category(existing[name]["id"], color=color)
            else:
                existing[name] = self.add_category(name, color)
        return self.list_categories()

    # ------------------------------------------------------------------ instances
    def list_instances(self, image_id: int) -> list[dict[str, Any]]:
        """The image's instances, bottom (lowest z-order) first."""
        with self._tx() as s:
            self._get_image(s, image_id)
            rows = s.scalars(select(InstanceRow).where(InstanceRow.image_id == image_id)
                             .order_by(InstanceRow.z_order, InstanceRow.id)).all()
            return [_instance_dict(r) for r in rows]

    def instance(self, instance_id: int) -> dict[str, Any]:
        with self._tx() as s:
            return _instance_dict(self._get_instance(s, instance_id))

    def instance_mask(self, instance_id: int) -> np.ndarray:
        return maskutil.decode_mask(self.instance(instance_id)["rle"])

    def add_instance(
        self, image_id: int, mask: np.ndarray, category_id: int | None = None,
        attributes: dict[str, Any] | None = None, tolerance: float | None = None,
        offset: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Store a finished object (HxW bool mask) on top of the others.

        With ``offset`` ``(x0, y0)``, ``mask`` is a window of the image starting
        at that pixel (an object of a large image; the image's size must be known).
        """
        return self.add_instances([(image_id, mask, category_id, attributes, offset)], tolerance)[0]

    def add_instances(
        self, items: list[tuple], tolerance: float | None = None,
    ) -> list[dict[str, Any]]:
        """Store several objects ``(image_id, mask, category_id, attributes[, offset])`` in one transaction:
        all or none. With an ``offset`` ``(x0, y0)`` (not None), the mask is a window of the image starting
        there (see :meth:`add_instance`)."""
        tol = self._tolerance(tolerance)
        prepared = []
        for image_id, mask, category_id, attributes, *rest in items:
            offset = rest[0] if rest else None
            mask = np.asarray(mask, dtype=bool)
            if not mask.any():
                raise ClickmaskError("the mask is empty: nothing to save")
            size = None
            if offset is not None:
                info = self.image(image_id)
                if info["width"] is None:
                    raise ClickmaskError(f"{info['path']}: its size is not known yet (open it first)")
                size = (info["height"], info["width"])
            prepared.append((image_id, mask, category_id, attributes, maskutil.mask_fields(mask, tol, offset, size)))
        with self._tx() as s:
            return [self._add(s, *item) for item in prepared]

    def _add(self, s: Session, image_id: int, mask: np.ndarray, category_id: int | None,
             attributes: dict[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
        image = self._get_image(s, image_id)
        h, w = fields["rle"]["size"]
        if image.width is not None and (image.height, image.width) != (h, w):
            raise ClickmaskError(f"{image.path}: mask is {w}x{h}, image is {image.width}x{image.height}")
        self._check_category(s, category_id)
        top = s.scalar(select(func.max(InstanceRow.z_order)).where(InstanceRow.image_id == image_id))
        row = InstanceRow(image_id=image_id, category_id=category_id, z_order=(top if top is not None else -1) + 1,
                          hidden=False, attributes=attributes or {}, author=self.author, **fields)
        s.add(row)
        s.flush()
        self._touch_image(image)
        self._record(s, image_id, "add", [{"id": row.id, "state": None}], [{"id": row.id, "state": _state(row)}])
        return _instance_dict(row)

    def update_instance(
        self, instance_id: int, version: int, *, mask: np.ndarray | None = None,
        polygons: Any = None, category_id: Any = ..., hidden: bool | None = None,
        attributes: dict[str, Any] | None = None, tolerance: float | None = None,
        offset: tuple[int, int] | None = None,
    ) -> dict[str, Any]:
        """Change an instance; ``version`` must be the current one (else ConflictError).

        An edit that changes nothing (an eraser stroke beside the object, the
        same category again) is not written: no new version, no undo step.
        With ``offset`` ``(x0, y0)``, ``mask`` is a window of the image starting
        there that holds the whole object (a large image's); a polygon edit of a
        large image's object works on the object's box the same way.
        """
        with self._tx() as s:
            row = self._get_instance(s, instance_id, version)
            image = s.get(ImageRow, row.image_id)
            shape = (int(row.rle["size"][0]), int(row.rle["size"][1]))
            before = _state(row)
            changes: dict[str, Any] = {}
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)
                if offset is None and mask.shape != shape:
                    raise ClickmaskError(f"mask is {mask.shape[1]}x{mask.shape[0]}, instance is {shape[1]}x{shape[0]}")
                if not mask.any():
                    raise ClickmaskError("the edit leaves an empty mask: delete the instance instead")
                changes.update(maskutil.mask_fields(mask, self._tolerance(tolerance), offset,
                                                    None if offset is None else shape))
            elif polygons is not None and is_large(shape[1], shape[0]):
                changes = maskutil.polygon_edit_fields_window(row.rle, row.polygons, polygons)
                if changes["area"] == 0:
                    raise ClickmaskError("the polygons cover no pixel centre: delete the instance instead")
            elif polygons is not None:
                changes = maskutil.polygon_edit_fields(maskutil.decode_mask(row.rle), row.polygons, polygons)
                if changes["area"] == 0:
                    raise ClickmaskError("the polygons cover no pixel centre: delete the instance instead")
            if category_id is not ...:
                self._check_category(s, category_id)
                changes["category_id"] = category_id
            if hidden is not None:
                changes["hidden"] = bool(hidden)
            if attributes is not None:
                changes["attributes"] = dict(attributes)
            if all(before[k] == v for k, v in changes.items()):
                return _instance_dict(row)
            _set(row, changes)
            row.version += 1
            row.updated_at = utcnow()
            row.author = self.author
            self._touch_image(image)
            self._record(s, row.image_id, "update", [{"id": row.id, "state": before}], [{"id": row.id, "state": _state(row)}])
            return _instance_dict(row)

    def delete_instance(self, instance_id: int, version: int) -> None:
        with self._tx() as s:
            row = self._get_instance(s, instance_id, version)
            self._record(s, row.image_id, "delete", [{"id": row.id, "state": _state(row)}], [{"id": row.id, "state": None}])
            self._touch_image(s.get(ImageRow, row.image_id))
            s.delete(row)

    def reorder(self, image_id: int, order: list[int]) -> list[dict[str, Any]]:
        """Set the z-order: ``order`` lists all instance ids of the image, bottom first."""
        with self._tx() as s:
            image = self._get_image(s, image_id)
            rows = {r.id: r for r in s.scalars(select(InstanceRow).where(InstanceRow.image_id == image_id))}
            if sorted(order) != sorted(rows):
                raise ConflictError(f"{image.path}: the new order does not list the image's current instances")
            before, after = [], []
            for z, iid in enumerate(order):
                row = rows[iid]
                if row.z_order != z:
                    before.append({"id": iid, "state": _state(row)})
                    row.z_order = z
                    row.version += 1
                    after.append({"id": iid, "state": _state(row)})
            if before:
                self._touch_image(image)
                self._record(s, image_id, "reorder", before, after)
        return self.list_instances(image_id)

    # ------------------------------------------------------------------ history
    def undo(self, image_id: int) -> dict[str, Any] | None:
        """Undo the image's last edit; returns ``{"action": ...}`` or None when there is none."""
        with self._tx() as s:
            self._get_image(s, image_id)
            entry = s.scalar(select(HistoryRow).where(HistoryRow.image_id == image_id, HistoryRow.undone.is_(False))
                             .order_by(HistoryRow.seq.desc()).limit(1))
            if entry is None:
                return None
            self._apply(s, image_id, entry.before)
            entry.undone = True
            self._touch_image(s.get(ImageRow, image_id))
            return {"action": entry.action, "seq": entry.seq}

    def redo(self, image_id: int) -> dict[str, Any] | None:
        """Redo the image's most recently undone edit; None when there is none."""
        with self._tx() as s:
            self._get_image(s, image_id)
            entry = s.scalar(select(HistoryRow).where(HistoryRow.image_id == image_id, HistoryRow.undone.is_(True))
                             .order_by(HistoryRow.seq).limit(1))
            if entry is None:
                return None
            self._apply(s, image_id, entry.after)
            entry.undone = False
            self._touch_image(s.get(ImageRow, image_id))
            return {"action": entry.action, "seq": entry.seq}

    def history_state(self, image_id: int) -> dict[str, int]:
        """How many edits can be undone and redone on an image."""
        with self._tx() as s:
            undo = s.scalar(select(func.count()).where(HistoryRow.image_id == image_id, HistoryRow.undone.is_(False)))
            redo = s.scalar(select(func.count()).where(HistoryRow.image_id == image_id, HistoryRow.undone.is_(True)))
            return {"undo": int(undo or 0), "redo": int(redo or 0)}

    # ------------------------------------------------------------------ internals
    def _tolerance(self, tolerance: float | None) -> float:
        return float(tolerance) if tolerance is not None else stored_tolerance(self.get_setting("polygon_tolerance"))

    def _record(self, s: Session, image_id: int, action: str, before: list, after: list) -> None:
        """Append a history entry; a new edit drops the redo branch."""
        for undone in s.scalars(select(HistoryRow).where(HistoryRow.image_id == image_id, HistoryRow.undone.is_(True))):
            s.delete(undone)
        s.flush()
        seq = s.scalar(select(func.max(HistoryRow.seq)).where(HistoryRow.image_id == image_id))
        s.add(HistoryRow(image_id=image_id, seq=(seq or 0) + 1, action=action, before=before, after=after,
                         author=self.author))

    def _apply(self, s: Session, image_id: int, states: list[dict[str, Any]]) -> None:
        """Put the image's instances named in ``states`` back into those states (None = absent)."""
        for item in states:
            row = s.get(InstanceRow, item["id"])
            state = item["state"]
            if row is not None and row.image_id != image_id:
                raise ConflictError(f"instance {item['id']} now belongs to image {row.image_id}, not {image_id}: "
                                    "this edit cannot be undone or redone")
            if state is None:
                if row is not None:
                    s.delete(row)
                continue
            if row is None:
                row = InstanceRow(id=item["id"], image_id=image_id, version=0)
                s.add(row)
            _set(row, {k: state[k] for k in _INSTANCE_FIELDS})
            if row.category_id is not None and s.get(CategoryRow, row.category_id) is None:
                row.category_id = None
            row.version = (row.version or 0) + 1
            row.updated_at = utcnow()
        s.flush()

    def _touch_image(self, image: ImageRow) -> None:
        image.version += 1
        image.updated_at = utcnow()
        if image.status == "new":
            image.status = "in_progress"

    def _get_image(self, s: Session, image_id: int) -> ImageRow:
        row = s.get(ImageRow, image_id)
        if row is None:
            raise NotFoundError(f"image {image_id} does not exist in the project")
        return row

    def _get_instance(self, s: Session, instance_id: int, version: int | None = None) -> InstanceRow:
        row = s.get(InstanceRow, instance_id)
        if row is None:
            raise NotFoundError(f"instance {instance_id} does not exist (deleted elsewhere?)")
        if version is not None and row.version != version:
            raise ConflictError(
                f"instance {instance_id} was changed elsewhere (version {row.version}, yours {version}): reload the image")
        return row

    def _check_category(self, s: Session, category_id: int | None) -> None:
        if category_id is not None and s.get(CategoryRow, category_id) is None:
            raise NotFoundError(f"category {category_id} does not exist")

    @staticmethod
    def _image_dict(row: ImageRow, count: int) -> dict[str, Any]:
        return {"id": row.id, "path": row.path, "width": row.width, "height": row.height,
                "status": row.status, "error": row.error, "version": row.version, "instances": count}


def _state(row: InstanceRow) -> dict[str, Any]:
    """An instance's content as stored in the history."""
    out = {k: getattr(row, k) for k in _INSTANCE_FIELDS}
    out["image_id"] = row.image_id
    return out


def _set(row: InstanceRow, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        setattr(row, key, value)


def _instance_dict(row: InstanceRow) -> dict[str, Any]:
    out = _state(row)
    out.update(id=row.id, version=row.version,
               created_at=row.created_at.isoformat() if row.created_at else None,
               updated_at=row.updated_at.isoformat() if row.updated_at else None)
    return out


def _autoincrement_instances(engine: Engine) -> None:
    """Rebuild a SQLite ``instances`` table made before ids were AUTOINCREMENT (schema 1).

    Its id counter starts above every id the table or the undo history has ever
    used, so no new object takes the id of a deleted one.
    """
    with engine.begin() as conn:
        sql = conn.execute(text("SELECT sql FROM sqlite_master WHERE type='table' AND name='instances'")).scalar()
        if sql is None or "AUTOINCREMENT" in sql.upper():
            return
        used = [conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM instances")).scalar() or 0]
        for before, after in conn.execute(text("SELECT before, after FROM history")):
            used += [int(item["id"]) for part in (before, after) for item in json.loads(part or "[]")]
        conn.execute(text("ALTER TABLE instances RENAME TO instances_schema1"))
        conn.execute(text("DROP INDEX IF EXISTS ix_instances_image_id"))
        InstanceRow.__table__.create(conn)
        columns = ", ".join(c.name for c in InstanceRow.__table__.columns)
        conn.execute(text(f"INSERT INTO instances ({columns}) SELECT {columns} FROM instances_schema1"))
        conn.execute(text("DROP TABLE instances_schema1"))
        conn.execute(text("DELETE FROM sqlite_sequence WHERE name = 'instances'"))
        conn.execute(text("INSERT INTO sqlite_sequence (name, seq) VALUES ('instances', :seq)"), {"seq": max(used)})


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        return ""


def read_category_file(path: Path) -> list[tuple[str, str | None]]:
    """Read ``(name, colour or None)`` pairs from a category JSON or text file."""
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClickmaskError(f"{path}: cannot read the category file ({exc})") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(raw)
            items = data["categories"] if isinstance(data, dict) else data
            out = [(str(c["name"]).strip(), c.get("color")) for c in items]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ClickmaskError(f"{path}: not a category file (expected {{\"categories\": [{{name, color}}]}})") from None
    else:
        out = []
        for line in raw.splitlines():
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            color = parts[-1] if len(parts) > 1 and parts[-1].startswith("#") else None
            name = " ".join(parts[:-1] if color else parts)
            out.append((name, color))
    for name, color in out:
        if not name:
            raise ClickmaskError(f"{path}: a category has an empty name")
        if color:
            try:
                _check_color(color)
            except ClickmaskError:
                raise ClickmaskError(f"{path}: category {name!r} has an invalid colour {color!r}") from None
    return out


def open_project(path: Path, url: str | None = None, author: str | None = None) -> ProjectStore:
    """Open (creating if needed) the project of an image folder and register its images."""
    path = Path(path)
    if path.name == "project.db" and path.parent.name == PROJECT_DIR:
        path = path.parent.parent
    elif path.name == PROJECT_DIR:
        path = path.parent
    if not path.exists():
        raise ClickmaskError(f"{path}: no such folder")
    store = ProjectStore(path, url=url, author=author)
    store.sync_images()
    return store
