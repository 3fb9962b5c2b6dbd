"""The FastAPI application: JSON API under ``/api`` and the web front end under ``/``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from clickmask.errors import ClickmaskError, ImageReadError
from clickmask.project.errors import ConflictError, NotFoundError
from clickmask.project.masks import apply_stroke, decode_mask, mask_fields
from clickmask.server.imaging import mask_png, mask_png_b64, mask_runs
from clickmask.server.security import TOKEN_COOKIE, is_localhost, project_file, token_ok
from clickmask.server.state import AppState
from clickmask.web import static_dir

EXPORT_DIR = Path(".clickmask") / "exports"
# Each browser tab sends its own id, so two tabs on one image do not share (and mix up) their clicks.
Tab = Header("", alias="x-clickmask-tab", max_length=64)


class ClickIn(BaseModel):
    x: float
    y: float
    positive: bool = True
    category_id: int | None = None  # the object's category: its OPO adapter is used


class FinishIn(BaseModel):
    category_id: int | None = None


class StatusIn(BaseModel):
    status: str


class InstancePatch(BaseModel):
    version: int
    category_id: int | None = None
    set_category: bool = False
    hidden: bool | None = None
    polygons: list[dict[str, Any]] | None = None


class StrokeIn(BaseModel):
    points: list[list[float]] = Field(min_length=1)
    radius: float
    erase: bool = False
    version: int | None = None
    category_id: int | None = None


class OrderIn(BaseModel):
    order: list[int]


class CategoryIn(BaseModel):
    name: str
    color: str | None = None


class CategoryPatch(BaseModel):
    name: str | None = None
    color: str | None = None


class FileIn(BaseModel):
    path: str = "categories.json"


class ExportIn(BaseModel):
    format: str
    tolerance: float = 0.0


class ImportIn(BaseModel):
    path: str
    format: str | None = None  # coco | labelme; None = guess from the file


class SettingIn(BaseModel):
    value: Any


def _mask_payload(mask, fmt: str) -> dict[str, Any]:
    if fmt not in ("runs", "png", "rle"):
        raise ClickmaskError(f"unknown mask format {fmt!r}: use runs, png or rle")
    if mask is None or not mask.any():
        return {"empty": True, "png": None, "runs": None, "area": 0}
    out: dict[str, Any] = {"empty": False}
    if fmt == "runs":
        out["runs"] = mask_runs(mask)
    if fmt == "png":
        out["png"] = mask_png_b64(mask)
    if fmt == "rle":
        out.update(mask_fields(mask, 1.0))
    out["area"] = int(mask.sum())
    return out


def create_app(state: AppState) -> FastAPI:
    """Build the app around a prepared :class:`AppState`."""
    app = FastAPI(title="clickmask", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.cm = state
    store = state.store

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if state.local_only and not is_localhost(_hostname(request.headers.get("host", ""))):
            return JSONResponse({"detail": "this server only answers requests to localhost"}, status_code=403)
        if not token_ok(request, state.token):
            return JSONResponse({"detail": "missing or wrong access token"}, status_code=401)
        response = await call_next(request)
        if state.token and request.query_params.get("token") == state.token:
            response.set_cookie(TOKEN_COOKIE, state.token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(ClickmaskError)
    async def clickmask_error(_request: Request, exc: ClickmaskError):
        code = 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 400
        if isinstance(exc, ImageReadError):
            code = 422
        return JSONResponse({"detail": str(exc)}, status_code=code)

    # ------------------------------------------------------------ front end
    static = static_dir()

    @app.get("/", response_class=HTMLResponse)
    def index():
        page = static / "index.html"
        if not (static / "vendor" / "konva.min.js").is_file():
            return HTMLResponse("<h1>clickmask: the front end is not built</h1><p>Run <code>make setup</code> "
                                "(it runs npm in clickmask/web).</p>", status_code=500)
        return FileResponse(page, headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=static), name="static")

    # ------------------------------------------------------------ project
    @app.get("/api/status")
    def status():
        return state.status()

    @app.get("/api/images")
    def images():
        return {"images": store.list_images(), "counts": store.counts()}

    @app.get("/api/images/{image_id}")
    def image(image_id: int, tab: str = Tab):
        return {**store.image(image_id), "annotations": store.list_instances(image_id),
                "history": store.history_state(image_id), "clicks": _clicks(state, image_id, tab)}

    @app.post("/api/images/{image_id}/open")
    def open_image(image_id: int):
        return state.open_image(image_id)

    @app.get("/api/images/{image_id}/file")
    def image_file(image_id: int):
        path = store.image_path(image_id)
        data = state.images.jpeg(image_id, path)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

    @app.get("/api/files/{rel:path}")
    def project_files(rel: str):
        return FileResponse(project_file(store.root, rel))

    @app.put("/api/images/{image_id}/status")
    def set_status(image_id: int, body: StatusIn):
        return store.set_status(image_id, body.status)

    # ------------------------------------------------------------ clicks
    @app.post("/api/images/{image_id}/clicks")
    def click(image_id: int, body: ClickIn, format: str = "runs", tab: str = Tab):
        t0 = time.perf_counter()
        _mask_payload(None, format)  # validates the format before the click changes anything
        with state.adaptation.training_paused():  # the OPO trainer process stops until the answer is ready
            mask, clicks, ms = state.click(image_id, body.x, body.y, body.positive, tab, body.category_id)
            out = _mask_payload(mask, format)
            out.update(clicks=[_click(c) for c in clicks], predict_ms=round(ms, 1),
                       server_ms=round((time.perf_counter() - t0) * 1000, 1))
            return Response(json.dumps(out), media_type="application/json")  # skips FastAPI's slow re-encoding

    @app.delete("/api/images/{image_id}/clicks/last")
    def undo_click(image_id: int, format: str = "runs", tab: str = Tab):
        mask, clicks = state.undo_click(image_id, tab)
        return {**_mask_payload(mask, format), "clicks": [_click(c) for c in clicks]}

    @app.delete("/api/images/{image_id}/clicks")
    def reset_clicks(image_id: int, tab: str = Tab):
        state.reset_clicks(image_id, tab)
        return {"clicks": []}

    @app.get("/api/images/{image_id}/mask")
    def current_mask(image_id: int, format: str = "runs", tab: str = Tab):
        return {**_mask_payload(state.current_mask(image_id, tab), format), "clicks": _clicks(state, image_id, tab)}

    @app.get("/api/images/{image_id}/mask.png")
    def current_mask_png(image_id: int, tab: str = Tab):
        mask = state.current_mask(image_id, tab)
        if mask is None or not mask.any():
            raise HTTPException(404, "no current mask: click on an object first")
        return Response(mask_png(mask), media_type="image/png")

    @app.get("/api/images/{image_id}/proposal")
    def proposal(image_id: int, category_id: int):
        _check_category(store, category_id)
        return state.proposal(image_id, category_id)

    @app.delete("/api/categories/{category_id}/click-bank")
    def reset_click_bank(category_id: int):
        _check_category(store, category_id)
        state.proposals.reset(category_id)
        return {"category_id": category_id, "bank_size": 0}

    @app.get("/api/categories/{category_id}/adaptation")
    def adaptation(category_id: int):
        _check_category(store, category_id)
        return {**state.adaptation.status(category_id), "first_click": state.granularity.status(category_id),
                "proposals": state.proposals.size(category_id)}

    @app.delete("/api/categories/{category_id}/adaptation")
    def reset_adaptation(category_id: int):
        """Forget everything the category learned: its adapter, first-click memory and proposals."""
        _check_category(store, category_id)
        state.granularity.reset(category_id)
        state.proposals.reset(category_id)
        return {**state.adaptation.reset(category_id), "first_click": state.granularity.status(category_id),
                "proposals": state.proposals.size(category_id)}

    @app.post("/api/images/{image_id}/finish")
    def finish(image_id: int, body: FinishIn, tab: str = Tab):
        return state.finish(image_id, body.category_id, tab)

    # ------------------------------------------------------------ instances
    @app.get("/api/images/{image_id}/instances")
    def instances(image_id: int):
        return store.list_instances(image_id)

    @app.patch("/api/instances/{instance_id}")
    def patch_instance(instance_id: int, body: InstancePatch):
        category = body.category_id if body.set_category else ...
        return store.update_instance(instance_id, body.version, polygons=body.polygons,
                                     category_id=category, hidden=body.hidden)

    @app.post("/api/instances/{instance_id}/stroke")
    def stroke_instance(instance_id: int, body: StrokeIn):
        if body.version is None:
            raise ClickmaskError("a stroke on an instance needs its version")
        mask = apply_stroke(decode_mask(store.instance(instance_id)["rle"]), body.points, body.radius, body.erase)
        if not mask.any():
            store.delete_instance(instance_id, body.version)
            return {"deleted": instance_id}
        return store.update_instance(instance_id, body.version, mask=mask)

    @app.post("/api/images/{image_id}/stroke")
    def stroke_new(image_id: int, body: StrokeIn):
        info = store.image(image_id)
        if info["width"] is None:
            state.load_image(image_id)
            info = store.image(image_id)
        mask = apply_stroke(np.zeros((info["height"], info["width"]), bool), body.points, body.radius, False)
        return store.add_instance(image_id, mask, body.category_id)

    @app.delete("/api/instances/{instance_id}")
    def delete_instance(instance_id: int, version: int):
        store.delete_instance(instance_id, version)
        return {"deleted": instance_id}

    @app.put("/api/images/{image_id}/order")
    def reorder(image_id: int, body: OrderIn):
        return store.reorder(image_id, body.order)

    @app.post("/api/images/{image_id}/undo")
    def undo(image_id: int):
        return {"undone": store.undo(image_id), "annotations": store.list_instances(image_id),
                "history": store.history_state(image_id)}

    @app.post("/api/images/{image_id}/redo")
    def redo(image_id: int):
        return {"redone": store.redo(image_id), "annotations": store.list_instances(image_id),
                "history": store.history_state(image_id)}

    # ------------------------------------------------------------ categories
    @app.get("/api/categories")
    def categories():
        return store.list_categories()

    @app.post("/api/categories")
    def add_category(body: CategoryIn):
        return store.add_category(body.name, body.color)

    @app.patch("/api/categories/{category_id}")
    def patch_category(category_id: int, body: CategoryPatch):
        return store.update_category(category_id, body.name, body.color)

    @app.delete("/api/categories/{category_id}")
    def delete_category(category_id: int):
        store.delete_category(category_id)
        # what it learned goes with it (a new category may get its id again)
        state.adaptation.reset(category_id)
        state.granularity.reset(category_id)
        state.proposals.reset(category_id)
        return {"deleted": category_id}

    @app.post("/api/categories/save")
    def save_categories(body: FileIn):
        path = _writable_path(store.root, body.path)
        store.save_categories(path)
        return {"path": path.relative_to(store.root).as_posix()}

    @app.post("/api/categories/load")
    def load_categories(body: FileIn):
        return store.load_categories(project_file(store.root, body.path))

    # ------------------------------------------------------------ export, settings
    @app.post("/api/export")
    def export(body: ExportIn):
        from clickmask.project.exchange import export_project

        out = store.root / EXPORT_DIR / f"{body.format}-{time.strftime('%Y%m%d-%H%M%S')}"
        files = export_project(store, body.format, out, tolerance=body.tolerance)
        return {"dir": str(out), "uncategorised": store.counts()["uncategorised"], "files": [str(Path(f).relative_to(out)) if Path(f).is_relative_to(out) else str(f)
                                           for f in files]}

    @app.post("/api/import")
    def import_annotations(body: ImportIn):
        from clickmask.project.exchange import guess_format, import_annotations

        source = _inside(store.root, body.path)
        fmt = body.format or guess_format(source)
        return import_annotations(store, source, fmt)

    @app.get("/api/settings/{key}")
    def get_setting(key: str):
        return {"key": key, "value": store.get_setting(key)}

    @app.put("/api/settings/{key}")
    def put_setting(key: str, body: SettingIn):
        store.set_setting(key, body.value)
        return {"key": key, "value": body.value}

    return app


def _check_category(store, category_id: int) -> None:
    """404 unless the category exists."""
    if not any(c["id"] == category_id for c in store.list_categories()):
        raise NotFoundError(f"category {category_id} does not exist")


def _hostname(host: str) -> str:
    """The host name of a Host header (``[::1]:8765`` -> ``::1``, ``localhost:8765`` -> ``localhost``)."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _click(c) -> dict[str, Any]:
    return {"x": c.x, "y": c.y, "positive": c.positive}


def _clicks(state: AppState, image_id: int, tab: str) -> list[dict[str, Any]]:
    return [_click(c) for c in state.clicks_of(image_id, tab)]


def _inside(root: Path, rel: str) -> Path:
    """An existing file or folder inside the project (403 outside or in .clickmask, 404 if missing)."""
    target = (root / rel).resolve()
    try:
        inside = target.relative_to(root)
    except ValueError:
        raise HTTPException(403, "path outside the project") from None
    if inside.parts and inside.parts[0] == ".clickmask" and "exports" not in inside.parts[:2]:
        raise HTTPException(403, "the project database is not readable")
    if not target.exists():
        raise HTTPException(404, f"{rel}: no such file or folder in the project")
    return target


def _writable_path(root: Path, rel: str) -> Path:
    """A file path inside the project (not in .clickmask) for saving."""
    target = (root / rel).resolve()
    try:
        inside = target.relative_to(root)
    except ValueError:
        raise HTTPException(403, "path outside the project") from None
    if not inside.parts or inside.parts[0] == ".clickmask" or target.suffix.lower() not in (".json", ".txt"):
        raise HTTPException(403, "category files are .json or .txt files inside the project")
    return target
