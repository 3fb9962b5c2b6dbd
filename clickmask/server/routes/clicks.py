"""Clicking an object: clicks, a box, the choice among the first prompt's masks, the current mask,
first-click proposals and finishing the object."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel, Field

from clickmask.server.imaging import mask_png
from clickmask.engine.clicks import BoxPrompt
from clickmask.server.routes.common import DbInt, Tab, check_category, click_json, mask_payload
from clickmask.server.state import AppState, InProgress


class ClickIn(BaseModel):
    x: float
    y: float
    positive: bool = True
    category_id: DbInt | None = None  # the object's category: its OPO adapter is used
    # the visible rectangle [x0, y0, x1, y1] of the image: sizes a large image's window for a new object
    view: list[float] | None = Field(None, min_length=4, max_length=4)


class BoxIn(BaseModel):
    """Two opposite corners of a dragged rectangle, in image pixels (any order)."""

    x0: float
    y0: float
    x1: float
    y1: float
    category_id: DbInt | None = None


class ChoiceIn(BaseModel):
    index: int = Field(ge=-1_000_000, le=1_000_000)  # taken modulo the number of masks


class FinishIn(BaseModel):
    category_id: DbInt | None = None


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    store = state.store

    @api.post("/api/images/{image_id}/clicks")
    def click(image_id: DbInt, body: ClickIn, format: str = "runs", tab: str = Tab):
        t0 = time.perf_counter()
        mask_payload(None, format)  # validates the format before the click changes anything
        with state.adaptation.training_paused():  # the OPO trainer process stops until the answer is ready
            obj, ms = state.click(image_id, body.x, body.y, body.positive, tab, body.category_id, body.view)
            return _answer(obj, format, ms, t0)

    @api.post("/api/images/{image_id}/box")
    def box(image_id: DbInt, body: BoxIn, format: str = "runs", tab: str = Tab):
        t0 = time.perf_counter()
        mask_payload(None, format)
        with state.adaptation.training_paused():
            obj, ms = state.box(image_id, BoxPrompt.of(body.x0, body.y0, body.x1, body.y1), tab, body.category_id)
            return _answer(obj, format, ms, t0)

    @api.post("/api/images/{image_id}/choice")
    def choose(image_id: DbInt, body: ChoiceIn, format: str = "runs", tab: str = Tab):
        return object_json(state.choose(image_id, body.index, tab), format)

    @api.delete("/api/images/{image_id}/clicks/last")
    def undo_click(image_id: DbInt, format: str = "runs", tab: str = Tab):
        return object_json(state.undo_click(image_id, tab), format)

    @api.post("/api/images/{image_id}/clicks/redo")
    def redo_click(image_id: DbInt, format: str = "runs", tab: str = Tab):
        return object_json(state.redo_click(image_id, tab), format)

    @api.delete("/api/images/{image_id}/clicks")
    def reset_clicks(image_id: DbInt, tab: str = Tab):
        state.reset_clicks(image_id, tab)
        return {"clicks": []}

    @api.get("/api/images/{image_id}/mask")
    def current_mask(image_id: DbInt, format: str = "runs", tab: str = Tab):
        return object_json(state.in_progress(image_id, tab), format)

    @api.get("/api/images/{image_id}/mask.png")
    def current_mask_png(image_id: DbInt, tab: str = Tab):
        mask = state.current_mask(image_id, tab)
        if mask is None or not mask.any():
            raise HTTPException(404, "no current mask: click on an object first")
        return Response(mask_png(mask), media_type="image/png")

    @api.get("/api/images/{image_id}/proposal")
    def proposal(image_id: DbInt, category_id: DbInt):
        check_category(store, category_id)
        return state.proposal(image_id, category_id)

    @api.post("/api/images/{image_id}/finish")
    def finish(image_id: DbInt, body: FinishIn, tab: str = Tab):
        return state.finish(image_id, body.category_id, tab)

    return api


def object_json(obj: InProgress, fmt: str) -> dict:
    """The object in progress as JSON: its mask in ``fmt``, clicks, box (or null) and
    ``choice`` {index, count} (count 0: no other masks to show), ``redo`` (undone prompts redo brings back),
    ``reference`` (the key of the reference its first click used, or null)."""
    box = obj.box
    return {**mask_payload(obj.mask, fmt, obj.offset, obj.image_hw), "clicks": [click_json(c) for c in obj.clicks],
            "box": None if box is None else [box.x0, box.y0, box.x1, box.y1],
            "choice": {"index": obj.choices[0], "count": obj.choices[1]}, "redo": obj.redo,
            "reference": obj.reference}


def _answer(obj: InProgress, fmt: str, predict_ms: float, t0: float) -> Response:
    """A click's or box's answer with its timings (json.dumps directly: FastAPI's re-encoding is slow)."""
    out = object_json(obj, fmt)
    out.update(predict_ms=round(predict_ms, 1), server_ms=round((time.perf_counter() - t0) * 1000, 1))
    return Response(json.dumps(out), media_type="application/json")
