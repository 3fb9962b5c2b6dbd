"""The in-memory annotation model that every export and import format uses.

* :class:`Category` -- a class with an id ``>= 1`` (0 is the background of
  label maps), a name and an optional ``"#rrggbb"`` colour.
* :class:`Instance` -- one object: an HxW bool mask of the full image, its
  category (``None`` = not assigned yet), a ``z_order`` (higher is drawn on top
  where instances overlap) and free-form ``attributes``.
* :class:`ImageAnnotation` -- the instances of one image; ``file_name`` is
  relative to the image root with ``/`` separators.
* :class:`AnnotationSet` -- categories and images.

Instances are drawn in increasing ``z_order``; ties keep their list order (a
stable sort), so a later instance wins. The *instance number* of an instance is
its 1-based rank in that order; :func:`instance_map`, the ``instance-png`` and
``labelme`` exports use it.
"""

from __future__ import annotations

import colorsys
import operator
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from clickmask.errors import ClickmaskError

__all__ = [
    "Category",
    "Instance",
    "ImageAnnotation",
    "AnnotationSet",
    "default_palette",
    "category_colors",
    "parse_color",
    "drawing_order",
    "label_map",
    "instance_map",
    "validate",
    "check_file_name",
]

_COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


@dataclass
class Category:
    """A class of objects: ``id >= 1``, unique ``name``, colour ``"#rrggbb"`` or ``""`` (default)."""

    id: int
    name: str
    color: str = ""


@dataclass
class Instance:
    """One annotated object.

    Attributes
    ----------
    mask : (H, W) bool array covering the full image, or (with ``offset``) a window of it.
    category_id : id of a :class:`Category`, or ``None`` when unassigned.
    z_order : drawing order; higher is drawn on top in label maps.
    id : optional identifier (not used by the exporters).
    attributes : free-form JSON-serialisable values.
    offset : ``(x0, y0)`` when ``mask`` is a window of the image starting at that pixel (an object of a
        very large image, kept without an image-sized mask); None when it covers the image.
    """

    mask: np.ndarray
    category_id: int | None
    z_order: int = 0
    id: int | None = None
    attributes: dict = field(default_factory=dict)
    offset: tuple[int, int] | None = None


@dataclass
class ImageAnnotation:
    """The instances of one image; ``file_name`` is relative to the image root, ``/`` separators."""

    file_name: str
    width: int
    height: int
    instances: list[Instance] = field(default_factory=list)


@dataclass
class AnnotationSet:
    """Categories and annotated images."""

    categories: list[Category] = field(default_factory=list)
    images: list[ImageAnnotation] = field(default_factory=list)


