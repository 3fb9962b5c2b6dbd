"""SQLAlchemy 2 tables of a project database."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA_VERSION = 2  # 2: instance ids AUTOINCREMENT (never reused)
STATUSES = ("new", "in_progress", "done")


def utcnow() -> datetime:
    """The current time in UTC (timezone-aware)."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of the project tables."""


class CategoryRow(Base):
    """A label class: name, colour and position in the list."""

    __tablename__ = "categories"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    color: Mapped[str] = mapped_column(String(7))
    position: Mapped[int] = mapped_column(Integer, default=0)


class ImageRow(Base):
    """An image file of the project, by path relative to the project folder."""

    __tablename__ = "images"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="new")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InstanceRow(Base):
    """One annotated object: exact mask (COCO RLE) and editable polygons."""

    __tablename__ = "instances"
    # AUTOINCREMENT: a deleted object's id is never given to a new one (undo and stale tabs address ids)
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), nullable=True
    )
    z_order: Mapped[int] = mapped_column(Integer, default=0)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    rle: Mapped[dict[str, Any]] = mapped_column(JSON)
    polygons: Mapped[list[Any]] = mapped_column(JSON)
    area: Mapped[int] = mapped_column(Integer, default=0)
    bbox: Mapped[list[float]] = mapped_column(JSON)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    author: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Every UPDATE and DELETE is conditioned on the version read ("... WHERE id = ? AND version = ?")
    # and its row count checked, so a version check holds across processes, not only inside one.
    __mapper_args__ = {"version_id_col": version, "version_id_generator": False}


class HistoryRow(Base):
    """One undoable edit of an image's instances: the states before and after."""

    __tablename__ = "history"
    __table_args__ = (UniqueConstraint("image_id", "seq"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))
    before: Mapped[list[Any]] = mapped_column(JSON)
    after: Mapped[list[Any]] = mapped_column(JSON)
    undone: Mapped[bool] = mapped_column(Boolean, default=False)
    author: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SettingRow(Base):
    """A project setting (JSON value), e.g. shortcuts or the polygon tolerance."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class AdapterRow(Base):
    """A category's OPO embedding adapter (``adapter_to_bytes`` .npz), one row per category.

    ``version``: updates published since the last reset; ``samples``: finished
    objects learned from; ``model_id``: the model whose embeddings it adapts.
    """

    __tablename__ = "adapters"
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    samples: Mapped[int] = mapped_column(Integer, default=0)
    model_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ObjectMapRow(Base):
    """A category's object map for initial click proposals (``ObjectMap.to_bytes`` .npz), one row per category.

    ``objects``: finished objects learned from; ``model_id``: the model whose embeddings it reads.
    """

    __tablename__ = "object_maps"
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id", ondelete="CASCADE"), primary_key=True)
    objects: Mapped[int] = mapped_column(Integer, default=0)
    model_id: Mapped[str] = mapped_column(String(200))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SequenceRow(Base):
    """A video or a volume of the project (``kind``), by path relative to the project folder."""

    __tablename__ = "sequences"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    frames: Mapped[int | None] = mapped_column(Integer, nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class TrackRow(Base):
    """One object followed through a sequence; its id is never reused."""

    __tablename__ = "tracks"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"), index=True)
    category_id: Mapped[int | None] = mapped_column(ForeignKey("categories.id", ondelete="SET NULL"), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FrameMaskRow(Base):
    """A track's mask on one frame: drawn by the user (``annotated``) or propagated from frame ``source``."""

    __tablename__ = "frame_masks"
    __table_args__ = (UniqueConstraint("track_id", "frame"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    track_id: Mapped[int] = mapped_column(ForeignKey("tracks.id", ondelete="CASCADE"), index=True)
    frame: Mapped[int] = mapped_column(Integer)
    rle: Mapped[dict[str, Any]] = mapped_column(JSON)
    annotated: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float, default=1.0)
