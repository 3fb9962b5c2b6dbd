"""Benchmark datasets on disk.

Layout of a dataset ``<root>/<NAME>/``::

    images/<stem>.(jpg|jpeg|png|bmp|tif|tiff)   stems may be nested: images/<seq>/<frame>.jpg
    masks/<stem>.png                            8-bit, object = value > 127
    ignore/<stem>.png                           optional, ignored = value > 127

or, when ``instances.json`` exists (COCO128), one sample per entry of that list
``[{"image": "images/<id>.jpg", "mask": "masks/<id>_<k>.png", "category": ...}, ...]``
with paths relative to the dataset folder, or, with instance maps (remote
sensing tiles, panoptic-style ground truth), one sample per object of at least
:data:`MIN_INSTANCE_AREA` pixels::

    images/<stem>.(tif|png|...)                 a GeoTIFF goes through clickmask.io.rasters
    instances/<stem>.png                        8- or 16-bit, one channel: 0 background, k = object k
    ignore/<stem>.png                           optional, as above

``layout="auto"`` picks ``instances.json`` when it exists, else the instance
maps when there is an ``instances/`` folder, else ``images/`` + ``masks/``;
``"list"``, ``"instance-maps"`` and ``"masks"`` force one.

Masks are returned as HxW bool arrays (H = rows, W = columns).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from clickmask.errors import DatasetError, ImageReadError

IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff"})
MASK_SUFFIX = ".png"
#: The smallest object (pixels) an instance map contributes; smaller ones are left out.
MIN_INSTANCE_AREA = 100
#: The values of ``layout`` in :func:`load_dataset`.
LAYOUTS = ("auto", "list", "instance-maps", "masks")
DATA_ENV = "CLICKMASK_DATA"
_EXIF_ORIENTATION = 0x0112


def default_data_root() -> Path:
    """The data root: ``$CLICKMASK_DATA`` if set, else ``../shared/data`` from the working directory."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser().resolve()
    return (Path.cwd() / ".." / "shared" / "data").resolve()


def _open(path: Path) -> Image.Image:
    """Open an image lazily (header only); raise ImageReadError naming the file."""
    try:
        return Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError(f"{path}: cannot read image ({exc})") from None


def _read_binary(path: Path) -> np.ndarray:
    """Read an 8-bit mask PNG as HxW bool: True where the value (max over colour channels) > 127."""
    with _open(path) as img:
        try:
            if img.mode == "1":
                return np.asarray(img, dtype=bool).copy()
            if img.mode == "P":
                img = img.convert("RGBA" if "transparency" in img.info else "RGB")
            elif img.mode not in ("L", "LA", "RGB", "RGBA"):
                img = img.convert("L")
            array = np.asarray(img, dtype=np.uint8)
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"{path}: cannot decode mask ({exc})") from None
    if array.ndim == 3:
        n_colour = 3 if array.shape[2] >= 3 else 1  # leave out an alpha channel
        array = array[:, :, :n_colour].max(axis=2)
    return array > 127


def image_size_hw(path: Path | str) -> tuple[int, int]:
    """Size ``(height, width)`` of an image as displayed, read from the header only.

    EXIF orientations 5..8 (rotated by 90 degrees) swap width and height, as
    ``PIL.ImageOps.exif_transpose`` would.
    """
    path = Path(path)
    with _open(path) as img:
        width, height = img.size
        try:
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        except Exception:  # a broken EXIF block: treat as unrotated
            orientation = 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return int(height), int(width)


def _mask_size_hw(path: Path) -> tuple[int, int]:
    """Stored size ``(height, width)`` of a mask (no EXIF handling: masks are stored upright)."""
    with _open(path) as img:
        width, height = img.size
    return int(height), int(width)


@dataclass
class Sample:
    """One object to segment: an image, its object mask and an optional ignore mask."""

    name: str
    image_path: Path
    mask_path: Path
    ignore_path: Path | None
    category: str | None = None
    #: With an instance map as ``mask_path``: the object's value in it (None: a 0/255 mask).
    instance_id: int | None = None

    def load_gt(self) -> np.ndarray:
        """The object mask, HxW bool (True = object)."""
        if self.instance_id is not None:
            return read_instance_map(self.mask_path) == self.instance_id
        return _read_binary(self.mask_path)

    def load_ignore(self) -> np.ndarray | None:
        """The ignore mask, HxW bool (True = excluded from IoU and clicks), or None.

        Raises DatasetError if its size differs from the object mask's.
        """
        if self.ignore_path is None:
            return None
        ignore = _read_binary(self.ignore_path)
        mask_hw = _mask_size_hw(self.mask_path)
        if ignore.shape != mask_hw:
            raise DatasetError(
                f"{self.ignore_path}: ignore mask is {_fmt_hw(ignore.shape)} but mask "
                f"{self.mask_path.name} is {_fmt_hw(mask_hw)}"
            )
        return ignore


