"""What several route modules share: the tab header, mask payloads, category and path checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typing import Annotated

import annotated_types
from fastapi import Header, HTTPException
from pydantic import BaseModel, Field

from clickmask.errors import ClickmaskError
from clickmask.project.errors import NotFoundError
from clickmask.project.masks import mask_fields
from clickmask.server.imaging import mask_png_b64, mask_runs
from clickmask.server.security import TAB_HEADER
from clickmask.server.state import AppState

#: An id or version as the database holds it (a 64-bit integer): others are refused with 422, not a 500.
DbInt = Annotated[int, annotated_types.Ge(0), annotated_types.Le(2**63 - 1)]
#: Points of one brush stroke (a long drag sends a few thousand).
MAX_STROKE_POINTS = 20_000

# Each browser tab sends its own id, so two tabs on one image do not share (and mix up) their clicks.
Tab = Header("", alias=TAB_HEADER, max_length=64)


class StrokeIn(BaseModel):
    points: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(min_length=1,
                                                                                  max_length=MAX_STROKE_POINTS)
    radius: float = Field(gt=0, le=10_000)
    erase: bool = False
    version: DbInt | None = None
    category_id: DbInt | None = None


def mask_payload(mask, fmt: str, offset: tuple[int, int] | None = None,
                 image_hw: tuple[int, int] | None = None) -> dict[str, Any]:
    """A mask as JSON in the asked format (``runs``, ``png`` or ``rle``), with its area.

    A large image's mask is a window of it: ``offset`` ``[x0, y0]`` says where
    the runs and the PNG start; the RLE, polygons and bbox are the image's
    (``image_hw``: its height and width).
    """
    if fmt not in ("runs", "png", "rle"):
        raise ClickmaskError(f"unknown mask format {fmt!r}: use runs, png or rle")
    if mask is None or not mask.any():
        return {"empty": True, "png": None, "runs": None, "area": 0}
    out: dict[str, Any] = {"empty": False}
    if offset is not None:
        out["offset"] = [int(offset[0]), int(offset[1])]
    if fmt == "runs":
        out["runs"] = mask_runs(mask)
        if offset is not None:
            out["runs"]["offset"] = out["offset"]
    if fmt == "png":
        out["png"] = mask_png_b64(mask)
    if fmt == "rle":
        out.update(mask_fields(mask, 1.0, offset, image_hw))
    out["area"] = int(mask.sum())
    return out


def click_json(c) -> dict[str, Any]:
    return {"x": c.x, "y": c.y, "positive": c.positive}


def clicks_json(state: AppState, image_id: int, tab: str) -> list[dict[str, Any]]:
    return [click_json(c) for c in state.clicks_of(image_id, tab)]


def check_category(store, category_id: int) -> None:
    """404 unless the category exists."""
    if not any(c["id"] == category_id for c in store.list_categories()):
        raise NotFoundError(f"category {category_id} does not exist")


def _resolve(root: Path, rel: str) -> tuple[Path, Path]:
    """(absolute target, its path relative to the project); 403 outside the project."""
    target = (root / rel).resolve()
    try:
        return target, target.relative_to(root)
    except ValueError:
        raise HTTPException(403, "path outside the project") from None


def inside(root: Path, rel: str) -> Path:
    """An existing file or folder inside the project (403 outside or in .clickmask, 404 if missing)."""
    target, within = _resolve(root, rel)
    if within.parts and within.parts[0] == ".clickmask" and "exports" not in within.parts[:2]:
        raise HTTPException(403, "the project database is not readable")
    if not target.exists():
        raise HTTPException(404, f"{rel}: no such file or folder in the project")
    return target


def writable_path(root: Path, rel: str) -> Path:
    """A file path inside the project (not in .clickmask) for saving."""
    target, within = _resolve(root, rel)
    if not within.parts or within.parts[0] == ".clickmask" or target.suffix.lower() not in (".json", ".txt"):
        raise HTTPException(403, "category files are .json or .txt files inside the project")
    return target
