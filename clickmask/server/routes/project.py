"""Exports, imports and project settings."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from clickmask.project.settings import check_setting, user_setting
from clickmask.project.exchange import export_project, guess_format, import_annotations
from clickmask.server.routes.common import inside
from clickmask.server.state import AppState

EXPORT_DIR = Path(".clickmask") / "exports"


class ExportIn(BaseModel):
    format: str
    tolerance: float = 0.0


class ImportIn(BaseModel):
    path: str
    format: str | None = None  # coco | labelme; None = guess from the file


class SettingIn(BaseModel):
    value: Any


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    store = state.store

    @api.post("/api/export")
    def export(body: ExportIn):
        out = store.root / EXPORT_DIR / f"{body.format}-{time.strftime('%Y%m%d-%H%M%S')}"
        files = export_project(store, body.format, out, tolerance=body.tolerance)
        return {"dir": str(out), "uncategorised": store.counts()["uncategorised"], "files": [str(Path(f).relative_to(out)) if Path(f).is_relative_to(out) else str(f)
                                           for f in files]}

    @api.post("/api/import")
    def import_file(body: ImportIn):
        source = inside(store.root, body.path)
        fmt = body.format or guess_format(source)
        return import_annotations(store, source, fmt)

    @api.get("/api/settings/{key}")
    def get_setting(key: str):
        return {"key": key, "value": store.get_setting(user_setting(key))}

    @api.put("/api/settings/{key}")
    def put_setting(key: str, body: SettingIn):
        value = check_setting(key, body.value)
        store.set_setting(key, value)
        return {"key": key, "value": value}

    return api
