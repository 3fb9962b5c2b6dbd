"""PASCAL VOC-style semantic label maps (EISeg's grayscale and pseudo-colour masks).

``voc`` (grayscale)::

    <out_dir>/SegmentationClass/<stem>.png   class map: 0 = background, else the category id
                                             (8-bit; 16-bit when a category id is >= 256)
    <out_dir>/labels.txt                     one line per category: "<id> <name>"

``voc-color`` (palette)::

    <out_dir>/SegmentationClass/<stem>.png   mode P (8-bit palette), as PASCAL VOC's own masks:
                                             pixel = category id, palette[id] = the category
                                             colour, palette[0] black
    <out_dir>/labels.txt                     one line per category: "<id> <name> <r> <g> <b>"

``<stem>`` is the image's file name without its suffix, keeping sub-folders
(``sub/a.jpg`` -> ``SegmentationClass/sub/a.png``). Pixels are painted in
increasing z_order so the top instance wins (:func:`label_map`); unassigned
instances are not painted (and counted). Palette entries of unused indices
hold the PASCAL VOC colours. ``voc-color`` needs every category id <= 255.
Both formats use the same file names: export them into different folders.
In ``labels.txt`` the background (0) is implicit; a name may contain spaces,
so read the id as the first field (and the colour as the last three).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clickmask.errors import ClickmaskError
from clickmask.formats._common import ExportResult, gray_png, output_stems, write_image, write_text
from clickmask.formats.annotations import AnnotationSet, _voc_color, category_colors, label_map

__all__ = ["export_voc", "export_voc_color", "voc_palette"]


def _count_unassigned(annotations: AnnotationSet, result: ExportResult) -> None:
    result.skipped_unassigned += sum(
        inst.category_id is None for img in annotations.images for inst in img.instances
    )


def _one_line(name: str) -> str:
    return " ".join(name.split())


def export_voc(annotations: AnnotationSet, out_dir: Path) -> ExportResult:
    """Grayscale class-index PNGs and ``labels.txt`` (see the module docstring)."""
    out = Path(out_dir)
    result = ExportResult("voc")
    _count_unassigned(annotations, result)
    for img, stem in zip(annotations.images, output_stems(annotations)):
        labels = label_map(img, annotations.categories)
        write_image(out / "SegmentationClass" / f"{stem}.png", gray_png(labels), result)
    text = "".join(f"{c.id} {_one_line(c.name)}\n" for c in annotations.categories)
    write_text(out / "labels.txt", text, result)
    return result


def voc_palette(annotations: AnnotationSet) -> list[tuple[int, int, int]]:
    """256 RGB palette entries: 0 black, each category id its colour, other indices VOC colours."""
    for cat in annotations.categories:
        if cat.id > 255:
            raise ClickmaskError(
                f"voc-color: category {cat.name!r} has id {cat.id}, which does not fit an 8-bit "
                "palette (ids must be <= 255); use 'voc' for 16-bit label maps"
            )
    palette = [_voc_color(i) for i in range(256)]
    for cid, rgb in category_colors(annotations.categories).items():
        palette[cid] = rgb
    return palette


def export_voc_color(annotations: AnnotationSet, out_dir: Path) -> ExportResult:
    """Palette (P-mode) PNGs with the category colours and ``labels.txt`` (see the module docstring)."""
    out = Path(out_dir)
    result = ExportResult("voc-color")
    palette = voc_palette(annotations)
    flat = [v for rgb in palette for v in rgb]
    _count_unassigned(annotations, result)
    for img, stem in zip(annotations.images, output_stems(annotations)):
        labels = label_map(img, annotations.categories).astype(np.uint8)
        png = Image.fromarray(labels)  # mode L: pixel values are the palette indices
        png.putpalette(flat)  # turns the L image into a P image, values unchanged
        write_image(out / "SegmentationClass" / f"{stem}.png", png, result)
    colors = category_colors(annotations.categories)
    text = "".join(
        f"{c.id} {_one_line(c.name)} {colors[c.id][0]} {colors[c.id][1]} {colors[c.id][2]}\n"
        for c in annotations.categories
    )
    write_text(out / "labels.txt", text, result)
    return result
