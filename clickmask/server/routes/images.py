"""The project's images: list, open, files, review status, the per-image history (undo / redo) and z-order."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from clickmask.errors import ClickmaskError
from clickmask.project.masks import apply_stroke
from clickmask.server.checker import start_checker
from clickmask.server.routes.common import DbInt, StrokeIn, Tab, clicks_json
from clickmask.server.security import project_file
from clickmask.server.state import AppState


class StatusIn(BaseModel):
    status: str


class OrderIn(BaseModel):
    order: list[DbInt]


class DisplayIn(BaseModel):
    settings: dict[str, Any] | None = None


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    store = state.store

    @api.get("/api/status")
    def status():
        return state.status()

    @api.get("/api/images")
    def images():
        return {"images": store.list_images(), "counts": store.counts()}

    @api.post("/api/images/rescan")
    def rescan():
        """Register image files added to the folder since the project was opened."""
        added = store.sync_images()
        if added:
            start_checker(store)  # their sizes (or errors) from the headers, in the background
        return {"added": added, "images": store.list_images(), "counts": store.counts()}

    @api.get("/api/images/{image_id}")
    def image(image_id: DbInt, tab: str = Tab):
        return {**store.image(image_id), "annotations": store.list_instances(image_id),
                "history": store.history_state(image_id), "clicks": clicks_json(state, image_id, tab)}

    @api.post("/api/images/{image_id}/open")
    def open_image(image_id: DbInt):
        return state.open_image(image_id)

    @api.get("/api/images/{image_id}/file")
    def image_file(image_id: DbInt):
        large = state.large.get(image_id)
        if large is not None:  # a preview: the image itself is shown as tiles
            from clickmask.server.routes.tiles import preview

            return Response(preview(large), media_type="image/jpeg")
        path = store.image_path(image_id)
        data = state.images.jpeg(image_id, path, store.display(image_id))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @api.get("/api/images/{image_id}/raster")
    def image_raster(image_id: DbInt):
        """The image's coordinates: CRS, geotransform, bands and stretch of a GeoTIFF, else pixel coordinates."""
        from clickmask.io.display import raster_options
        from clickmask.io.rasters import describe_image

        bands, stretch = raster_options(store.display(image_id))
        large = state.large.get(image_id)
        return describe_image(store.image_path(image_id), name=store.image(image_id)["path"],
                              bands=bands, stretch=stretch, view=None if large is None else large.view())

    @api.get("/api/images/{image_id}/display")
    def image_display(image_id: DbInt):
        """A GeoTIFF's bands and stretch, a DICOM's window and patient/study fields, or a plain image's kind."""
        return state.display(image_id)

    @api.put("/api/images/{image_id}/display")
    def set_image_display(image_id: DbInt, body: DisplayIn):
        """Change (``settings``: an object) or reset (``null``) what the image shows and the model gets."""
        return state.set_display(image_id, body.settings)

    @api.get("/api/files/{rel:path}")
    def project_files(rel: str):
        return FileResponse(project_file(store.root, rel))

    @api.put("/api/images/{image_id}/status")
    def set_status(image_id: DbInt, body: StatusIn):
        return store.set_status(image_id, body.status)

    @api.get("/api/images/{image_id}/instances")
    def instances(image_id: DbInt):
        return store.list_instances(image_id)

    @api.post("/api/images/{image_id}/stroke")
    def stroke_new(image_id: DbInt, body: StrokeIn):
        large = state.large.get(image_id)
        if large is not None:  # painted on the stroke's window, not on an image-sized mask
            return _stroke_on_window(large, image_id, body)
        info = store.image(image_id)
        if info["width"] is None:
            state.load_image(image_id)
            info = store.image(image_id)
        mask = apply_stroke(np.zeros((info["height"], info["width"]), bool), body.points, body.radius, False)
        return store.add_instance(image_id, mask, body.category_id)

    @api.put("/api/images/{image_id}/order")
    def reorder(image_id: DbInt, body: OrderIn):
        return store.reorder(image_id, body.order)

    @api.post("/api/images/{image_id}/undo")
    def undo(image_id: DbInt):
        return {"undone": store.undo(image_id), "annotations": store.list_instances(image_id),
                "history": store.history_state(image_id)}

    @api.post("/api/images/{image_id}/redo")
    def redo(image_id: DbInt):
        return {"redone": store.redo(image_id), "annotations": store.list_instances(image_id),
                "history": store.history_state(image_id)}

    def _stroke_on_window(large, image_id: int, body: StrokeIn):
        pts = np.asarray(body.points, dtype=np.float64)
        r = body.radius + 1
        x0, y0 = (max(0, int(np.floor(v))) for v in pts.min(axis=0) - r)
        x1 = min(large.width, int(np.ceil(pts[:, 0].max() + r)))
        y1 = min(large.height, int(np.ceil(pts[:, 1].max() + r)))
        if x1 <= x0 or y1 <= y0:
            raise ClickmaskError(f"image {image_id}: the stroke lies outside the image")
        local = apply_stroke(np.zeros((y1 - y0, x1 - x0), bool), (pts - [x0, y0]).tolist(), body.radius, False)
        return store.add_instance(image_id, local, body.category_id, offset=(x0, y0))

    return api
