"""References (issue 24): make one from a finished object, show it, switch it on or off, clear it.

A reference belongs to a category (``{key}`` = the category id, or ``none`` for
objects without a category); a first click with that category uses it while it
is on. See :mod:`clickmask.server.references`.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from clickmask.server.references import APP_USES
from clickmask.server.routes.common import DbInt
from clickmask.server.state import AppState


class ReferenceIn(BaseModel):
    """``instance_id``: the reference object; ``negative_instance_id``: a second object of its image
    (its mask minus the reference object is the negative: the rest of the object, or a neighbour), or
    null; ``category_id``: the category it belongs to (left out: the object's own, null: no category)."""

    instance_id: DbInt
    negative_instance_id: DbInt | None = None
    category_id: DbInt | None = None


class ReferencePatch(BaseModel):
    enabled: bool


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    refs = state.references

    @api.get("/api/references")
    def references():
        return {"references": refs.describe_all(), "available": refs.available, "reason": refs.reason,
                "uses": APP_USES.text()}

    @api.post("/api/references")
    def make_reference(body: ReferenceIn):
        category = body.category_id if "category_id" in body.model_fields_set else ...
        return state.make_reference(body.instance_id, body.negative_instance_id, category)

    @api.get("/api/references/{key}")
    def reference(key: str):
        return refs.describe(key)

    @api.patch("/api/references/{key}")
    def switch_reference(body: ReferencePatch, key: str):
        return refs.set_enabled(key, body.enabled)

    @api.delete("/api/references/{key}")
    def clear_reference(key: str):
        refs.clear(key)
        return {"deleted": key}

    @api.get("/api/references/{key}/thumbnail.png")
    def thumbnail(key: str):
        record = refs.record(key)
        png = refs.thumbnail(key, state.load_image(record["image_id"]))
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    return api
