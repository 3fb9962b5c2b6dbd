"""Exports (to a folder in the project, or as a zip download), imports and project settings."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask

from clickmask.errors import ClickmaskError
from clickmask.formats import DEFAULT_TOLERANCE, FORMATS, UNASSIGNED_POLICY, ExportResult
from clickmask.formats._common import safe_name
from clickmask.project.exchange import export_project_report, guess_format, import_annotations
from clickmask.project.scan import PROJECT_DIR
from clickmask.project.settings import check_setting, user_setting
from clickmask.server.routes.common import inside
from clickmask.server.state import AppState

EXPORT_DIR = Path(PROJECT_DIR) / "exports"
#: Where zip downloads are built (same filesystem as the images, so they are hard-linked, not copied).
DOWNLOAD_DIR = Path(PROJECT_DIR) / "downloads"
#: A download folder older than this is a leftover of a crash and removed before the next download.
STALE_DOWNLOAD_SECONDS = 3600
#: Files stored in a zip as they are (already compressed); others are deflated.
_STORED_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".tif", ".tiff", ".zip"})


class ExportIn(BaseModel):
    format: str
    tolerance: float | None = None  # None: the format's default (0 for coco, 1 px for labelme and yolo-seg)
    crs: str | None = None  # geojson/shapefile/gpkg: reproject, e.g. "EPSG:4326"; None = each raster's own


class ImportIn(BaseModel):
    path: str
    format: str | None = None  # coco | labelme | geojson | shapefile | gpkg; None = guess from the file


class UploadIn(BaseModel):
    """An annotation file chosen in the browser: its name and its text (a COCO JSON or one LabelMe JSON)."""

    name: str = Field(min_length=1, max_length=255)
    text: str


class SettingIn(BaseModel):
    value: Any


#: Files the import picker lists at most (the project's JSON files, nearest the top first).
MAX_IMPORT_FILES = 500


def importable_files(root: Path) -> list[dict[str, str]]:
    """The project's ``*.json`` files (``kind``: file) and the folders holding them (``kind``: folder, a
    LabelMe folder), outside ``.clickmask``, as paths relative to ``root``, shallow ones first."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f).relative_to(root) for f in sorted(filenames)
                  if f.lower().endswith(".json") and not f.startswith(".")]
        if len(found) >= MAX_IMPORT_FILES:
            break
    found = sorted(found[:MAX_IMPORT_FILES], key=lambda p: (len(p.parts), str(p)))
    folders = sorted({p.parent for p in found if p.parent != Path(".")}, key=lambda p: (len(p.parts), str(p)))
    return ([{"path": p.as_posix(), "kind": "file"} for p in found]
            + [{"path": p.as_posix(), "kind": "folder"} for p in folders])


def export_json(result: ExportResult, out: Path, uncategorised: int) -> dict[str, Any]:
    """The API's answer for an export: the report plus the folder and the project's uncategorised count."""
    return {"dir": str(out), "uncategorised": uncategorised, **result.to_json(out)}


def zip_folder(folder: Path, target: Path) -> None:
    """Zip ``folder`` into ``target``, the folder itself as the zip's top-level entry.

    Entries use ``/`` and are sorted; empty folders get their own entry.
    Images (already compressed) are stored, other files deflated.
    """
    with zipfile.ZipFile(target, "w", allowZip64=True) as archive:
        for current, dirs, files in os.walk(folder):
            dirs.sort()
            here = Path(current)
            rel = here.relative_to(folder.parent).as_posix()
            if not dirs and not files:
                archive.writestr(rel + "/", b"")
            for name in sorted(files):
                path = here / name
                stored = path.suffix.lower() in _STORED_SUFFIXES
                archive.write(path, f"{rel}/{name}",
                              compress_type=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)


def _download_folder(root: Path) -> Path:
    """A new empty folder for building one download: in the project (hard links work), else the temp dir."""
    parent = root / DOWNLOAD_DIR
    try:
        parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        for old in parent.iterdir():
            with contextlib.suppress(OSError):
                if old.name.startswith("export-") and now - old.stat().st_mtime > STALE_DOWNLOAD_SECONDS:
                    shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix="export-", dir=parent))
    except OSError:
        return Path(tempfile.mkdtemp(prefix="clickmask-export-"))


