"""Helpers shared by the format modules: export results, output paths, atomic writes, JSON reading."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from clickmask.errors import ClickmaskError
from clickmask.formats.annotations import AnnotationSet, ImageAnnotation, Instance, _bool_mask
from clickmask.geometry import Polygon, mask_to_polygons
from clickmask.io.atomic import atomic_link_or_copy, atomic_path, atomic_write_text
from clickmask.io.images import image_size, load_image, plain_image_format

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


#: What each format does with instances that have no category (``category_id`` None):
#: ``skipped`` (left out, counted), ``void`` (painted with the label maps' ignore
#: value) or ``kept`` (written with no category).
UNASSIGNED_POLICY: dict[str, str] = {
    "coco": "skipped",
    "voc": "void",
    "voc-color": "void",
    "instance-png": "kept",
    "labelme": "skipped",
    "yolo-seg": "skipped",
    "geojson": "skipped",
    "shapefile": "skipped",
    "gpkg": "skipped",
}


@dataclass
class ExportResult:
    """What an export wrote and what it had to leave out.

    ``files`` are the written paths in writing order (images placed in the
    dataset included). ``unassigned`` counts the instances without a category
    and ``unassigned_policy`` says what the format did with them
    (:data:`UNASSIGNED_POLICY`); ``skipped_unassigned`` is the number left out
    (``unassigned`` when the policy is ``skipped``, else 0). ``skipped_empty``
    counts instances with an empty mask, ``holes_dropped`` instances whose holes
    the format cannot hold. ``images_linked`` / ``images_copied`` /
    ``images_converted`` count the image files put into the dataset (see
    :func:`place_image`). ``warnings`` holds one line per problem, for the user.
    """

    format: str
    files: list[Path] = field(default_factory=list)
    unassigned: int = 0
    unassigned_policy: str = ""
    skipped_unassigned: int = 0
    skipped_empty: int = 0
    holes_dropped: int = 0
    images_linked: int = 0
    images_copied: int = 0
    images_converted: int = 0
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.unassigned_policy:
            self.unassigned_policy = UNASSIGNED_POLICY.get(self.format, "skipped")

    def unassigned_message(self) -> str:
        """One sentence for the user about the instances without a category ("" when there are none)."""
        n = self.unassigned
        if not n:
            return ""
        objects = "1 object" if n == 1 else f"{n} objects"
        was = "was" if n == 1 else "were"
        if self.unassigned_policy == "void":
            return (f"{objects} without a category {was} marked void (255, 'ignore') in the label maps "
                    "and left out of the object lists")
        if self.unassigned_policy == "kept":
            return f"{objects} without a category {was} exported as 'unassigned'"
        return f"{objects} without a category {was} left out"

    def summarise(self) -> None:
        """Turn the counters into warning lines (called once by the exporter)."""
        if self.unassigned:
            self.warnings.append(f"{self.format}: {self.unassigned_message()}")
        if self.skipped_empty:
            self.warnings.append(
                f"{self.format}: skipped {self.skipped_empty} instance(s) with an empty mask"
            )
        if self.holes_dropped:
            self.warnings.append(
                f"{self.format}: {self.holes_dropped} instance(s) have holes, which this format "
                "cannot hold; only their outer outlines were written"
            )

    def to_json(self, root: Path | None = None) -> dict[str, Any]:
        """The report as JSON for the API; file paths relative to ``root`` when they are inside it."""
        def rel(path: Path) -> str:
            if root is not None and Path(path).is_relative_to(root):
                return Path(path).relative_to(root).as_posix()
            return str(path)

        return {
            "format": self.format,
            "files": [rel(f) for f in self.files],
            "unassigned": {
                "count": self.unassigned,
                "policy": self.unassigned_policy,
                "left_out": self.skipped_unassigned,
                "message": self.unassigned_message(),
            },
            "skipped_empty": self.skipped_empty,
            "holes_dropped": self.holes_dropped,
            "images": {"linked": self.images_linked, "copied": self.images_copied,
                       "converted": self.images_converted},
            "warnings": list(self.warnings),
        }


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


#: Quality of the JPEG files written when an image must be converted for a JPEG-only layout (VOC).
JPEG_QUALITY = 95


def link_image(source: Path, target: Path, result: ExportResult) -> Path:
    """Put the file ``source`` at ``target`` as it is: a hard link, or a copy where links are impossible.

    See :func:`~clickmask.io.atomic.atomic_link_or_copy`; counted and recorded in ``result``.
    """
    try:
        linked = atomic_link_or_copy(source, target)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    if linked:
        result.images_linked += 1
    else:
        result.images_copied += 1
    result.files.append(target)
    return target


def place_image(
    source: Path,
    target_stem: Path,
    accepted: Mapping[str, tuple[str, ...]],
    convert_to: str,
    result: ExportResult,
) -> Path:
    """Put the image file ``source`` into a dataset at ``target_stem`` plus a suffix; return the path.

    ``accepted`` maps the Pillow format names the dataset's readers take to their
    file suffixes (lowercase, the first one used when the source's own suffix is
    not among them). A plain file (:func:`~clickmask.io.images.plain_image_format`)
    in an accepted format is hard-linked, or copied where links are impossible
    (:func:`~clickmask.io.atomic.atomic_link_or_copy`). Any other file is decoded
    as the app shows it (:func:`~clickmask.io.images.load_image`: upright, 8-bit
    RGB) and written as ``convert_to``: ``"PNG"`` (lossless) or ``"JPEG"``
    (quality :data:`JPEG_QUALITY`). Counted in ``result``.
    """
    fmt = plain_image_format(source)
    if fmt in accepted:
        suffixes = accepted[fmt]
        suffix = source.suffix.lower() if source.suffix.lower() in suffixes else suffixes[0]
        return link_image(source, target_stem.with_name(target_stem.name + suffix), result)
    target = target_stem.with_name(target_stem.name + {"PNG": ".png", "JPEG": ".jpg"}[convert_to])
    pixels = Image.fromarray(load_image(source))
    options = {"quality": JPEG_QUALITY} if convert_to == "JPEG" else {}
    try:
        with atomic_path(target) as temp:
            pixels.save(temp, format=convert_to, **options)
    except OSError as exc:
        raise _write_error(target, exc) from exc
    result.images_converted += 1
    result.files.append(target)
    return target


# --------------------------------------------------------------------------- #
# Train / val split
# --------------------------------------------------------------------------- #
#: One image in this many goes to the validation split (chosen by a hash of its file name).
VAL_EVERY = 5


def split_images(file_names: list[str]) -> tuple[list[str], bool]:
    """Per image ``"train"`` or ``"val"``, and whether the split holds out anything.

    An image is in ``val`` when the SHA-1 of its file name (UTF-8), read as a
    big-endian integer, is divisible by :data:`VAL_EVERY`: about one image in
    five, decided by the image alone, so it keeps its split when the project
    grows. When that leaves either split empty (a handful of images), every
    image is ``train`` and ``False`` is returned: the caller then validates on
    the training images.
    """
    splits = [
        "val" if int.from_bytes(hashlib.sha1(name.encode("utf-8")).digest(), "big") % VAL_EVERY == 0 else "train"
        for name in file_names
    ]
    if "train" not in splits or "val" not in splits:
        return ["train"] * len(file_names), False
    return splits, True


# --------------------------------------------------------------------------- #
# Polygons of instances
# --------------------------------------------------------------------------- #
def window_of(inst: Instance, result: ExportResult) -> tuple[np.ndarray, tuple[int, int]] | None:
    """(mask, offset) of an instance with a category and pixels, as kept: a window of a large image
    and where it starts, or the whole mask at (0, 0); None as :func:`exportable`."""
    if inst.category_id is None:
        return None
    mask = _bool_mask(inst.mask)
    if not mask.any():
        result.skipped_empty += 1
        return None
    return mask, (0, 0) if inst.offset is None else (int(inst.offset[0]), int(inst.offset[1]))


def instance_polygons(mask: np.ndarray, tolerance: float) -> list[Polygon]:
    """Polygons of an (H, W) mask; if ``tolerance`` drops every part, the exact ones.

    Traced on the mask's bounding box only (an object of a 20000 x 20000 image
    needs memory for its box, not for the image).
    """
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return []
    crop = mask[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]
    polys = mask_to_polygons(crop, tolerance)
    if not polys and tolerance > 0:
        polys = mask_to_polygons(crop, 0.0)
    shift = np.array([float(cols[0]), float(rows[0])])
    return [Polygon(p.exterior + shift, [h + shift for h in p.holes]) for p in polys]


def count_unassigned(annotations: AnnotationSet, result: ExportResult) -> None:
    """Count the instances without a category into ``result`` (left out unless the policy keeps them)."""
    n = sum(inst.category_id is None for img in annotations.images for inst in img.instances)
    result.unassigned += n
    if result.unassigned_policy == "skipped":
        result.skipped_unassigned += n


def exportable(inst: Instance, result: ExportResult, img: ImageAnnotation | None = None) -> np.ndarray | None:
    """The bool mask of an instance with a category and pixels, else None.

    Empty masks are counted in ``result``; instances without a category are not
    (count them once with :func:`count_unassigned`). An instance kept as a
    window of a large image (``inst.offset``) is expanded to the image ``img``.
    """
    if inst.category_id is None:
        return None
    if inst.offset is not None:
        if img is None:
            raise ClickmaskError("an instance kept as a window needs its image to be expanded")
        window = _bool_mask(inst.mask)
        x0, y0 = (int(v) for v in inst.offset)
        mask = np.zeros((img.height, img.width), dtype=bool)
        mask[y0: y0 + window.shape[0], x0: x0 + window.shape[1]] = window
    else:
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