# --------------------------------------------------------------------------- #
# Colours
# --------------------------------------------------------------------------- #
def _voc_color(index: int) -> tuple[int, int, int]:
    """PASCAL VOC pseudo-colour of label ``index`` (0..255): bits spread over R, G, B."""
    r = g = b = 0
    bit = 7
    while index:
        r |= (index & 1) << bit
        g |= ((index >> 1) & 1) << bit
        b |= ((index >> 2) & 1) << bit
        index >>= 3
        bit -= 1
    return r, g, b


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def default_palette(n: int) -> list[str]:
    """``n`` distinct, deterministic ``"#rrggbb"`` colours, none of them black.

    Colour ``k`` (0-based) is the PASCAL VOC colour of label ``k + 1`` for the
    first 255 colours, so category ``i`` in a VOC-style palette keeps its usual
    colour; further colours step through hues by the golden ratio.
    """
    try:
        count = operator.index(n)
    except TypeError:
        raise ClickmaskError(f"palette size must be an integer, got {n!r}") from None
    if count < 0:
        raise ClickmaskError(f"palette size must not be negative, got {count}")
    colors = [_voc_color(i) for i in range(1, min(count, 255) + 1)]
    used = set(colors) | {(0, 0, 0)}
    k = 0
    while len(colors) < count:
        k += 1
        hue = (k * 0.6180339887498949) % 1.0
        sat = (0.95, 0.7, 0.5)[k % 3]
        val = (0.95, 0.75, 0.55, 0.85)[(k // 3) % 4]
        rgb = tuple(int(round(c * 255)) for c in colorsys.hsv_to_rgb(hue, sat, val))
        if rgb not in used:
            used.add(rgb)  # type: ignore[arg-type]
            colors.append(rgb)  # type: ignore[arg-type]
    return [_hex(c) for c in colors]


def parse_color(color: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> ``(r, g, b)`` ints 0..255; raises on any other text."""
    if not isinstance(color, str) or not _COLOR_RE.match(color):
        raise ClickmaskError(f"colour must be '#rrggbb', got {color!r}")
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def category_colors(categories: list[Category]) -> dict[int, tuple[int, int, int]]:
    """RGB colour of each category id: its own colour, else the VOC colour of its id.

    Ids above 255 without a colour get a colour from :func:`default_palette`.
    """
    out: dict[int, tuple[int, int, int]] = {}
    for cat in categories:
        if cat.color:
            out[cat.id] = parse_color(cat.color)
        elif cat.id < 256:
            out[cat.id] = _voc_color(cat.id)
        else:
            out[cat.id] = parse_color(default_palette(cat.id)[cat.id - 1])
    return out


# --------------------------------------------------------------------------- #
# Label maps
# --------------------------------------------------------------------------- #
def _bool_mask(mask: np.ndarray) -> np.ndarray:
    arr = np.asarray(mask)
    return arr if arr.dtype == np.bool_ else arr != 0


def drawing_order(image_ann: ImageAnnotation) -> list[int]:
    """Indices of ``image_ann.instances`` in drawing order (increasing z_order, stable)."""
    return sorted(range(len(image_ann.instances)), key=lambda i: image_ann.instances[i].z_order)


def label_map(image_ann: ImageAnnotation, categories: list[Category]) -> np.ndarray:
    """Class map of one image: (H, W) category id per pixel, 0 = background.

    Instances are painted in increasing ``z_order`` (see :func:`drawing_order`)
    so the highest wins; unassigned instances are not painted. The dtype is
    uint8 when every category id is below 256, else uint16.
    """
    ids = {c.id for c in categories}
    max_id = max(ids, default=0)
    if max_id > 65535:
        raise ClickmaskError(f"category id {max_id} does not fit a 16-bit label map")
    dtype = np.uint8 if max_id < 256 else np.uint16
    out = np.zeros((image_ann.height, image_ann.width), dtype=dtype)
    for i in drawing_order(image_ann):
        inst = image_ann.instances[i]
        if inst.category_id is None:
            continue
        if inst.category_id not in ids:
            raise ClickmaskError(
                f"image '{image_ann.file_name}': instance {i} has unknown category id {inst.category_id}"
            )
        out[_checked_mask(image_ann, i)] = inst.category_id
    return out


def instance_map(image_ann: ImageAnnotation) -> np.ndarray:
    """Instance map of one image: (H, W) uint16, 0 = background, ``k`` = instance number.

    Instance number ``k`` is the 1-based rank in drawing order (increasing
    ``z_order``), painted in that order so the highest wins. Unassigned
    instances are included.
    """
    order = drawing_order(image_ann)
    if len(order) > 65535:
        raise ClickmaskError(f"image '{image_ann.file_name}': more than 65535 instances")
    out = np.zeros((image_ann.height, image_ann.width), dtype=np.uint16)
    for k, i in enumerate(order, start=1):
        out[_checked_mask(image_ann, i)] = k
    return out


def _checked_mask(image_ann: ImageAnnotation, index: int, expand: bool = True) -> np.ndarray:
    """The instance's mask over the whole image (a window expanded, unless ``expand`` is False),
    checked against the image's size."""
    inst = image_ann.instances[index]
    mask = _bool_mask(inst.mask)
    if inst.offset is None:
        if mask.shape != (image_ann.height, image_ann.width):
            raise ClickmaskError(
                f"image '{image_ann.file_name}': instance {index} mask is {_shape(mask)} "
                f"but the image is {image_ann.height}x{image_ann.width} (HxW)"
            )
        return mask
    x0, y0 = (int(v) for v in inst.offset)
    if mask.ndim != 2 or x0 < 0 or y0 < 0 or x0 + mask.shape[1] > image_ann.width \
            or y0 + mask.shape[0] > image_ann.height:
        raise ClickmaskError(
            f"image '{image_ann.file_name}': instance {index} mask ({_shape(mask)} at {x0},{y0}) "
            f"is not inside the image ({image_ann.height}x{image_ann.width}, HxW)"
        )
    if not expand:
        return mask
    full = np.zeros((image_ann.height, image_ann.width), dtype=bool)
    full[y0: y0 + mask.shape[0], x0: x0 + mask.shape[1]] = mask
    return full


def _shape(arr: np.ndarray) -> str:
    return "x".join(str(s) for s in arr.shape) if arr.ndim else "a scalar"


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #
def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def check_file_name(file_name: Any, where: str) -> str:
    """Return ``file_name`` if it is a relative ``/``-separated path inside the image root."""
    if not isinstance(file_name, str) or not file_name:
        raise ClickmaskError(f"{where}: file name must be a non-empty string, got {file_name!r}")
    if "\\" in file_name:
        raise ClickmaskError(f"{where}: file name {file_name!r} must use '/' separators")
    parts = file_name.split("/")
    if file_name.startswith("/") or re.match(r"^[A-Za-z]:", file_name):
        raise ClickmaskError(f"{where}: file name {file_name!r} must be relative to the image root")
    if any(p in ("", ".", "..") for p in parts):
        raise ClickmaskError(f"{where}: file name {file_name!r} must not contain empty, '.' or '..' parts")
    if any(ord(ch) < 32 for ch in file_name):
        raise ClickmaskError(f"{where}: file name {file_name!r} contains control characters")
    return str(PurePosixPath(file_name))


def validate(annotations: AnnotationSet) -> None:
    """Check an :class:`AnnotationSet`; raise a one-line :class:`ClickmaskError` on the first problem.

    Categories: ids are unique integers >= 1, names unique non-empty strings,
    colours ``""`` or ``"#rrggbb"``. Images: unique valid relative file names,
    width and height >= 1. Instances: (H, W) bool or integer masks of the image
    size, known (or ``None``) category ids, integer z_order, dict attributes.
    """
    if not isinstance(annotations, AnnotationSet):
        raise ClickmaskError(f"expected an AnnotationSet, got {type(annotations).__name__}")
    ids: set[int] = set()
    names: set[str] = set()
    for k, cat in enumerate(annotations.categories):
        if not isinstance(cat, Category):
            raise ClickmaskError(f"categories[{k}]: expected a Category, got {type(cat).__name__}")
        if not _is_int(cat.id) or cat.id < 1:
            raise ClickmaskError(f"category {cat.name!r}: id must be an integer >= 1, got {cat.id!r}")
        if cat.id in ids:
            raise ClickmaskError(f"category {cat.name!r}: id {cat.id} is used twice")
        if not isinstance(cat.name, str) or not cat.name.strip():
            raise ClickmaskError(f"category {cat.id}: name must be a non-empty string, got {cat.name!r}")
        if cat.name in names:
            raise ClickmaskError(f"category {cat.id}: name {cat.name!r} is used twice")
        if cat.color:
            try:
                parse_color(cat.color)
            except ClickmaskError as exc:
                raise ClickmaskError(f"category {cat.name!r}: {exc}") from None
        ids.add(int(cat.id))
        names.add(cat.name)
    files: set[str] = set()
    for k, img in enumerate(annotations.images):
        if not isinstance(img, ImageAnnotation):
            raise ClickmaskError(f"images[{k}]: expected an ImageAnnotation, got {type(img).__name__}")
        where = f"image {img.file_name!r}"
        check_file_name(img.file_name, where)
        if img.file_name in files:
            raise ClickmaskError(f"{where} is listed twice")
        files.add(img.file_name)
        for key in ("width", "height"):
            value = getattr(img, key)
            if not _is_int(value) or value < 1:
                raise ClickmaskError(f"{where}: {key} must be an integer >= 1, got {value!r}")
        if not isinstance(img.instances, list):
            raise ClickmaskError(f"{where}: instances must be a list")
        for i, inst in enumerate(img.instances):
            if not isinstance(inst, Instance):
                raise ClickmaskError(f"{where}: instances[{i}] is a {type(inst).__name__}, not an Instance")
            mask = np.asarray(inst.mask)
            if mask.dtype != np.bool_ and not np.issubdtype(mask.dtype, np.integer):
                raise ClickmaskError(f"{where}: instance {i} mask must be bool, got dtype {mask.dtype}")
            _checked_mask(img, i, expand=False)
            cid = inst.category_id
            if cid is not None and (not _is_int(cid) or cid not in ids):
                raise ClickmaskError(f"{where}: instance {i} has unknown category id {inst.category_id!r}")
            if not _is_int(inst.z_order):
                raise ClickmaskError(
                    f"{where}: instance {i} z_order must be an integer, got {inst.z_order!r}"
                )
            if inst.id is not None and not _is_int(inst.id):
                raise ClickmaskError(f"{where}: instance {i} id must be an integer or None, got {inst.id!r}")
            if not isinstance(inst.attributes, dict):
                raise ClickmaskError(f"{where}: instance {i} attributes must be a dict")
