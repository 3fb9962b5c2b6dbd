"""Videos and volumes: list, frames, clicks on a frame, tracks, propagation (start, progress, cancel), export."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, Field

from clickmask.server.imaging import mask_runs
from clickmask.server.routes.common import DbInt, Tab, click_json, inside, mask_payload
from clickmask.server.state import AppState


class FrameClickIn(BaseModel):
    x: float
    y: float
    positive: bool = True
    category_id: DbInt | None = None


class FrameFinishIn(BaseModel):
    track_id: DbInt | None = None  # None: a new track
    category_id: DbInt | None = None


class PropagateIn(BaseModel):
    track_id: DbInt
    frame: int


class SequenceExportIn(BaseModel):
    format: str


class SequenceImportIn(BaseModel):
    folder: str = Field(max_length=1000)  # a folder of DAVIS-style label PNGs inside the project


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    seqs = state.sequences

    def session_json(session) -> dict:
        mask = None if session is None else session.current_mask()
        clicks = [] if session is None else session.clicks
        return {**mask_payload(mask, "runs"), "clicks": [click_json(c) for c in clicks]}

    @api.get("/api/sequences")
    def sequences():
        return {"sequences": seqs.store.list()}

    @api.post("/api/sequences/rescan")
    def rescan():
        return {"added": seqs.store.sync(), "sequences": seqs.store.list()}

    @api.get("/api/sequences/{sequence_id}")
    def sequence(sequence_id: DbInt):
        """Frames, size, tracks (annotated and propagated frames, confidences), the frame to check, the job."""
        return seqs.info(sequence_id)

    @api.get("/api/sequences/{sequence_id}/frames/{index}.jpg")
    def frame(sequence_id: DbInt, index: int):
        return Response(seqs.frame_jpeg(sequence_id, index), media_type="image/jpeg",
                        headers={"Cache-Control": "private, max-age=3600"})

    @api.get("/api/sequences/{sequence_id}/frames/{index}/masks")
    def frame_masks(sequence_id: DbInt, index: int):
        """Every track's mask on the frame (row-major runs), with whether the user drew it."""
        known = seqs.store.frame_masks(sequence_id, index)
        return {"masks": [{"track": t, "runs": mask_runs(m), "annotated": a, "confidence": round(float(c), 4)}
                          for t, (m, a, c) in sorted(known.items()) if m.any()]}

    @api.post("/api/sequences/{sequence_id}/frames/{index}/clicks")
    def click(sequence_id: DbInt, index: int, body: FrameClickIn, tab: str = Tab):
        t0 = time.perf_counter()
        session = seqs.click(sequence_id, index, body.x, body.y, body.positive, tab, body.category_id)
        return {**session_json(session), "server_ms": round((time.perf_counter() - t0) * 1000, 1)}

    @api.delete("/api/sequences/{sequence_id}/frames/{index}/clicks/last")
    def undo_click(sequence_id: DbInt, index: int, tab: str = Tab):
        return session_json(seqs.undo_click(sequence_id, index, tab))

    @api.delete("/api/sequences/{sequence_id}/frames/{index}/clicks")
    def reset_clicks(sequence_id: DbInt, index: int, tab: str = Tab):
        seqs.reset(sequence_id, index, tab)
        return session_json(None)

    @api.post("/api/sequences/{sequence_id}/frames/{index}/finish")
    def finish(sequence_id: DbInt, index: int, body: FrameFinishIn, tab: str = Tab):
        """The frame's object becomes its annotation in a track (a new one without ``track_id``)."""
        return seqs.finish(sequence_id, index, body.track_id, body.category_id, tab)

    @api.post("/api/sequences/{sequence_id}/propagate")
    def propagate(sequence_id: DbInt, body: PropagateIn):
        return seqs.propagate(sequence_id, body.track_id, body.frame)

    @api.get("/api/sequences/{sequence_id}/job")
    def job(sequence_id: DbInt):
        return {"job": seqs.job(sequence_id)}

    @api.delete("/api/sequences/{sequence_id}/job")
    def cancel(sequence_id: DbInt):
        return {"job": seqs.cancel(sequence_id)}

    @api.delete("/api/sequences/{sequence_id}/tracks/{track_id}")
    def delete_track(sequence_id: DbInt, track_id: DbInt):
        seqs.store.delete_track(track_id)
        return {"deleted": track_id}

    @api.post("/api/sequences/{sequence_id}/import")
    def import_png(sequence_id: DbInt, body: SequenceImportIn):
        """New tracks from a folder of DAVIS-style label PNGs in the project (one track per object value)."""
        made = seqs.import_png(sequence_id, inside(state.store.root, body.folder))
        return {"tracks": made, "sequence": seqs.info(sequence_id)}

    @api.post("/api/sequences/{sequence_id}/export")
    def export(sequence_id: DbInt, body: SequenceExportIn):
        """Write the tracks into ``.clickmask/exports/<format>-<time>/`` in the project."""
        from clickmask.server.routes.project import EXPORT_DIR

        out = state.store.root / EXPORT_DIR / f"{body.format}-{time.strftime('%Y%m%d-%H%M%S')}"
        files = seqs.export(sequence_id, body.format, out)
        return {"format": body.format, "dir": str(out), "files": [str(p.relative_to(out)) for p in files]}

    return api
