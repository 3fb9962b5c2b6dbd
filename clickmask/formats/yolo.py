"""Ultralytics YOLO segmentation dataset, laid out as Ultralytics documents it.

Layout::

    <out_dir>/data.yaml                    path, train, val, nc, names (index -> name)
    <out_dir>/images/train/<name>.<ext>    the images (linked, copied or converted)
    <out_dir>/images/val/<name>.<ext>      about 1 image in 5, when there are enough images
    <out_dir>/labels/train/<name>.txt      one line per object: "<class> x1 y1 x2 y2 ..."
    <out_dir>/labels/val/<name>.txt

Ultralytics finds an image's labels by replacing the last ``/images/`` in its
path with ``/labels/`` and the suffix with ``.txt``; ``<name>`` is the image's
file name without its suffix, sub-folders kept, except that a folder called
``images`` inside it is renamed ``images_`` (it would be the last ``/images/``).

Images: a plain JPEG, PNG, BMP, TIFF or WebP file (8-bit RGB or grayscale, one
frame, not rotated by EXIF) is hard-linked into ``images/<split>/``, or copied
where links are impossible (another filesystem); any other image is written as
the PNG of what the app shows (upright RGB), so the trainer sees the pixels that
were annotated. Without an image root no images are placed (a warning says so).

Split: an image is in ``val`` when a hash of its file name says so (about one in
five, stable as the project grows: :func:`~clickmask.formats._common.split_images`).
With too few images for both splits, every image is in ``train`` and
``data.yaml`` says ``val: images/train`` (validation on the training images).

Lines: ``<class>`` is the 0-based index of the category in the category list
(``names`` in ``data.yaml``), then the polygon's vertices in the pixel-corner
convention (0 = left/top edge of the image, W/H = right/bottom edge) divided by
the image width/height, 6 decimals. YOLO holds one polygon per object: the
outlines of an object's parts and of its holes are joined into one ring by
zero-width bridges between nearest vertices
(:func:`~clickmask.geometry.join_rings`, the idea of Ultralytics' own COCO
converter), so an object is one line, and its holes stay holes when the ring is
filled. Lines are in drawing order (increasing z_order). Every image gets a
label file, empty when it has no objects (a background image). Instances
without a category (YOLO has no class for them) and empty ones are skipped and
counted.

``data.yaml`` has ``path`` = the export folder (absolute) so Ultralytics finds
the dataset from any working folder; a bundle (an export meant to be moved,
e.g. zipped) leaves ``path`` out, and Ultralytics then uses the folder of
``data.yaml``. Names are written as JSON strings, which are YAML double-quoted
scalars.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from clickmask.errors import ClickmaskError
from clickmask.formats._common import (
    ExportResult,
    exportable,
    instance_polygons,
    output_stems,
    place_image,
    split_images,
    write_text,
)
from clickmask.formats.annotations import AnnotationSet, drawing_order
from clickmask.geometry import join_rings

__all__ = ["export_yolo_seg", "data_yaml", "YOLO_IMAGE_FORMATS"]

#: Pillow formats Ultralytics reads, with their suffixes (the first is used when the file's own is not one).
YOLO_IMAGE_FORMATS: dict[str, tuple[str, ...]] = {
    "JPEG": (".jpg", ".jpeg"),
    "PNG": (".png",),
    "BMP": (".bmp",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
}


def data_yaml(annotations: AnnotationSet, out_dir: Path | None, val: str) -> str:
    """Text of ``data.yaml``; ``out_dir`` None leaves ``path`` out (the folder of this file is used)."""
    lines = ["# YOLO segmentation dataset exported by clickmask (Ultralytics layout)"]
    if out_dir is None:
        lines.append("# no 'path': Ultralytics uses the folder of this file")
    else:
        lines.append(f"path: {json.dumps(str(Path(out_dir).resolve()), ensure_ascii=False)}")
    lines.append("train: images/train")
    if val == "images/train":
        lines.append("# too few images to hold some out: validation runs on the training images")
    lines += [
        f"val: {val}",
        f"nc: {len(annotations.categories)}",
        "names:" if annotations.categories else "names: {}",
    ]
    for k, cat in enumerate(annotations.categories):
        lines.append(f"  {k}: {json.dumps(cat.name, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def _dataset_names(annotations: AnnotationSet) -> list[str]:
    """Per image, its name under ``images/<split>/`` without suffix (no inner ``images`` folder)."""
    names: list[str] = []
    seen: dict[str, str] = {}
    for img, stem in zip(annotations.images, output_stems(annotations)):
        parts = PurePosixPath(stem).parts
        name = "/".join([*("images_" if p == "images" else p for p in parts[:-1]), parts[-1]])
        key = name.casefold()
        if key in seen:
            raise ClickmaskError(
                f"images {seen[key]!r} and {img.file_name!r} would be exported to the same "
                f"YOLO file name {name!r}; rename one of them"
            )
        seen[key] = img.file_name
        names.append(name)
    return names


def _line(class_index: int, ring, width: int, height: int) -> str:
    xs = ring[:, 0] / width
    ys = ring[:, 1] / height
    return f"{class_index} " + " ".join(f"{x:.6f} {y:.6f}" for x, y in zip(xs.tolist(), ys.tolist()))


def export_yolo_seg(
    annotations: AnnotationSet,
    out_dir: Path,
    image_root: Path | None = None,
    tolerance: float = 1.0,
    *,
    bundle: bool = False,
) -> ExportResult:
    """Write the YOLO segmentation dataset (see the module docstring)."""
    out = Path(out_dir)
    result = ExportResult("yolo-seg")
    index = {c.id: k for k, c in enumerate(annotations.categories)}
    names = _dataset_names(annotations)
    splits, held_out = split_images([img.file_name for img in annotations.images])
    for img, name, split in zip(annotations.images, names, splits):
        lines: list[str] = []
        for i in drawing_order(img):
            inst = img.instances[i]
            mask = exportable(inst, result, img)
            if mask is None:
                continue
            rings = [r for poly in instance_polygons(mask, tolerance) for r in (poly.exterior, *poly.holes)
                     if len(r) >= 3]
            if not rings:
                result.skipped_empty += 1
                continue
            lines.append(_line(index[inst.category_id], join_rings(rings), img.width, img.height))
        if image_root is not None:
            place_image(Path(image_root) / img.file_name, out / "images" / split / name,
                        YOLO_IMAGE_FORMATS, "PNG", result)
        write_text(out / "labels" / split / f"{name}.txt", "".join(line + "\n" for line in lines), result)
    if image_root is None:
        result.warnings.append("yolo-seg: no image folder given, so no images were placed: put them under "
                               "images/<split>/ next to labels/<split>/, with the same names")
    for split in ("train", "val") if held_out else ("train",):
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    val = "images/val" if held_out else "images/train"
    write_text(out / "data.yaml", data_yaml(annotations, None if bundle else out, val), result)
    return result
