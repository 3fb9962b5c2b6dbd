"""Helpers shared by the format modules: export results, output paths, atomic writes, JSON reading."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from clickmask.errors import ClickmaskError
from clickmask.formats.annotations import AnnotationSet, ImageAnnotation, Instance, _bool_mask
from clickmask.geometry import Polygon, mask_to_polygons
from clickmask.io.atomic import atomic_path, atomic_write_text
from clickmask.io.images import image_size

logger = logging.getLogger("clickmask.formats")

#: The largest image size an annotation file may declare: what Pillow agrees to decode
#: (twice its decompression-bomb warning limit). Masks are rasterised at the declared size.
MAX_DECLARED_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)
#: Coordinates beyond this many image sizes from the image are a corrupt file, not a sloppy outline.
FAR_OUTSIDE = 10


def declared_size_problem(width: int, height: int) -> str | None:
    """Why a declared image size cannot be right, or None."""
    if width * height > MAX_DECLARED_PIXELS:
        return (f"declared image size {width}x{height} is larger than any image clickmask reads "
                f"({MAX_DECLARED_PIXELS:,} pixels)")
    return None


def far_outside_problem(points: np.ndarray, width: int, height: int) -> str | None:
    """Why (N, 2) x/y coordinates cannot belong to a ``width`` x ``height`` image, or None."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    bound = np.array([width, height], np.float64) * FAR_OUTSIDE
    bad = np.abs(pts) > bound
    if bad.any():
        x, y = pts[np.argmax(bad.any(axis=1))]
        return f"point ({x:.6g}, {y:.6g}) lies far outside the {width}x{height} image"
    return None


@dataclass
class ExportResult:
    """What an export wrote and what it had to leave out.

    ``files`` are the written paths in writing order; ``skipped_unassigned`` counts
    instances without a category that the format cannot hold, ``skipped_empty``
    instances with an empty mask, ``holes_dropped`` instances whose holes the
    format cannot hold. ``warnings`` holds one line per problem, for the user.
    """

    format: str
    files: list[Path] = field(default_factory=list)
    skipped_unassigned: int = 0
    skipped_empty: int = 0
    holes_dropped: int = 0
    warnings: list[str] = field(default_factory=list)

    def summarise(self) -> None:
        """Turn the counters into warning lines (called once by the exporter)."""
        if self.skipped_unassigned:
            self.warnings.append(
                f"{self.format}: skipped {self.skipped_unassigned} instance(s) without a category"
            )
        if self.skipped_empty:
            self.warnings.append(
                f"{self.format}: skipped {self.skipped_empty} instance(s) with an empty mask"
            )
        if self.holes_dropped:
            self.warnings.append(
                f"{self.format}: {self.holes_dropped} instance(s) have holes, which this format "
                "cannot hold; only their outer outlines were written"
            )


