"""PASCAL VOC segmentation datasets, laid out as VOC2012.

Layout (both formats)::

    <out_dir>/JPEGImages/<stem>.jpg                 the images (linked, copied or converted)
    <out_dir>/SegmentationClass/<stem>.png          class map: 0 background, the category id, 255 void
    <out_dir>/SegmentationObject/<stem>.png         object map: 0 background, object 1..N, 255 void
    <out_dir>/Annotations/<stem>.xml                the objects 1..N: name, box (VOC's XML)
    <out_dir>/ImageSets/Segmentation/train.txt      image ids (<stem>), one a line
    <out_dir>/ImageSets/Segmentation/val.txt
    <out_dir>/ImageSets/Segmentation/trainval.txt
    <out_dir>/labels.txt                            one line per category: "<id> <name>"
                                                    ("voc-color": "<id> <name> <r> <g> <b>")

``voc-color`` writes the maps as VOC's own: 8-bit palette (mode P) PNGs whose
pixel values are the ids, the class palette holding the category colours (the
VOC colour of the id for categories without one, black for 0), the object
palette VOC's colours; 255 is VOC's void colour. Category ids must be <= 254
there. ``voc`` writes the same values as grayscale PNGs (8-bit, or 16-bit when
a category id or an object number is above 254, with void 65535 then), for
tools that read raw values.

Pixels are painted in drawing order (increasing z_order), so the top object
wins. Objects are numbered 1..N in that order (the instances with a category
and pixels) and listed in that order in ``Annotations/<stem>.xml``, whose
``<filename>`` is the JPEGImages file and whose ``<bndbox>`` holds VOC's
1-based, inclusive pixel indices (``<truncated>`` 1 when the object touches the
image border).

Instances without a category are painted **void** (255) in both maps, VOC's
"ignore" value that training and evaluation skip (their class is unknown, so
they are neither background nor a class), and are not listed in the XML.

Images: a plain JPEG (8-bit RGB or grayscale, not rotated by EXIF) is
hard-linked into ``JPEGImages/`` (copied where links are impossible); any other
image is written as a JPEG (quality 95) of what the app shows, because VOC
readers open ``JPEGImages/<id>.jpg``. Without an image root no images are
placed (a warning says so).

Split: ``val.txt`` lists about one image in five, chosen by a hash of its file
name (:func:`~clickmask.formats._common.split_images`), ``train.txt`` the
others, ``trainval.txt`` all; with too few images for both, ``train.txt`` and
``val.txt`` both list every image.

``<stem>`` is the image's file name without its suffix, sub-folders kept
(``sub/a.jpg`` -> ``SegmentationClass/sub/a.png``, id ``sub/a``). Both formats
use the same file names: export them into different folders.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
from PIL import Image

from clickmask.errors import ClickmaskError
from clickmask.formats._common import (
    ExportResult,
    exportable,
    gray_png,
    output_stems,
    place_image,
    split_images,
    write_image,
    write_text,
)
from clickmask.formats.annotations import (
    AnnotationSet,
    ImageAnnotation,
    _checked_mask,
    _voc_color,
    category_colors,
    drawing_order,
)

__all__ = ["export_voc", "voc_palette", "VOID"]

VOID = 255
"""VOC's void ("ignore") value in 8-bit maps; 16-bit grayscale maps use 65535."""

_VOID_16 = 65535
_JPEG_ONLY = {"JPEG": (".jpg",)}


def _one_line(name: str) -> str:
    return " ".join(name.split())


def voc_palette(annotations: AnnotationSet) -> list[tuple[int, int, int]]:
    """256 RGB entries for class maps: 0 black, each category id its colour, other indices VOC colours.

    Raises when a category id does not fit below the void index 255.
    """
    for cat in annotations.categories:
        if cat.id >= VOID:
            raise ClickmaskError(
                f"voc-color: category {cat.name!r} has id {cat.id}, which does not fit an 8-bit "
                f"palette with void at {VOID} (ids must be <= {VOID - 1}); use 'voc' for 16-bit label maps"
            )
    palette = [_voc_color(i) for i in range(256)]
    for cid, rgb in category_colors(annotations.categories).items():
        palette[cid] = rgb
    return palette


def _maps(img: ImageAnnotation, result: ExportResult) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]]]:
    """Class map, object map (both (H, W) int64, void = -1) and the objects as (category id, mask)."""
    classes = np.zeros((img.height, img.width), dtype=np.int64)
    objects = np.zeros((img.height, img.width), dtype=np.int64)
    listed: list[tuple[int, np.ndarray]] = []
    for i in drawing_order(img):
        inst = img.instances[i]
        if inst.category_id is None:
            void = _checked_mask(img, i)
            classes[void] = -1
            objects[void] = -1
            continue
        mask = exportable(inst, result, img)
        if mask is None:
            continue
        listed.append((int(inst.category_id), mask))
        classes[mask] = inst.category_id
        objects[mask] = len(listed)
    return classes, objects, listed