def router(state: AppState) -> APIRouter:
    """The routes, bound to the server's state."""
    api = APIRouter()
    store = state.store

    @api.post("/api/export")
    def export(body: ExportIn):
        """Export into ``.clickmask/exports/<format>-<time>/`` in the project; answers the export report."""
        out = store.root / EXPORT_DIR / f"{body.format}-{time.strftime('%Y%m%d-%H%M%S')}"
        result = export_project_report(store, body.format, out, tolerance=body.tolerance, crs=body.crs)
        return export_json(result, out, store.counts()["uncategorised"])

    @api.get("/api/export/formats")
    def export_formats():
        """The formats, what each does with objects without a category, and how many there are now."""
        unassigned = store.counts()["uncategorised"]
        formats = []
        for fmt in FORMATS:
            preview = ExportResult(fmt, unassigned=unassigned)
            formats.append({"name": fmt, "unassigned_policy": UNASSIGNED_POLICY[fmt],
                            "tolerance": DEFAULT_TOLERANCE.get(fmt), "unassigned_message": preview.unassigned_message()})
        return {"unassigned": unassigned, "formats": formats}

    @api.get("/api/export/{fmt}.zip")
    def export_zip(fmt: str, tolerance: float | None = Query(None), crs: str | None = Query(None, max_length=200)):
        """The export as a zip download, built in a temporary folder that is removed once it is sent.

        Reads the project only (a GET, so a plain link can download it). The zip
        holds one folder ``<project>-<format>-<time>/`` with the export as a
        bundle: images included where the format has them, no absolute paths.
        """
        if fmt not in FORMATS:
            raise ClickmaskError(f"unknown export format {fmt!r}: use one of {', '.join(sorted(FORMATS))}")
        name = f"{safe_name(store.root.name, 'project')}-{fmt}-{time.strftime('%Y%m%d-%H%M%S')}"
        work = _download_folder(store.root)
        try:
            result = export_project_report(store, fmt, work / name, tolerance=tolerance, bundle=True, crs=crs)
            target = work / f"{name}.zip"
            zip_folder(work / name, target)
            shutil.rmtree(work / name)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        headers = {
            "Cache-Control": "no-store",
            "X-Clickmask-Unassigned": str(result.unassigned),
            "X-Clickmask-Unassigned-Policy": result.unassigned_policy,
            "X-Clickmask-Warnings": str(len(result.warnings)),
        }
        return FileResponse(target, media_type="application/zip", filename=f"{name}.zip", headers=headers,
                            background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))

    @api.post("/api/import")
    def import_file(body: ImportIn):
        source = inside(store.root, body.path)
        fmt = body.format or guess_format(source)
        return import_annotations(store, source, fmt)

    @api.get("/api/import/files")
    def import_files():
        """What the import picker offers: the project's JSON files, and the folders holding them (LabelMe)."""
        return {"files": importable_files(store.root)}

    @api.post("/api/import/upload")
    def import_upload(body: UploadIn):
        """Import a file chosen in the browser (from anywhere on the user's computer).

        It is written to a temporary file in the project (a LabelMe file's
        ``imagePath`` is then read as relative to the project folder), imported
        and removed.
        """
        name = Path(body.name).name
        if Path(name).suffix.lower() != ".json":
            raise ClickmaskError(f"{name}: import a COCO JSON or a LabelMe JSON file (.json)")
        work = store.root / PROJECT_DIR / "imports"
        work.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".json", dir=work)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body.text)
            source = Path(tmp)
            try:
                fmt = guess_format(source)
                if fmt == "labelme":  # its imagePath is relative to its folder: put it where the images are
                    placed = store.root / f".{name}.clickmask-import-{os.getpid()}.json"
                    os.replace(source, placed)
                    source = placed
                return import_annotations(store, source, fmt)
            except ClickmaskError as exc:  # name the user's file, not the temporary one
                raise ClickmaskError(str(exc).replace(str(source), name)) from None
            finally:
                source.unlink(missing_ok=True)
        finally:
            Path(tmp).unlink(missing_ok=True)

    @api.get("/api/settings/{key}")
    def get_setting(key: str):
        return {"key": key, "value": store.get_setting(user_setting(key))}

    @api.put("/api/settings/{key}")
    def put_setting(key: str, body: SettingIn):
        value = check_setting(key, body.value)
        store.set_setting(key, value)
        return {"key": key, "value": value}

    return api
