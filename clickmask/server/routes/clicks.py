"""Clicking an object: clicks, the current mask, first-click proposals and finishing the object."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response
from pydantic import BaseModel

from clickmask.server.imaging import mask_png
from clickmask.server.routes.common import DbInt, Tab, check_category, click_json, clicks_json, mask_payload
from clickmask.server.state import AppState


class ClickIn(BaseModel):
    x: float
    y: float
    positive: bool = True
    category_id: DbInt | None = None  # the object's category: its OPO adapter is used


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
            mask, clicks, ms = state.click(image_id, body.x, body.y, body.positive, tab, body.category_id)
            out = mask_payload(mask, format)
            out.update(clicks=[click_json(c) for c in clicks], predict_ms=round(ms, 1),
                       server_ms=round((time.perf_counter() - t0) * 1000, 1))
            return Response(json.dumps(out), media_type="application/json")  # skips FastAPI's slow re-encoding

    @api.delete("/api/images/{image_id}/clicks/last")
    def undo_click(image_id: DbInt, format: str = "runs", tab: str = Tab):
        mask, clicks = state.undo_click(image_id, tab)
        return {**mask_payload(mask, format), "clicks": [click_json(c) for c in clicks]}

    @api.delete("/api/images/{image_id}/clicks")
    def reset_clicks(image_id: DbInt, tab: str = Tab):
        state.reset_clicks(image_id, tab)
        return {"clicks": []}

    @api.get("/api/images/{image_id}/mask")
    def current_mask(image_id: DbInt, format: str = "runs", tab: str = Tab):
        return {**mask_payload(state.current_mask(image_id, tab), format), "clicks": clicks_json(state, image_id, tab)}

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
