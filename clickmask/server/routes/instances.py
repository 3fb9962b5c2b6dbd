"""Finished objects: edit (polygons, category, visibility), brush strokes, delete."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel

from clickmask.errors import ClickmaskError
from clickmask.geometry import decode_rle_window
from clickmask.io.pyramid import is_large
from clickmask.project.masks import apply_stroke, decode_mask, edit_box
from clickmask.server.routes.common import DbInt, StrokeIn
from clickmask.server.state import AppState


class InstancePatch(BaseModel):
    version: DbInt
    category_id: DbInt | None = None
    set_category: bool = False
    hidden: bool | None = None
    polygons: list[dict[str, Any]] | None = None


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    store = state.store

    @api.patch("/api/instances/{instance_id}")
    def patch_instance(instance_id: DbInt, body: InstancePatch):
        category = body.category_id if body.set_category else ...
        return store.update_instance(instance_id, body.version, polygons=body.polygons,
                                     category_id=category, hidden=body.hidden)

    @api.post("/api/instances/{instance_id}/stroke")
    def stroke_instance(instance_id: DbInt, body: StrokeIn):
        if body.version is None:
            raise ClickmaskError("a stroke on an instance needs its version")
        rle = store.instance(instance_id)["rle"]
        offset = None
        if is_large(rle["size"][1], rle["size"][0]):  # painted on the box of the object and the stroke only
            pts = np.asarray(body.points, dtype=np.float64)
            x0, y0, x1, y1 = edit_box(rle, [pts], body.radius + 1)
            offset = (x0, y0)
            mask = apply_stroke(decode_rle_window(rle, (x0, y0, x1, y1)), (pts - [x0, y0]).tolist(), body.radius,
                                body.erase)
        else:
            mask = apply_stroke(decode_mask(rle), body.points, body.radius, body.erase)
        if not mask.any():
            store.delete_instance(instance_id, body.version)
            return {"deleted": instance_id}
        return store.update_instance(instance_id, body.version, mask=mask, offset=offset)

    @api.delete("/api/instances/{instance_id}")
    def delete_instance(instance_id: DbInt, version: DbInt):
        store.delete_instance(instance_id, version)
        return {"deleted": instance_id}

    return api