def _encode(values: np.ndarray, wide: bool) -> np.ndarray:
    """A map with void = -1 as uint8 (void 255) or, when ``wide``, uint16 (void 65535)."""
    if wide:
        return np.where(values < 0, _VOID_16, values).astype(np.uint16)
    return np.where(values < 0, VOID, values).astype(np.uint8)


def _palette_png(values: np.ndarray, palette: list[tuple[int, int, int]]) -> Image.Image:
    png = Image.fromarray(values)  # mode L: pixel values are the palette indices
    png.putpalette([v for rgb in palette for v in rgb])  # turns it into a P image, values unchanged
    return png


def _annotation_xml(img: ImageAnnotation, file_name: str, names: dict[int, str],
                    objects: list[tuple[int, np.ndarray]]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = file_name
    ET.SubElement(ET.SubElement(root, "source"), "database").text = "clickmask"
    size = ET.SubElement(root, "size")
    for key, value in (("width", img.width), ("height", img.height), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for cid, mask in objects:
        cols = np.flatnonzero(mask.any(axis=0))
        rows = np.flatnonzero(mask.any(axis=1))
        x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
        touches = x0 == 0 or y0 == 0 or x1 == img.width - 1 or y1 == img.height - 1
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = names[cid]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "1" if touches else "0"
        ET.SubElement(obj, "difficult").text = "0"
        box = ET.SubElement(obj, "bndbox")
        for key, value in (("xmin", x0 + 1), ("ymin", y0 + 1), ("xmax", x1 + 1), ("ymax", y1 + 1)):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def export_voc(annotations: AnnotationSet, out_dir: Path, image_root: Path | None = None,
               *, color: bool = False) -> ExportResult:
    """Write the VOC2012 segmentation layout (see the module docstring); ``color`` = ``voc-color``."""
    out = Path(out_dir)
    result = ExportResult("voc-color" if color else "voc")
    class_palette = voc_palette(annotations) if color else []
    object_palette = [_voc_color(i) for i in range(256)]
    names = {c.id: c.name for c in annotations.categories}
    wide_classes = max((c.id for c in annotations.categories), default=0) >= VOID
    if wide_classes and max(c.id for c in annotations.categories) >= _VOID_16:
        raise ClickmaskError(f"voc: category ids must be below {_VOID_16} for 16-bit label maps")
    stems = output_stems(annotations)
    for img, stem in zip(annotations.images, stems):
        classes, objects, listed = _maps(img, result)
        if len(listed) >= (_VOID_16 if not color else VOID):
            raise ClickmaskError(
                f"{result.format}: image '{img.file_name}' has {len(listed)} objects; a VOC object map "
                f"holds at most {(_VOID_16 if not color else VOID) - 1}"
            )
        if image_root is not None:
            place_image(Path(image_root) / img.file_name, out / "JPEGImages" / stem, _JPEG_ONLY, "JPEG", result)
        if color:
            class_png = _palette_png(_encode(classes, False), class_palette)
            object_png = _palette_png(_encode(objects, False), object_palette)
        else:
            class_png = gray_png(_encode(classes, wide_classes))
            object_png = gray_png(_encode(objects, len(listed) >= VOID))
        write_image(out / "SegmentationClass" / f"{stem}.png", class_png, result)
        write_image(out / "SegmentationObject" / f"{stem}.png", object_png, result)
        write_text(out / "Annotations" / f"{stem}.xml", _annotation_xml(img, f"{stem}.jpg", names, listed), result)
    if image_root is None:
        result.warnings.append(f"{result.format}: no image folder given, so JPEGImages/ was not written")
    splits, held_out = split_images([img.file_name for img in annotations.images])
    sets = out / "ImageSets" / "Segmentation"
    train = [s for s, split in zip(stems, splits) if split == "train"]
    val = [s for s, split in zip(stems, splits) if split == "val"] if held_out else train
    for name, ids in (("train", train), ("val", val), ("trainval", stems)):
        write_text(sets / f"{name}.txt", "".join(f"{i}\n" for i in ids), result)
    if color:
        colors = category_colors(annotations.categories)
        text = "".join(
            f"{c.id} {_one_line(c.name)} {colors[c.id][0]} {colors[c.id][1]} {colors[c.id][2]}\n"
            for c in annotations.categories
        )
    else:
        text = "".join(f"{c.id} {_one_line(c.name)}\n" for c in annotations.categories)
    write_text(out / "labels.txt", text, result)
    return result