def _fmt_hw(hw: tuple[int, ...]) -> str:
    """Format an (h, w) size as 'WxH' the way image sizes are usually written."""
    return f"{hw[1]}x{hw[0]}"


def check_sample_sizes(sample: Sample, image_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Check that the mask (and ignore mask) match the image size; return ``(h, w)``.

    ``image_hw`` is the image's displayed ``(height, width)``; when None it is read
    from the file header (see :func:`image_size_hw`). Raises DatasetError naming
    both files and sizes on a mismatch.
    """
    if image_hw is None:
        image_hw = image_size_hw(sample.image_path)
    image_hw = (int(image_hw[0]), int(image_hw[1]))
    others = [("mask", sample.mask_path)]
    if sample.ignore_path is not None:
        others.append(("ignore mask", sample.ignore_path))
    for what, path in others:
        hw = _mask_size_hw(path)
        if hw != image_hw:
            raise DatasetError(
                f"{path}: {what} is {_fmt_hw(hw)} but image {sample.image_path} is {_fmt_hw(image_hw)}"
            )
    return image_hw


def _scan(folder: Path, suffixes: frozenset[str]) -> dict[str, Path]:
    """Files under ``folder`` (recursive) with one of ``suffixes``, keyed by relative stem.

    A stem is the POSIX relative path without the extension (``seq/00000``).
    Two files with the same stem raise DatasetError.
    """
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        if path.name.startswith(".") or path.suffix.lower() not in suffixes or not path.is_file():
            continue
        stem = path.relative_to(folder).with_suffix("").as_posix()
        if stem in found:
            raise DatasetError(f"{folder}: two files for {stem!r}: {found[stem].name} and {path.name}")
        found[stem] = path
    return found


def _load_instances(folder: Path, json_path: Path) -> list[Sample]:
    """Samples listed in ``instances.json`` (one per instance), sorted by name."""
    try:
        entries = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{json_path}: cannot read instance list ({exc})") from None
    if not isinstance(entries, list):
        raise DatasetError(f"{json_path}: expected a JSON list of instances")
    if not entries:
        raise DatasetError(f"{json_path}: the instance list is empty")
    masks_dir = folder / "masks"
    samples: list[Sample] = []
    names: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) or not isinstance(
            entry.get("mask"), str
        ):
            raise DatasetError(f"{json_path}: instance {index} needs string fields 'image' and 'mask'")
        image_path = folder / entry["image"]
        mask_path = folder / entry["mask"]
        if not image_path.is_file():
            raise DatasetError(f"{json_path}: instance {index}: image {image_path} does not exist")
        if not mask_path.is_file():
            raise DatasetError(f"{json_path}: instance {index}: mask {mask_path} does not exist")
        try:
            name = mask_path.relative_to(masks_dir).with_suffix("").as_posix()
        except ValueError:
            name = mask_path.relative_to(folder).with_suffix("").as_posix()
        if name in names:
            raise DatasetError(f"{json_path}: mask {entry['mask']} is listed twice")
        names.add(name)
        ignore_path = folder / "ignore" / f"{name}{MASK_SUFFIX}"
        category = entry.get("category")
        samples.append(
            Sample(
                name=name,
                image_path=image_path,
                mask_path=mask_path,
                ignore_path=ignore_path if ignore_path.is_file() else None,
                category=None if category is None else str(category),
            )
        )
    samples.sort(key=lambda s: s.name)
    return samples


def _load_folders(folder: Path) -> list[Sample]:
    """Samples from ``images/``, ``masks/`` and optional ``ignore/``, sorted by stem."""
    images_dir, masks_dir, ignore_dir = folder / "images", folder / "masks", folder / "ignore"
    if not images_dir.is_dir():
        raise DatasetError(f"{folder}: no images/ folder")
    images = _scan(images_dir, IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{images_dir}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if not masks_dir.is_dir():
        raise DatasetError(f"{folder}: no masks/ folder")
    masks = _scan(masks_dir, frozenset({MASK_SUFFIX}))
    ignores = _scan(ignore_dir, frozenset({MASK_SUFFIX})) if ignore_dir.is_dir() else {}

    for stem, image_path in images.items():
        if stem not in masks:
            raise DatasetError(f"{image_path}: image has no mask (expected {masks_dir / stem}{MASK_SUFFIX})")
    for stem, mask_path in masks.items():
        if stem not in images:
            raise DatasetError(f"{mask_path}: mask has no image in {images_dir}")
    for stem, ignore_path in ignores.items():
        if stem not in images:
            raise DatasetError(f"{ignore_path}: ignore mask has no image in {images_dir}")

    return [
        Sample(name=stem, image_path=images[stem], mask_path=masks[stem], ignore_path=ignores.get(stem))
        for stem in sorted(images)
    ]


def read_instance_map(path: Path) -> np.ndarray:
    """An instance map as an HxW integer array (0 = background, k = object k).

    Raises DatasetError for a map with colour channels or non-integer values.
    """
    with _open(path) as img:
        try:
            array = np.asarray(img)
        except (OSError, ValueError) as exc:
            raise ImageReadError(f"{path}: cannot decode instance map ({exc})") from None
        mode = img.mode
    if array.ndim != 2 or array.dtype.kind not in "iub":
        raise DatasetError(f"{path}: an instance map must be one channel of integers "
                           f"(8- or 16-bit grayscale PNG), got mode {mode}")
    return array.astype(np.int64, copy=False)


def _load_instance_maps(folder: Path, min_area: int = MIN_INSTANCE_AREA) -> list[Sample]:
    """One sample per object of ``min_area`` pixels or more in ``instances/<stem>.png``, sorted by name."""
    images_dir, maps_dir, ignore_dir = folder / "images", folder / "instances", folder / "ignore"
    if not images_dir.is_dir():
        raise DatasetError(f"{folder}: no images/ folder")
    if not maps_dir.is_dir():
        raise DatasetError(f"{folder}: no instances/ folder")
    images = _scan(images_dir, IMAGE_SUFFIXES)
    if not images:
        raise DatasetError(f"{images_dir}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    maps = _scan(maps_dir, frozenset({MASK_SUFFIX}))
    ignores = _scan(ignore_dir, frozenset({MASK_SUFFIX})) if ignore_dir.is_dir() else {}
    for stem, image_path in images.items():
        if stem not in maps:
            raise DatasetError(f"{image_path}: image has no instance map (expected {maps_dir / stem}{MASK_SUFFIX})")
    for stem, map_path in maps.items():
        if stem not in images:
            raise DatasetError(f"{map_path}: instance map has no image in {images_dir}")
    samples: list[Sample] = []
    for stem in sorted(images):
        counts = np.bincount(read_instance_map(maps[stem]).ravel())
        for value in np.flatnonzero(counts >= max(1, min_area)):
            if value == 0:
                continue
            samples.append(Sample(name=f"{stem}#{int(value)}", image_path=images[stem], mask_path=maps[stem],
                                  ignore_path=ignores.get(stem), instance_id=int(value)))
    if not samples:
        raise DatasetError(f"{maps_dir}: no object of {min_area} pixels or more")
    return samples


def load_dataset(root: Path | str, name: str, limit: int | None = None, layout: str = "auto",
                 min_area: int = MIN_INSTANCE_AREA) -> list[Sample]:
    """The samples of dataset ``name`` under data root ``root``, sorted by name.

    ``limit`` keeps the first N; ``layout`` is one of :data:`LAYOUTS` (module
    docstring); ``min_area`` the smallest object an instance map contributes.
    Raises DatasetError (one line naming the folder or file) if the folder is
    missing or empty, or an image and its mask are not paired.
    """
    if limit is not None and limit < 0:
        raise DatasetError(f"dataset {name}: limit must be >= 0, got {limit}")
    if layout not in LAYOUTS:
        raise DatasetError(f"dataset {name}: unknown layout {layout!r} (use one of {', '.join(LAYOUTS)})")
    folder = Path(root).expanduser() / name
    if not folder.is_dir():
        raise DatasetError(
            f"dataset folder {folder} does not exist (data root {Path(root)}; "
            f"set the data root with --data-root or {DATA_ENV})"
        )
    json_path = folder / "instances.json"
    if layout == "auto":
        layout = "list" if json_path.is_file() else "instance-maps" if (folder / "instances").is_dir() else "masks"
    if layout == "list":
        if not json_path.is_file():
            raise DatasetError(f"{folder}: no instances.json")
        samples = _load_instances(folder, json_path)
    elif layout == "instance-maps":
        samples = _load_instance_maps(folder, min_area)
    else:
        samples = _load_folders(folder)
    return samples if limit is None else samples[:limit]
