"""The project's videos and volumes: their tracks (one object each) and every track's mask per frame.

Tables (``project/schema.py``): ``sequences`` (a video or volume file of the
project folder), ``tracks`` (ids never reused) and ``frame_masks`` (one row
per track and frame: the exact mask as COCO RLE, whether the user drew it or
it was propagated, from which annotated frame, and the propagation's
confidence). A frame's mask is written as soon as it is known, in its own
transaction, so a killed server loses no finished frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
from sqlalchemy import delete, func, select

from clickmask.errors import ClickmaskError, VideoReadError
from clickmask.geometry import decode_rle, encode_rle
from clickmask.project.errors import NotFoundError
from clickmask.project.scan import scan_sequences
from clickmask.project.schema import CategoryRow, FrameMaskRow, SequenceRow, TrackRow, utcnow
from clickmask.project.store import ProjectStore


def _sequence_dict(row: SequenceRow, tracks: int) -> dict[str, Any]:
    return {"id": row.id, "path": row.path, "kind": row.kind, "frames": row.frames, "width": row.width,
            "height": row.height, "error": row.error, "tracks": tracks}


class SequenceStore:
    """Sequences, tracks and frame masks of one project (its :class:`ProjectStore`'s database)."""

    def __init__(self, store: ProjectStore) -> None:
        self.store = store

    # ------------------------------------------------------------------ sequences
    def sync(self) -> int:
        """Add the videos and volumes found under the project folder; returns how many were new."""
        from clickmask.io.sequences import sequence_kind

        found = scan_sequences(self.store.root)
        with self.store._tx() as s:
            known = set(s.scalars(select(SequenceRow.path)))
            new = [p for p in found if p not in known]
            s.add_all(SequenceRow(path=p, kind=sequence_kind(self.store.root / p)) for p in new)
        return len(new)

    def list(self) -> list[dict[str, Any]]:
        """Every sequence in path order, with its number of tracks."""
        with self.store._tx() as s:
            counts = dict(s.execute(select(TrackRow.sequence_id, func.count()).group_by(TrackRow.sequence_id)).all())
            return [_sequence_dict(r, counts.get(r.id, 0)) for r in s.scalars(select(SequenceRow).order_by(SequenceRow.path))]

    def get(self, sequence_id: int) -> dict[str, Any]:
        with self.store._tx() as s:
            row = self._row(s, sequence_id)
            count = s.scalar(select(func.count()).select_from(TrackRow).where(TrackRow.sequence_id == sequence_id))
            return _sequence_dict(row, int(count or 0))

    def path(self, sequence_id: int) -> Path:
        """Absolute path of the sequence's file; an error if it is a link that leads out of the project."""
        path = self.store.root / self.get(sequence_id)["path"]
        if not path.resolve().is_relative_to(self.store.root):
            raise VideoReadError(f"cannot read '{path}': it links to a file outside the project folder")
        return path

    def set_info(self, sequence_id: int, frames: int | None, width: int | None, height: int | None,
                 error: str | None) -> None:
        with self.store._tx() as s:
            row = self._row(s, sequence_id)
            row.frames, row.width, row.height, row.error = frames, width, height, error

    @staticmethod
    def _row(s, sequence_id: int) -> SequenceRow:
        row = s.get(SequenceRow, sequence_id)
        if row is None:
            raise NotFoundError(f"video or volume {sequence_id} does not exist")
        return row

    # ------------------------------------------------------------------ tracks
    def add_track(self, sequence_id: int, category_id: int | None = None) -> dict[str, Any]:
        """A new, empty track (a new id, never one used before)."""
        with self.store._tx() as s:
            self._row(s, sequence_id)
            self._check_category(s, category_id)
            row = TrackRow(sequence_id=sequence_id, category_id=category_id)
            s.add(row)
            s.flush()
            return {"id": row.id, "sequence_id": sequence_id, "category_id": category_id}

    def set_category(self, track_id: int, category_id: int | None) -> None:
        with self.store._tx() as s:
            self._check_category(s, category_id)
            row = self._track(s, track_id)
            row.category_id = category_id
            row.updated_at = utcnow()

    def delete_track(self, track_id: int) -> None:
        with self.store._tx() as s:
            s.execute(delete(FrameMaskRow).where(FrameMaskRow.track_id == track_id))
            s.delete(self._track(s, track_id))

    def track(self, track_id: int) -> dict[str, Any]:
        with self.store._tx() as s:
            row = self._track(s, track_id)
            return {"id": row.id, "sequence_id": row.sequence_id, "category_id": row.category_id}

    def tracks(self, sequence_id: int) -> list[dict[str, Any]]:
        """The sequence's tracks in id order, each with its annotated and propagated frames and their
        confidences (``{frame: confidence}`` of the propagated ones)."""
        with self.store._tx() as s:
            self._row(s, sequence_id)
            out = []
            for row in s.scalars(select(TrackRow).where(TrackRow.sequence_id == sequence_id).order_by(TrackRow.id)):
                frames = s.execute(select(FrameMaskRow.frame, FrameMaskRow.annotated, FrameMaskRow.confidence)
                                   .where(FrameMaskRow.track_id == row.id).order_by(FrameMaskRow.frame)).all()
                out.append({"id": row.id, "category_id": row.category_id,
                            "annotated": [f for f, a, _ in frames if a],
                            "propagated": {str(f): round(float(c), 4) for f, a, c in frames if not a}})
            return out

    @staticmethod
    def _track(s, track_id: int) -> TrackRow:
        row = s.get(TrackRow, track_id)
        if row is None:
            raise NotFoundError(f"track {track_id} does not exist")
        return row

    @staticmethod
    def _check_category(s, category_id: int | None) -> None:
        if category_id is not None and s.get(CategoryRow, category_id) is None:
            raise NotFoundError(f"category {category_id} does not exist")

    # ------------------------------------------------------------------ frame masks
    def put_masks(self, track_id: int, items: Iterable[tuple[int, np.ndarray, bool, int, float]]) -> None:
        """Keep masks ``(frame, HxW bool, annotated, source frame, confidence)`` of a track, in one
        transaction (a frame's earlier mask is replaced). An empty propagated mask is kept too (the
        object is gone there); an empty annotated one is refused."""
        rows = []
        for frame, mask, annotated, source, confidence in items:
            mask = np.asarray(mask, dtype=bool)
            if annotated and not mask.any():
                raise ClickmaskError(f"track {track_id}, frame {frame}: the mask is empty: nothing to save")
            rows.append((int(frame), encode_rle(mask), bool(annotated), int(source), float(confidence)))
        with self.store._tx() as s:
            track = self._track(s, track_id)
            seq = self._row(s, track.sequence_id)
            for frame, rle, annotated, source, confidence in rows:
                if seq.frames is not None and not 0 <= frame < seq.frames:
                    raise ClickmaskError(f"{seq.path}: frame {frame} does not exist (0..{seq.frames - 1})")
                if seq.height is not None and tuple(rle["size"]) != (seq.height, seq.width):
                    raise ClickmaskError(f"{seq.path}: mask is {rle['size'][1]}x{rle['size'][0]}, "
                                         f"frames are {seq.width}x{seq.height}")
                row = s.scalar(select(FrameMaskRow).where(FrameMaskRow.track_id == track_id,
                                                          FrameMaskRow.frame == frame))
                if row is None:
                    s.add(FrameMaskRow(track_id=track_id, frame=frame, rle=rle, annotated=annotated, source=source,
                                       confidence=confidence))
                else:
                    row.rle, row.annotated, row.source, row.confidence = rle, annotated, source, confidence
            track.updated_at = utcnow()

    def masks(self, track_id: int) -> dict[int, tuple[np.ndarray, bool, int, float]]:
        """Every known frame of a track: ``{frame: (HxW bool mask, annotated, source, confidence)}``."""
        with self.store._tx() as s:
            self._track(s, track_id)
            rows = s.scalars(select(FrameMaskRow).where(FrameMaskRow.track_id == track_id)).all()
            return {r.frame: (decode_rle(r.rle), r.annotated, r.source, r.confidence) for r in rows}

    def frame_masks(self, sequence_id: int, frame: int) -> dict[int, tuple[np.ndarray, bool, float]]:
        """Every track's mask on one frame: ``{track id: (mask, annotated, confidence)}``."""
        with self.store._tx() as s:
            rows = s.execute(select(FrameMaskRow).join(TrackRow, TrackRow.id == FrameMaskRow.track_id)
                             .where(TrackRow.sequence_id == sequence_id, FrameMaskRow.frame == frame)).scalars().all()
            return {r.track_id: (decode_rle(r.rle), r.annotated, r.confidence) for r in rows}

