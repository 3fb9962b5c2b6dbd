"""Access token checks and safe resolution of paths inside the project."""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from fastapi import HTTPException, Request

from clickmask.errors import ClickmaskError
from clickmask.project.scan import PROJECT_DIR

TOKEN_COOKIE = "clickmask_token"
TOKEN_HEADER = "x-clickmask-token"
#: Sent by the clickmask page with every request. A page of another origin cannot add a custom
#: header without a CORS preflight, which this server never grants, so its presence on a
#: state-changing request proves that the request comes from the clickmask page itself.
TAB_HEADER = "x-clickmask-tab"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def is_localhost(host: str) -> bool:
    """True for localhost and loopback addresses."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without an access token."""
    if not is_localhost(host) and not token:
        raise ClickmaskError(
            f"--host {host} is reachable from other machines: set an access token with --token (or bind to 127.0.0.1)")


def request_token(request: Request) -> str | None:
    """The token a request carries (header, cookie or ``?token=``)."""
    return (request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
            or request.query_params.get("token"))


def token_ok(request: Request, token: str | None) -> bool:
    if not token:
        return True
    given = request_token(request)
    return given is not None and secrets.compare_digest(given.encode(), token.encode())


def cross_origin_refusal(request: Request) -> str | None:
    """Why a state-changing request is refused as possibly cross-site, or None when it is same-origin.

    With or without a token: a POST/PUT/PATCH/DELETE needs the ``X-Clickmask-Tab``
    header, and an ``Origin`` header, when the browser sends one, must be this
    server's own origin (another port of the same host is another origin).
    """
    if request.method not in UNSAFE_METHODS:
        return None
    if TAB_HEADER not in request.headers:
        return "state-changing requests must come from the clickmask page (X-Clickmask-Tab header missing)"
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host', '')}":
        return f"cross-origin request from {origin[:100]} refused"
    return None


MAX_BODY = 8 * 1024 * 1024  # bytes of a request body: a 20,000-point stroke or a detailed polygon is < 1 MB
#: Larger bodies some routes take: an annotation file uploaded for import (a COCO JSON of a big dataset).
ROUTE_BODY_LIMITS = {"/api/import/upload": 256 * 1024 * 1024}


class BodyLimit:
    """ASGI middleware: refuse request bodies over ``limit`` bytes with 413 (declared or streamed);
    the routes of :data:`ROUTE_BODY_LIMITS` have their own limit."""

    def __init__(self, app, limit: int = MAX_BODY) -> None:
        self.app = app
        self.default = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = ROUTE_BODY_LIMITS.get(scope.get("path", ""), self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _too_large(send, limit)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await _too_large(send, limit)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    body = f'{{"detail": "request body larger than {limit // (1024 * 1024)} MB refused"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def project_file(root: Path, rel: str) -> Path:
    """Resolve ``rel`` inside the project folder (403 outside it or in ``.clickmask``, 404 if missing)."""
    if "\x00" in rel:
        raise HTTPException(404, "no such file")
    target = (root / rel).resolve()
    try:
        inside = target.relative_to(root)
    except ValueError:
        raise HTTPException(403, "path outside the project") from None
    if inside.parts and inside.parts[0] == PROJECT_DIR:
        raise HTTPException(403, "the project database is not served")
    if not target.is_file():
        raise HTTPException(404, "no such file")
    return target