# --------------------------------------------------------------------------- #
# Output paths
# --------------------------------------------------------------------------- #
def output_stems(annotations: AnnotationSet) -> list[str]:
    """Per image, its file name without the suffix (``"sub/a.jpg"`` -> ``"sub/a"``).

    Raises when two images would share output files (``a.jpg`` and ``a.png``, or
    names differing only in case, which clash on Windows and macOS).
    """
    seen: dict[str, str] = {}
    stems: list[str] = []
    for img in annotations.images:
        p = PurePosixPath(img.file_name)
        stem = str(p.with_suffix("")) if p.suffix and p.stem else str(p)
        key = stem.casefold()
        if key in seen:
            raise ClickmaskError(
                f"images {seen[key]!r} and {img.file_name!r} would be exported to the same "
                f"file name {stem!r}; rename one of them"
            )
        seen[key] = img.file_name
        stems.append(stem)
    return stems


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` usable as one file-name component (letters, digits, ``.``, ``-``, ``_``)."""
    name = re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("._")
    return name[:100] or fallback


def check_image_files(annotations: AnnotationSet, image_root: Path | None) -> None:
    """With an image root, check every image exists there with the annotated size."""
    if image_root is None:
        return
    root = Path(image_root)
    if not root.is_dir():
        raise ClickmaskError(f"image root '{root}' is not a folder")
    for img in annotations.images:
        path = root / img.file_name
        width, height = image_size(path)
        if (width, height) != (img.width, img.height):
            raise ClickmaskError(
                f"image '{path}' is {width}x{height} but its annotation says {img.width}x{img.height} (WxH)"
            )


# --------------------------------------------------------------------------- #
# Writing
# --------------------------------------------------------------------------- #
def _write_error(path: Path, exc: OSError) -> ClickmaskError:
    reason = exc.strerror.lower() if exc.strerror else " ".join(str(exc).split())
    return ClickmaskError(f"cannot write '{path}': {reason}")


def write_text(path: Path, text: str, result: ExportResult) -> None:
    """Write UTF-8 text atomically and record the file in ``result``."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    result.files.append(path)


def write_json(path: Path, data: Any, result: ExportResult, *, indent: int | None = None) -> None:
    """Write JSON (UTF-8, non-ASCII kept) atomically; non-serialisable values raise."""
    try:
        text = json.dumps(data, ensure_ascii=False, indent=indent, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ClickmaskError(f"cannot write '{path}': value not JSON-serialisable ({exc})") from None
    write_text(path, text + "\n", result)


def write_image(path: Path, img: Image.Image, result: ExportResult) -> None:
    """Save a Pillow image as PNG atomically and record the file in ``result``."""
    try:
        with atomic_path(path) as temp:
            img.save(temp, format="PNG")
    except OSError as exc:
        raise _write_error(path, exc) from exc
    result.files.append(path)


def gray_png(array: np.ndarray) -> Image.Image:
    """(H, W) bool/uint8/uint16 array -> Pillow ``L`` or ``I;16`` image (bool as 0/255)."""
    data = np.asarray(array)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8) * np.uint8(255)
    if data.dtype != np.uint16:
        data = data.astype(np.uint8)
    img = Image.fromarray(np.ascontiguousarray(data))
    expected = "I;16" if data.dtype == np.uint16 else "L"
    if img.mode != expected:  # pragma: no cover - depends on the Pillow version
        raise ClickmaskError(f"cannot build a {expected} PNG (Pillow made mode {img.mode})")
    return img


def number(value: float) -> int | float:
    """A coordinate for JSON: ``int`` when integral (shorter, exact), else ``float``."""
    v = float(value)
    return int(v) if v.is_integer() else v


# --------------------------------------------------------------------------- #
# Polygons of instances
# --------------------------------------------------------------------------- #
def instance_polygons(mask: np.ndarray, tolerance: float) -> list[Polygon]:
    """Polygons of an (H, W) mask; if ``tolerance`` drops every part, the exact ones."""
    polys = mask_to_polygons(mask, tolerance)
    if not polys and tolerance > 0:
        polys = mask_to_polygons(mask, 0.0)
    return polys


def exportable(inst: Instance, result: ExportResult) -> np.ndarray | None:
    """The bool mask of an instance with a category and pixels, else None (counted in ``result``)."""
    if inst.category_id is None:
        result.skipped_unassigned += 1
        return None
    mask = _bool_mask(inst.mask)
    if not mask.any():
        result.skipped_empty += 1
        return None
    return mask


# --------------------------------------------------------------------------- #
# Reading
# --------------------------------------------------------------------------- #
def read_json(path: Path, kind: str) -> Any:
    """Parse a JSON file; raise ``cannot read <kind> '<path>': <problem>`` on any failure."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ClickmaskError(f"cannot read {kind} '{path}': file not found") from None
    except IsADirectoryError:
        raise ClickmaskError(f"cannot read {kind} '{path}': is a directory, not a file") from None
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise ClickmaskError(f"cannot read {kind} '{path}': {reason}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ClickmaskError(f"cannot read {kind} '{path}': not UTF-8 text") from None
    if not text.strip():
        raise ClickmaskError(f"cannot read {kind} '{path}': file is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClickmaskError(
            f"cannot read {kind} '{path}': invalid JSON at line {exc.lineno} column {exc.colno} ({exc.msg})"
        ) from None
    except RecursionError:
        raise ClickmaskError(f"cannot read {kind} '{path}': JSON nested too deeply") from None


def as_int(value: Any) -> int | None:
    """``value`` as an int if it is an integer (or an integral float), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def new_image(file_name: str, width: int, height: int) -> ImageAnnotation:
    """An :class:`ImageAnnotation` without instances."""
    return ImageAnnotation(file_name=file_name, width=width, height=height, instances=[])
