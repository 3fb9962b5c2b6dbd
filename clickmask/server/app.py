"""The FastAPI application: the JSON API under ``/api`` and the web front end under ``/``.

The routes live in :mod:`clickmask.server.routes`, one module per resource
(images, clicks, instances, categories, project, reference); this module adds the
access checks (localhost only without a token, the token otherwise, a
same-origin proof on every state-changing request: see docs/security.md) and
turns :class:`~clickmask.errors.ClickmaskError` into one-line JSON errors.
"""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from clickmask.errors import ClickmaskError, ImageReadError, VideoReadError, VolumeReadError
from clickmask.project.errors import ConflictError, NotFoundError
from clickmask.server.click_queue import ServerBusy
from clickmask.server.routes import categories, clicks, images, instances, project, reference, sequences, tiles
from clickmask.server.security import TOKEN_COOKIE, BodyLimit, cross_origin_refusal, is_localhost, token_ok
from clickmask.server.state import AppState
from clickmask.web import static_dir

ROUTES = (images, tiles, clicks, instances, categories, project, reference, sequences)


def create_app(state: AppState) -> FastAPI:
    """Build the app around a prepared :class:`AppState`."""
    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        state.close()  # uvicorn's graceful shutdown (Ctrl+C, SIGTERM): stop the trainer before the process ends

    app = FastAPI(title="clickmask", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.cm = state
    app.add_middleware(BodyLimit)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if state.local_only and not is_localhost(_hostname(request.headers.get("host", ""))):
            return JSONResponse({"detail": "this server only answers requests to localhost"}, status_code=403)
        if not token_ok(request, state.token):
            return JSONResponse({"detail": "missing or wrong access token"}, status_code=401)
        refusal = cross_origin_refusal(request)
        if refusal:
            return JSONResponse({"detail": refusal}, status_code=403)
        response = await call_next(request)
        if state.token and request.query_params.get("token") == state.token:
            response.set_cookie(TOKEN_COOKIE, state.token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(ClickmaskError)
    async def clickmask_error(_request: Request, exc: ClickmaskError):
        code = 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 400
        if isinstance(exc, (ImageReadError, VideoReadError, VolumeReadError)):  # a file that cannot be read
            code = 422
        if isinstance(exc, ServerBusy):
            code = 503
        return JSONResponse({"detail": str(exc)}, status_code=code)

    static = static_dir()

    @app.get("/", response_class=HTMLResponse)
    def index():
        page = static / "index.html"
        if not (static / "vendor" / "konva.min.js").is_file():
            return HTMLResponse("<h1>clickmask: the front end is not built</h1><p>Run <code>make setup</code> "
                                "(it runs npm in clickmask/web).</p>", status_code=500)
        return FileResponse(page, headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=static), name="static")
    for module in ROUTES:
        app.include_router(module.router(state))
    return app


def _hostname(host: str) -> str:
    """The host name of a Host header (``[::1]:8765`` -> ``::1``, ``localhost:8765`` -> ``localhost``)."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
