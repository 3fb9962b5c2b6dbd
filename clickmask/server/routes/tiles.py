"""A large image's tile pyramid (deep zoom: its levels, one tile as a JPEG) and its patch grid."""

from __future__ import annotations

import cv2
from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel

from clickmask.errors import ClickmaskError
from clickmask.server.grid import grid_state, set_grid
from clickmask.server.routes.common import DbInt
from clickmask.server.state import AppState

#: JPEG quality of a tile (what the user sees; the model reads the file itself).
TILE_QUALITY = 90
#: Long side of the whole-image preview of a large image (``/api/images/{id}/file``).
PREVIEW_SIDE = 2048


def jpeg(rgb) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, TILE_QUALITY])
    if not ok:
        raise ClickmaskError("cannot encode a tile as JPEG")
    return buf.tobytes()


def preview(large) -> bytes:
    """The whole large image, scaled to at most :data:`PREVIEW_SIDE` on its long side, as a JPEG."""
    scale = min(1.0, PREVIEW_SIDE / max(large.width, large.height))
    size = (max(1, round(large.width * scale)), max(1, round(large.height * scale)))
    return jpeg(large.read(0, 0, large.width, large.height, size))


class GridIn(BaseModel):
    patch: int | None = None  # the patch side (pixels); a new side starts the done marks over
    done: list[int] | None = None  # the numbers of the patches marked done (row by row from the top-left)


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()

    def large_of(image_id: int):
        large = state.large.get(image_id)
        if large is None:
            raise ClickmaskError(f"{state.store.image(image_id)['path']}: not a large image (it has no tiles)")
        return large

    @api.get("/api/images/{image_id}/tiles")
    def tiles(image_id: DbInt):
        """Size, tile side, number of levels (0 = full resolution) and whether the overviews exist."""
        return large_of(image_id).describe()

    @api.get("/api/images/{image_id}/tiles/{level}/{col}/{row}.jpg")
    def tile(image_id: DbInt, level: int, col: int, row: int):
        data = jpeg(large_of(image_id).tile(level, col, row))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @api.get("/api/images/{image_id}/grid")
    def grid(image_id: DbInt):
        """Patch side, columns, rows, the patches marked done and each patch's number of finished objects."""
        large = large_of(image_id)
        return grid_state(state.store, image_id, large.width, large.height)

    @api.put("/api/images/{image_id}/grid")
    def change_grid(image_id: DbInt, body: GridIn):
        large = large_of(image_id)
        return set_grid(state.store, image_id, large.width, large.height, body.patch, body.done)

    return api
