"""Tests for clickmask.formats: the annotation model, the exporters and the importers."""

from __future__ import annotations

import base64
import io
import json
import os
import re
from pathlib import Path
from xml.etree import ElementTree

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw
from scipy.ndimage import binary_dilation, binary_fill_holes

from clickmask.errors import ClickmaskError
from clickmask.formats import (
    FORMATS,
    AnnotationSet,
    Category,
    ImageAnnotation,
    Instance,
    default_palette,
    export,
    export_with_report,
    import_coco,
    import_labelme,
    instance_map,
    label_map,
)
from clickmask.formats._common import split_images
from clickmask.geometry import Polygon, polygons_to_mask
from clickmask.io.images import load_mask

pycocotools_coco = pytest.importorskip("pycocotools.coco")

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2


# --------------------------------------------------------------------------- #
# Fixtures
# --------------------------------------------------------------------------- #
def disc(shape: tuple[int, int], cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < r**2


def box(shape: tuple[int, int], r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[r0:r1, c0:c1] = True
    return m


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


A = (60, 80)  # image a.jpg, HxW
B = (40, 50)  # image sub/b.png


def make_set() -> AnnotationSet:
    """2 images, 3 categories; a ring (hole), two parts, overlaps with z-order, one unassigned."""
    ring = disc(A, 25, 30, 18) & ~disc(A, 25, 30, 7)
    two_parts = box(A, 5, 20, 55, 75) | box(A, 40, 55, 60, 78)
    top = box(A, 22, 40, 30, 50)  # overlaps the ring, drawn above it
    under = box(A, 10, 30, 50, 65)  # overlaps the first part of two_parts, drawn below it
    unassigned = box(A, 5, 12, 50, 60)  # on top of two_parts, but not painted in label maps
    # Ring with an island in its hole, and two pixels touching at a corner.
    ring_b = box(B, 5, 35, 5, 35) & ~box(B, 10, 30, 10, 30)
    ring_b |= box(B, 15, 25, 15, 25)
    diag = np.zeros(B, dtype=bool)
    diag[2, 40] = diag[3, 41] = True
    img_a = ImageAnnotation(
        "a.jpg",
        width=A[1],
        height=A[0],
        instances=[
            Instance(top, category_id=3, z_order=2, id=10),
            Instance(ring, category_id=1, z_order=0, id=11),
            Instance(two_parts, category_id=2, z_order=1, id=12),
            Instance(under, category_id=3, z_order=-1, id=13),
            Instance(unassigned, category_id=None, z_order=5, id=14),
        ],
    )
    img_b = ImageAnnotation(
        "sub/b.png",
        width=B[1],
        height=B[0],
        instances=[
            Instance(ring_b, category_id=2, z_order=0),
            Instance(diag, category_id=1, z_order=1, attributes={"note": "diagonal"}),
        ],
    )
    cats = [Category(1, "cat", "#ff0000"), Category(2, "dog", ""), Category(3, "tree top", "#00ff80")]
    return AnnotationSet(categories=cats, images=[img_a, img_b])


@pytest.fixture
def aset() -> AnnotationSet:
    return make_set()


def assigned(img: ImageAnnotation) -> list[Instance]:
    """Instances with a category, in drawing order (the order exporters write them)."""
    return sorted((i for i in img.instances if i.category_id is not None), key=lambda i: i.z_order)


def names_of(aset: AnnotationSet) -> dict[int, str]:
    return {c.id: c.name for c in aset.categories}


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*") if ".tmp-" in p.name]


# --------------------------------------------------------------------------- #
# Model
# --------------------------------------------------------------------------- #
def test_default_palette_distinct_and_deterministic() -> None:
    p = default_palette(600)
    assert len(p) == 600 and len(set(p)) == 600
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c) for c in p)
    assert "#000000" not in p
    assert p == default_palette(600)
    assert default_palette(3) == ["#800000", "#008000", "#808000"]  # PASCAL VOC colours 1..3
    assert default_palette(0) == []
    with pytest.raises(ClickmaskError):
        default_palette(-1)


def test_label_map_z_order_wins(aset: AnnotationSet) -> None:
    img = aset.images[0]
    lm = label_map(img, aset.categories)
    assert lm.dtype == np.uint8 and lm.shape == A
    assert lm[30, 35] == 3  # 'top' (z=2) over the ring (z=0)
    assert lm[12, 57] == 2  # two_parts (z=1) over 'under' (z=-1)
    assert lm[25, 52] == 3  # 'under' where nothing is above it
    assert lm[30, 25] == 0  # the ring's hole
    assert lm[7, 57] == 2 and lm[7, 52] == 0  # the unassigned instance (z=5) is not painted
    cats = aset.categories + [Category(300, "big")]
    img.instances[0].category_id = 300
    lm16 = label_map(img, cats)
    assert lm16.dtype == np.uint16 and lm16[30, 35] == 300


def test_instance_map(aset: AnnotationSet) -> None:
    im = instance_map(aset.images[0])
    assert im.dtype == np.uint16
    # drawing order: under(-1)=1, ring(0)=2, two_parts(1)=3, top(2)=4, unassigned(5)=5
    assert im[25, 52] == 1 and im[30, 15] == 2 and im[12, 57] == 3 and im[30, 35] == 4 and im[7, 57] == 5


def test_unknown_format_lists_valid_ones(aset: AnnotationSet, tmp_path: Path) -> None:
    with pytest.raises(ClickmaskError) as err:
        export(aset, "pascal", tmp_path)
    for fmt in FORMATS:
        assert fmt in str(err.value)


@pytest.mark.parametrize(
    "mutate, problem",
    [
        (lambda s: setattr(s.images[0].instances[0], "mask", np.zeros((5, 5), bool)), "mask is 5x5"),
        (lambda s: setattr(s.categories[1], "id", 1), "used twice"),
        (lambda s: setattr(s.categories[0], "id", 0), ">= 1"),
        (lambda s: setattr(s.categories[0], "color", "red"), "#rrggbb"),
        (lambda s: setattr(s.images[0].instances[0], "category_id", 9), "unknown category"),
        (lambda s: setattr(s.images[1], "file_name", "../b.png"), "'..'"),
        (lambda s: setattr(s.images[1], "file_name", "a.png"), "same file name"),
        (lambda s: setattr(s.images[1], "file_name", "A.jpg"), "same file name"),
    ],
)
def test_export_rejects_invalid_annotations(aset: AnnotationSet, tmp_path: Path, mutate, problem: str) -> None:
    mutate(aset)
    fmt = "voc" if problem == "same file name" else "coco"
    with pytest.raises(ClickmaskError, match=re.escape(problem)):
        export(aset, fmt, tmp_path / "out")


# --------------------------------------------------------------------------- #
# COCO
# --------------------------------------------------------------------------- #
def test_coco_export_read_by_pycocotools(aset: AnnotationSet, tmp_path: Path) -> None:
    report = export_with_report(aset, "coco", tmp_path)
    path = tmp_path / "annotations.json"
    assert report.files == [path]
    assert report.skipped_unassigned == 1 and any("without a category" in w for w in report.warnings)
    coco = pycocotools_coco.COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == ["cat", "dog", "tree top"]
    for img, image_id in zip(aset.images, (1, 2)):
        info = coco.loadImgs(image_id)[0]
        assert (info["file_name"], info["width"], info["height"]) == (img.file_name, img.width, img.height)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        expected = assigned(img)
        assert len(anns) == len(expected)
        for ann, inst in zip(anns, expected):
            back = coco.annToMask(ann).astype(bool)
            assert np.array_equal(back, inst.mask)  # exact: same corner convention as COCO
            assert ann["category_id"] == inst.category_id and ann["iscrowd"] == 0
            assert ann["area"] == np.count_nonzero(inst.mask)
            rows, cols = np.nonzero(inst.mask)
            bbox = [cols.min(), rows.min(), cols.max() + 1 - cols.min(), rows.max() + 1 - rows.min()]
            assert ann["bbox"] == [float(v) for v in bbox]
            if not np.array_equal(binary_fill_holes(inst.mask), inst.mask):
                assert isinstance(ann["segmentation"], dict)  # holes need RLE
                assert isinstance(ann["segmentation"]["counts"], str)
            else:
                assert isinstance(ann["segmentation"], list)
    kinds = [type(a["segmentation"]).__name__ for a in coco.loadAnns(coco.getAnnIds())]
    assert kinds == ["list", "dict", "list", "list", "dict", "list"]
    two_parts = coco.loadAnns(coco.getAnnIds(imgIds=1, catIds=[2]))[0]
    assert len(two_parts["segmentation"]) == 2  # one polygon per part
    assert no_temp_files(tmp_path)


def test_coco_tolerance_simplifies(tmp_path: Path) -> None:
    m = disc((200, 200), 100, 100, 80)
    s = AnnotationSet([Category(1, "c")], [ImageAnnotation("x.png", 200, 200, [Instance(m, 1)])])
    export(s, "coco", tmp_path / "exact")
    export(s, "coco", tmp_path / "simple", tolerance=1.0)
    exact = json.loads((tmp_path / "exact" / "annotations.json").read_text())["annotations"][0]
    simple = json.loads((tmp_path / "simple" / "annotations.json").read_text())["annotations"][0]
    assert len(simple["segmentation"][0]) < len(exact["segmentation"][0]) / 2
    coco = pycocotools_coco.COCO(str(tmp_path / "simple" / "annotations.json"))
    assert iou(coco.annToMask(coco.loadAnns(1)[0]).astype(bool), m) >= 0.99
    assert simple["area"] == np.count_nonzero(m)


def test_coco_round_trip(aset: AnnotationSet, tmp_path: Path) -> None:
    export(aset, "coco", tmp_path)
    back = import_coco(tmp_path / "annotations.json")
    assert [(c.id, c.name, c.color) for c in back.categories] == [
        (c.id, c.name, c.color) for c in aset.categories
    ]
    assert [(i.file_name, i.width, i.height) for i in back.images] == [
        (i.file_name, i.width, i.height) for i in aset.images
    ]
    for orig, img in zip(aset.images, back.images):
        expected = assigned(orig)
        assert len(img.instances) == len(expected)
        for a, b in zip(expected, img.instances):
            assert np.array_equal(a.mask, b.mask)  # holes and parts kept exactly
            assert (a.category_id, a.z_order, a.attributes) == (b.category_id, b.z_order, b.attributes)
        assert np.array_equal(label_map(img, back.categories), label_map(orig, aset.categories))


def test_coco_import_rle_uncompressed_and_crowd(tmp_path: Path) -> None:
    m = np.zeros((4, 3), dtype=bool)
    m[1:3, 1] = True  # column-major runs: 5 zeros, 2 ones, 5 zeros
    data = {
        "images": [{"id": 7, "file_name": "dir\\x.jpg", "width": 3, "height": 4}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 5, "iscrowd": 1,
             "segmentation": {"size": [4, 3], "counts": [5, 2, 5]}},
            {"id": 2, "image_id": 7, "category_id": 5, "iscrowd": 0,
             "segmentation": [[0, 0, 2, 0, 2, 1, 0, 1]]},
        ],
        "categories": [{"id": 0, "name": "placeholder"}, {"id": 5, "name": "thing"}],
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps(data))
    s = import_coco(path)
    assert [c.name for c in s.categories] == ["thing"]  # unused category 0 dropped
    img = s.images[0]
    assert img.file_name == "dir/x.jpg"
    assert np.array_equal(img.instances[0].mask, m)
    assert img.instances[0].attributes == {"iscrowd": 1}
    assert np.array_equal(img.instances[1].mask, box((4, 3), 0, 1, 0, 2))
    assert [i.z_order for i in img.instances] == [0, 1]
    # A crowd instance is exported back as crowd RLE.
    export(s, "coco", tmp_path / "out")
    anns = json.loads((tmp_path / "out" / "annotations.json").read_text())["annotations"]
    assert anns[0]["iscrowd"] == 1 and isinstance(anns[0]["segmentation"], dict)
    assert "attributes" not in anns[0]


def _coco_base() -> dict:
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 8}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]]}],
        "categories": [{"id": 1, "name": "c"}],
    }


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.pop("images"), "missing key 'images'"),
        (lambda d: d.pop("categories"), "missing key 'categories'"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 1, 5, 1]]), "at least 3"),
        (lambda d: d["annotations"][0].update(image_id=9), "image_id 9 is not in 'images'"),
        (lambda d: d["annotations"][0].update(category_id=4), "category_id 4 is not in 'categories'"),
        (lambda d: d["images"][0].pop("width"), "missing 'width'"),
        (lambda d: d["images"][0].update(height=None), "'height' must be an integer"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [3, 3], "counts": "0"}), "does not match"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [8, 10], "counts": [5]}), "counts cover"),
        (lambda d: d["annotations"][0].update(segmentation=[1, 1, 5, 1, 5, 5]), "list of polygons"),
        (lambda d: d["annotations"][0].pop("segmentation"), "missing 'segmentation'"),
        (lambda d: d["images"].append(dict(d["images"][0])), "listed twice"),
        (lambda d: d["images"][0].update(file_name="/abs/a.jpg"), "relative"),
        (lambda d: d["annotations"].append(dict(d["annotations"][0])), "annotation id 1 is listed twice"),
    ],
)
def test_coco_import_errors(tmp_path: Path, edit, problem: str) -> None:
    data = _coco_base()
    edit(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ClickmaskError) as err:
        import_coco(path)
    message = str(err.value)
    assert problem in message and str(path) in message and "\n" not in message


def test_coco_import_unreadable(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [')
    with pytest.raises(ClickmaskError, match=r"bad\.json.*invalid JSON at line 1"):
        import_coco(bad)
    with pytest.raises(ClickmaskError, match="file not found"):
        import_coco(tmp_path / "missing.json")
    bad.write_text("[1, 2]")
    with pytest.raises(ClickmaskError, match="JSON object"):
        import_coco(bad)


# --------------------------------------------------------------------------- #
# VOC
# --------------------------------------------------------------------------- #
def image_folder(root: Path) -> Path:
    """The images of :func:`make_set`: ``a.jpg`` (a plain JPEG) and ``sub/b.png`` (RGBA, so it is converted)."""
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (A[1], A[0]), (200, 120, 40)).save(root / "a.jpg", quality=90)
    Image.new("RGBA", (B[1], B[0]), (10, 200, 30, 128)).save(root / "sub" / "b.png")
    return root


def void_label_map(img: ImageAnnotation, cats: list[Category]) -> np.ndarray:
    """The class map VOC exports: category ids, unassigned objects painted 255, top object wins."""
    out = np.zeros((img.height, img.width), np.uint8)
    for inst in sorted(img.instances, key=lambda i: i.z_order):
        out[inst.mask] = 255 if inst.category_id is None else inst.category_id
    return out


def test_voc_export(aset: AnnotationSet, tmp_path: Path) -> None:
    images = image_folder(tmp_path / "images")
    out = tmp_path / "voc"
    report = export_with_report(aset, "voc", out, image_root=images)
    assert (report.unassigned, report.unassigned_policy, report.skipped_unassigned) == (1, "void", 0)
    assert "marked void" in report.unassigned_message()
    assert (report.images_linked + report.images_copied, report.images_converted) == (1, 1)
    assert (out / "JPEGImages" / "a.jpg").samefile(images / "a.jpg")  # a hard link on one filesystem
    converted = Image.open(out / "JPEGImages" / "sub" / "b.jpg")
    assert converted.format == "JPEG" and converted.size == (B[1], B[0]) and converted.mode == "RGB"
    for img, stem in zip(aset.images, ("a", "sub/b")):
        png = Image.open(out / "SegmentationClass" / f"{stem}.png")
        assert png.mode == "L" and png.size == (img.width, img.height)
        assert np.array_equal(np.asarray(png), void_label_map(img, aset.categories))
    values = np.asarray(Image.open(out / "SegmentationClass" / "a.png"))
    assert values[30, 35] == 3 and values[12, 57] == 2 and values[7, 57] == 255  # z-order wins; void on top
    objects = np.asarray(Image.open(out / "SegmentationObject" / "a.png"))
    # objects in drawing order: under (1), ring (2), two_parts (3), top (4); the unassigned one is void
    assert (objects[25, 52], objects[30, 12], objects[45, 70], objects[30, 35], objects[7, 57]) == (1, 2, 3, 4, 255)
    xml = ElementTree.parse(out / "Annotations" / "a.xml").getroot()
    assert xml.findtext("filename") == "a.jpg" and xml.findtext("size/width") == "80"
    listed = xml.findall("object")
    assert [o.findtext("name") for o in listed] == ["tree top", "cat", "dog", "tree top"]
    box = [int(listed[0].findtext(f"bndbox/{k}")) for k in ("xmin", "ymin", "xmax", "ymax")]
    assert box == [51, 11, 65, 30]  # under = rows 10..29, cols 50..64, VOC's 1-based inclusive indices
    assert ElementTree.parse(out / "Annotations" / "sub" / "b.xml").getroot().findtext("filename") == "sub/b.jpg"
    sets = {n: (out / "ImageSets" / "Segmentation" / f"{n}.txt").read_text().split() for n in ("train", "val", "trainval")}
    assert sets["trainval"] == ["a", "sub/b"]
    assert sorted(set(sets["train"]) | set(sets["val"])) == ["a", "sub/b"] and sets["val"]
    assert (out / "labels.txt").read_text() == "1 cat\n2 dog\n3 tree top\n"
    assert no_temp_files(out)


def test_split_is_stable_and_holds_out_a_fifth() -> None:
    names = [f"img_{k:04d}.jpg" for k in range(1000)]
    splits, held_out = split_images(names)
    assert held_out and 150 <= splits.count("val") <= 250
    assert split_images(names[:500])[0] == splits[:500]  # an image keeps its split as the project grows
    assert split_images(["a.jpg", "b.jpg"]) == (["train", "train"], False)  # too few: all train, val = train


def test_voc_export_16_bit(aset: AnnotationSet, tmp_path: Path) -> None:
    aset.categories[2].id = 1000
    for inst in aset.images[0].instances:
        if inst.category_id == 3:
            inst.category_id = 1000
    export(aset, "voc", tmp_path)
    png = Image.open(tmp_path / "SegmentationClass" / "a.png")
    values = np.asarray(png)
    assert values.dtype == np.uint16 and values[30, 35] == 1000 and values[12, 57] == 2
    assert values[7, 57] == 65535  # void in a 16-bit map


def test_voc_color_export(aset: AnnotationSet, tmp_path: Path) -> None:
    export(aset, "voc-color", tmp_path)
    png = Image.open(tmp_path / "SegmentationClass" / "a.png")
    assert png.mode == "P"
    assert np.array_equal(np.asarray(png), void_label_map(aset.images[0], aset.categories))
    palette = png.getpalette()
    colour = lambda i: tuple(palette[3 * i : 3 * i + 3])  # noqa: E731
    assert colour(0) == (0, 0, 0)
    assert colour(1) == (255, 0, 0)  # the category colours
    assert colour(3) == (0, 255, 128)
    assert colour(2) == (0, 128, 0)  # no colour: the PASCAL VOC colour of index 2
    assert colour(255) == (224, 224, 192)  # VOC's void colour
    rgb = np.asarray(png.convert("RGB"))
    assert tuple(rgb[30, 35]) == (0, 255, 128)
    objects = Image.open(tmp_path / "SegmentationObject" / "a.png")
    assert objects.mode == "P" and tuple(objects.getpalette()[3:6]) == (128, 0, 0)  # VOC's object colours
    lines = (tmp_path / "labels.txt").read_text().splitlines()
    assert lines == ["1 cat 255 0 0", "2 dog 0 128 0", "3 tree top 0 255 128"]


def test_voc_color_rejects_large_ids(aset: AnnotationSet, tmp_path: Path) -> None:
    aset.categories[2].id = 255  # the void index
    for inst in aset.images[0].instances:
        if inst.category_id == 3:
            inst.category_id = 255
    with pytest.raises(ClickmaskError, match="255"):
        export(aset, "voc-color", tmp_path)


# --------------------------------------------------------------------------- #
# Instance PNGs
# --------------------------------------------------------------------------- #
def test_instance_png_export(aset: AnnotationSet, tmp_path: Path) -> None:
    files = export(aset, "instance-png", tmp_path)
    index = json.loads((tmp_path / "instances" / "index.json").read_text())
    assert [c["name"] for c in index["categories"]] == ["cat", "dog", "tree top"]
    entries = index["instances"]
    assert len(entries) == sum(len(i.instances) for i in aset.images)
    assert len(files) == len(entries) + 1
    first = [e for e in entries if e["image"] == "a.jpg"]
    assert [e["file"] for e in first] == [
        "instances/a/1_tree_top.png",
        "instances/a/2_cat.png",
        "instances/a/3_dog.png",
        "instances/a/4_tree_top.png",
        "instances/a/5_unassigned.png",
    ]
    assert [e["z_order"] for e in first] == [-1, 0, 1, 2, 5]
    assert first[4]["category"] is None and first[1]["category"] == "cat"
    by_z = sorted(aset.images[0].instances, key=lambda i: i.z_order)
    for entry, inst in zip(first, by_z):
        png = Image.open(tmp_path / entry["file"])
        assert png.mode == "L" and set(np.unique(np.asarray(png))) <= {0, 255}
        assert np.array_equal(load_mask(tmp_path / entry["file"]), inst.mask)
    assert any(e["file"].startswith("instances/sub/b/") for e in entries)


# --------------------------------------------------------------------------- #
# LabelMe
# --------------------------------------------------------------------------- #
def check_labelme_schema(path: Path) -> list[dict]:
    """Check a file against the schema LabelMe's loader enforces (labelme 6.3 ``_label_file.py``); return its shapes.

    Every shape: ``label`` str, ``points`` a non-empty list of [x, y] numbers, ``shape_type`` str,
    ``flags`` str -> bool, ``description`` str, ``group_id`` int or null, ``mask`` null or a base64
    PNG; a mask shape's PNG is exactly its box (``points`` = top-left and bottom-right pixel, inclusive).
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"version", "flags", "shapes", "imagePath", "imageData", "imageHeight", "imageWidth"} <= set(data)
    for shape in data["shapes"]:
        assert isinstance(shape["label"], str) and shape["label"]
        points = shape["points"]
        assert isinstance(points, list) and points
        assert all(isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p) for p in points)
        assert isinstance(shape["shape_type"], str)
        assert isinstance(shape["flags"], dict) and all(isinstance(v, bool) for v in shape["flags"].values())
        assert isinstance(shape["description"], str)
        assert shape["group_id"] is None or isinstance(shape["group_id"], int)
        if shape["shape_type"] == "mask":
            (x0, y0), (x1, y1) = points
            assert all(isinstance(v, int) for v in (x0, y0, x1, y1))
            crop = np.asarray(Image.open(io.BytesIO(base64.b64decode(shape["mask"]))))
            assert crop.shape == (y1 - y0 + 1, x1 - x0 + 1)
        else:
            assert shape["shape_type"] == "polygon" and len(points) >= 3 and shape.get("mask") is None
    return data["shapes"]


def labelme_raster(shapes: list[dict], size: tuple[int, int]) -> list[np.ndarray]:
    """Instance masks as LabelMe's ``shapes_to_label`` builds them (PIL fill + outline; masks pasted)."""
    out: dict = {}
    for shape in shapes:
        canvas = np.zeros(size, bool)
        if shape["shape_type"] == "mask":
            (x0, y0), (x1, y1) = shape["points"]
            canvas[y0 : y1 + 1, x0 : x1 + 1] = np.asarray(Image.open(io.BytesIO(base64.b64decode(shape["mask"])))) > 0
        else:
            img = Image.new("L", (size[1], size[0]))
            ImageDraw.Draw(img).polygon([tuple(p) for p in shape["points"]], fill=1, outline=1)
            canvas = np.asarray(img) > 0
        key = (shape["label"], shape["group_id"])
        out[key] = out.get(key, np.zeros(size, bool)) | canvas
    return list(out.values())


def test_labelme_export_structure(aset: AnnotationSet, tmp_path: Path) -> None:
    report = export_with_report(aset, "labelme", tmp_path)
    assert report.files == [tmp_path / "a.json", tmp_path / "sub" / "b.json"]
    assert report.skipped_unassigned == 1 and report.unassigned_policy == "skipped"
    data = json.loads((tmp_path / "a.json").read_text())
    assert (data["imagePath"], data["imageData"], data["imageHeight"], data["imageWidth"]) == ("a.jpg", None, 60, 80)
    shapes = check_labelme_schema(tmp_path / "a.json")
    for s in shapes:
        if s["shape_type"] == "polygon":
            assert all((x + 0.5).is_integer() and (y + 0.5).is_integer() for x, y in s["points"])
    # under(1), ring(2) as a mask (it has a hole), two_parts(3) x2, top(4); the unassigned one is skipped
    assert [(s["label"], s["group_id"], s["shape_type"]) for s in shapes] == [
        ("tree top", 1, "polygon"),
        ("cat", 2, "mask"),
        ("dog", 3, "polygon"),
        ("dog", 3, "polygon"),
        ("tree top", 4, "polygon"),
    ]
    assert shapes[1]["points"] == [[7, 12], [42, 47]]  # the ring's box: pixels (x, y), inclusive
    xs = [p[0] for s in shapes for p in s["points"]]
    assert min(xs) >= -0.5 and max(xs) <= 80 - 0.5
    assert json.loads((tmp_path / "sub" / "b.json").read_text())["imagePath"] == "b.png"
    # What LabelMe's own conversion makes of the file: the objects, holes included.
    by_z = assigned(aset.images[0])
    for want, got in zip(by_z, labelme_raster(shapes, A)):
        assert iou(want.mask, got) >= 0.85 and not (want.mask & ~got).any()  # outline drawn: a bit fatter
    ring = labelme_raster(shapes, A)[1]
    assert np.array_equal(ring, by_z[1].mask)  # the mask shape is exact, hole included


def test_labelme_default_tolerance_gives_few_points(tmp_path: Path) -> None:
    cup = disc((480, 640), 300, 250, 180)
    s = AnnotationSet([Category(1, "cup")], [ImageAnnotation("x.png", 640, 480, [Instance(cup, 1)])])
    export(s, "labelme", tmp_path / "exact", tolerance=0)
    export(s, "labelme", tmp_path / "default")
    exact = json.loads((tmp_path / "exact" / "x.json").read_text())["shapes"][0]["points"]
    simple = json.loads((tmp_path / "default" / "x.json").read_text())["shapes"][0]["points"]
    assert len(exact) > 500 and len(simple) < 100
    assert iou(import_labelme(tmp_path / "default").images[0].instances[0].mask, cup) >= 0.99


def test_labelme_files_open_in_labelme(aset: AnnotationSet, tmp_path: Path) -> None:
    """LabelMe's own loader (labelme 6.3 ``LabelFile``; in the test extra)."""
    import labelme
    from labelme.utils import shapes_to_label

    out = tmp_path / "out"
    export(aset, "labelme", out, image_root=image_folder(tmp_path / "images"), bundle=True)
    for img, stem in zip(aset.images, ("a", "sub/b")):
        label_file = labelme.LabelFile(str(out / f"{stem}.json"))
        assert label_file.image_data  # the image next to the file was found and read
        groups = list(dict.fromkeys(s["group_id"] for s in label_file.shapes))
        assert len(groups) == len(assigned(img))
        for group, inst in zip(groups, assigned(img)):
            shapes = [s for s in label_file.shapes if s["group_id"] == group]
            classes, _ = shapes_to_label((img.height, img.width), shapes, {shapes[0]["label"]: 1})
            got = classes == 1
            # LabelMe draws the outline too: every pixel of the object, and at most one pixel more around it
            assert not (inst.mask & ~got).any() and not (got & ~binary_dilation(inst.mask, np.ones((3, 3)))).any()
            if any(s["shape_type"] == "mask" for s in shapes):
                assert np.array_equal(got, inst.mask)  # holes included


def test_labelme_round_trip(aset: AnnotationSet, tmp_path: Path) -> None:
    export(aset, "labelme", tmp_path, tolerance=0)
    back = import_labelme(tmp_path)
    assert [c.name for c in back.categories] == ["tree top", "cat", "dog"]  # first-seen order
    assert [(i.file_name, i.width, i.height) for i in back.images] == [
        (i.file_name, i.width, i.height) for i in aset.images
    ]
    names_back, names_orig = names_of(back), names_of(aset)
    for orig, img in zip(aset.images, back.images):
        expected = assigned(orig)
        assert len(img.instances) == len(expected)
        for a, b in zip(expected, img.instances):
            assert np.array_equal(a.mask, b.mask)  # exact with the half-pixel conversion, and masks
            assert names_orig[a.category_id] == names_back[b.category_id]
    ring = back.images[0].instances[1].mask
    assert not ring[30, 25] and ring[30, 12]  # the hole is kept
    island = back.images[1].instances[0].mask
    assert island[20, 20] and not island[12, 12] and island[7, 7]  # island inside a hole kept


def test_labelme_reads_old_hole_polygons(tmp_path: Path) -> None:
    """Files of earlier clickmask versions: a polygon flagged as a hole cuts its group's outline."""
    data = _labelme_base()
    data["clickmask"] = {"version": 1}
    data["imageWidth"], data["imageHeight"] = 12, 12
    data["shapes"] = [
        {"label": "c", "points": [[-0.5, -0.5], [9.5, -0.5], [9.5, 9.5], [-0.5, 9.5]], "group_id": 1,
         "shape_type": "polygon", "flags": {}},
        {"label": "c", "points": [[2.5, 2.5], [2.5, 5.5], [5.5, 5.5], [5.5, 2.5]], "group_id": 1,
         "shape_type": "polygon", "flags": {"hole": True}},
    ]
    (tmp_path / "x.json").write_text(json.dumps(data))
    mask = import_labelme(tmp_path).images[0].instances[0].mask
    assert mask.sum() == 100 - 9 and not mask[4, 4]


def test_labelme_with_image_root(aset: AnnotationSet, tmp_path: Path) -> None:
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    Image.new("RGB", (80, 60)).save(images / "a.jpg")
    Image.new("RGB", (50, 40)).save(images / "sub" / "b.png")
    out = tmp_path / "labels"
    export(aset, "labelme", out, image_root=images)
    assert json.loads((out / "a.json").read_text())["imagePath"] == "../images/a.jpg"
    assert json.loads((out / "sub" / "b.json").read_text())["imagePath"] == "../../images/sub/b.png"
    with pytest.raises(ClickmaskError, match="outside the image root"):
        import_labelme(out)
    back = import_labelme(out, image_root=images)
    assert [i.file_name for i in back.images] == ["a.jpg", "sub/b.png"]
    back = import_labelme(tmp_path)  # the common root holds both
    assert [i.file_name for i in back.images] == ["images/a.jpg", "images/sub/b.png"]
    # A size mismatch between annotation and image file is caught before writing.
    aset.images[0].width, aset.images[0].height = 81, 60
    for inst in aset.images[0].instances:
        inst.mask = np.zeros((60, 81), bool)
    with pytest.raises(ClickmaskError, match="80x60"):
        export(aset, "coco", tmp_path / "c", image_root=images)


def test_labelme_import_foreign_file(tmp_path: Path) -> None:
    """A file drawn in LabelMe: rasterised like LabelMe (PIL fill + outline); groups merged."""
    poly = [[2.3, 3.1], [15.7, 4.2], [9.0, 14.8]]
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            {"label": "leaf", "points": poly, "group_id": None, "shape_type": "polygon", "flags": {}},
            {"label": "car", "points": [[20, 2], [28, 9]], "group_id": 1, "shape_type": "rectangle", "flags": {}},
            {"label": "car", "points": [[20, 12], [23, 12]], "group_id": 1, "shape_type": "circle", "flags": {}},
            {"label": "car", "points": [[1, 1]], "group_id": None, "shape_type": "point", "flags": {}},
            {"label": "leaf", "points": [[2, 16], [6, 16], [6, 19]], "shape_type": "polygon"},
        ],
        "imagePath": "pic.jpg",
        "imageData": None,
        "imageHeight": 20,
        "imageWidth": 30,
    }
    (tmp_path / "pic.json").write_text(json.dumps(data))
    warnings: list[str] = []
    s = import_labelme(tmp_path / "pic.json", warnings=warnings)
    assert [c.name for c in s.categories] == ["leaf", "car"]
    img = s.images[0]
    assert img.file_name == "pic.jpg"
    assert len(img.instances) == 3  # leaf, car (rectangle + circle), second leaf
    assert [i.category_id for i in img.instances] == [1, 2, 1]
    assert any("point" in w for w in warnings)
    ref = Image.new("L", (30, 20))
    ImageDraw.Draw(ref).polygon([tuple(p) for p in poly], fill=1, outline=1)
    assert np.array_equal(img.instances[0].mask, np.asarray(ref) > 0)
    car = img.instances[1].mask
    assert car[2:10, 20:29].all() and car[12, 23] and car[12, 17] and not car[1, 20]
    exact = import_labelme(tmp_path / "pic.json", raster="exact").images[0].instances
    assert np.array_equal(exact[0].mask, polygons_to_mask([Polygon(np.array(poly) + 0.5)], (20, 30)))
    yy, xx = np.mgrid[:20, :30]
    circle = (xx - 20) ** 2 + (yy - 12) ** 2 <= 9
    assert np.array_equal(exact[1].mask, box((20, 30), 2, 10, 20, 29) | circle)
    with pytest.raises(ClickmaskError, match="raster"):
        import_labelme(tmp_path, raster="pil")


def _labelme_base() -> dict:
    return {
        "version": "5.4.1",
        "shapes": [{"label": "c", "points": [[1, 1], [5, 1], [5, 5]], "group_id": None, "shape_type": "polygon"}],
        "imagePath": "x.jpg",
        "imageData": None,
        "imageHeight": 8,
        "imageWidth": 10,
    }


@pytest.mark.parametrize(
    "edit, problem",
    [
        (lambda d: d.pop("imageHeight"), "missing 'imageHeight' or 'imageWidth'"),
        (lambda d: d.update(imageWidth="ten"), "image size"),
        (lambda d: d["shapes"][0].update(points=[[1, 1], [5, 1]]), "at least 3 points"),
        (lambda d: d["shapes"][0].update(points=[[1, "a"], [5, 1], [2, 2]]), "number pairs"),
        (lambda d: d.pop("shapes"), "missing key 'shapes'"),
        (lambda d: d.pop("imagePath"), "imagePath"),
        (lambda d: d.update(imagePath="../x.jpg"), "outside the image root"),
        (lambda d: d["shapes"][0].update(label=None), "'label' must be a string"),
        (lambda d: d["shapes"][0].update(group_id="g"), "group_id"),
    ],
)
def test_labelme_import_errors(tmp_path: Path, edit, problem: str) -> None:
    data = _labelme_base()
    edit(data)
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ClickmaskError) as err:
        import_labelme(path)
    message = str(err.value)
    assert problem in message and str(path) in message and "\n" not in message


def test_labelme_import_invalid_json_and_folders(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ClickmaskError, match=r"x\.json.*invalid JSON"):
        import_labelme(tmp_path)
    (tmp_path / "x.json").write_text(json.dumps(_labelme_base()))
    (tmp_path / "annotations.json").write_text(json.dumps({"images": []}))  # not LabelMe: skipped
    s = import_labelme(tmp_path)
    assert [i.file_name for i in s.images] == ["x.jpg"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ClickmaskError, match="no LabelMe JSON files"):
        import_labelme(empty)
    dup = dict(_labelme_base())
    (tmp_path / "y.json").write_text(json.dumps(dup))
    with pytest.raises(ClickmaskError, match="also annotated"):
        import_labelme(tmp_path)


# --------------------------------------------------------------------------- #
# YOLO
# --------------------------------------------------------------------------- #
#: Image suffixes Ultralytics reads (``ultralytics.data.utils.IMG_FORMATS``, the ones clickmask writes).
YOLO_SUFFIXES = {"bmp", "jpeg", "jpg", "png", "tif", "tiff", "webp"}


def read_yolo(data_yaml: Path) -> tuple[dict, dict[str, tuple[tuple[int, int], list[tuple[int, np.ndarray]]]]]:
    """Read a YOLO segmentation dataset the way Ultralytics documents it.

    ``data.yaml`` (YAML): ``train`` and ``val`` folders relative to ``path`` (or to the folder of
    ``data.yaml`` without one) that exist; ``names`` a dict 0..n-1 -> name. Each image under them
    has its labels at the path with the last ``/images/`` replaced by ``/labels/`` and the suffix
    by ``.txt``; each line is a class index < len(names) and >= 3 normalised x y pairs in [0, 1].
    Returns the YAML and, per image path (relative to the dataset), its (W, H) and its objects as
    (class, (N, 2) pixel polygon).
    """
    data = yaml.safe_load(data_yaml.read_text(encoding="utf-8"))
    root = Path(data["path"]) if data.get("path") else data_yaml.parent
    names = data["names"]
    assert isinstance(names, dict) and sorted(names) == list(range(len(names)))
    images: dict = {}
    for key in ("train", "val"):
        folder = root / data[key]
        assert folder.is_dir(), f"{key}: {folder} does not exist"
        for image in sorted(folder.rglob("*")):
            if image.suffix.lower().lstrip(".") not in YOLO_SUFFIXES:
                continue
            sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
            label = Path(sb.join(str(image).rsplit(sa, 1)).rsplit(".", 1)[0] + ".txt")
            width, height = Image.open(image).size
            objects = []
            for line in label.read_text(encoding="utf-8").splitlines():
                values = line.split()
                cls = int(values[0])
                xy = np.array([float(v) for v in values[1:]]).reshape(-1, 2)
                assert 0 <= cls < len(names) and len(xy) >= 3 and ((xy >= 0) & (xy <= 1)).all()
                objects.append((cls, xy * [width, height]))
            images[image.relative_to(root).as_posix()] = ((width, height), objects)
    return data, images


def fill_poly(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise as Ultralytics' ``polygon2mask`` does (OpenCV ``fillPoly`` of int32 vertices)."""
    out = np.zeros(shape, np.uint8)
    cv2.fillPoly(out, [np.asarray(polygon, dtype=np.int32)], 1)
    return out > 0


def test_yolo_seg_dataset_reads_back(aset: AnnotationSet, tmp_path: Path) -> None:
    images = image_folder(tmp_path / "images")
    out = tmp_path / "yolo"
    report = export_with_report(aset, "yolo-seg", out, image_root=images, tolerance=0)
    assert report.skipped_unassigned == 1 and report.unassigned_policy == "skipped" and report.holes_dropped == 0
    assert "1 object without a category was left out" in report.unassigned_message()
    data, read = read_yolo(out / "data.yaml")
    assert data["names"] == {0: "cat", 1: "dog", 2: "tree top"} and Path(data["path"]) == out.resolve()
    assert data["train"] == "images/train" and data["val"] in ("images/val", "images/train")
    split = lambda path: path.split("/")[1]  # noqa: E731
    a_path = next(p for p in read if p.endswith("/a.jpg"))
    b_path = next(p for p in read if p.endswith("/sub/b.png"))  # the RGBA image, converted to PNG
    assert (out / a_path).samefile(images / "a.jpg")  # hard link
    assert Image.open(out / b_path).mode == "RGB"
    assert (report.images_linked, report.images_converted) == (1, 1)
    names = names_of(aset)
    for img, path in ((aset.images[0], a_path), (aset.images[1], b_path)):
        size, objects = read[path]
        expected = assigned(img)
        assert size == (img.width, img.height) and len(objects) == len(expected)  # one line per object
        for (cls, polygon), inst in zip(objects, expected):
            assert data["names"][cls] == names[inst.category_id]
            assert np.array_equal(polygons_to_mask([Polygon(polygon)], inst.mask.shape), inst.mask)  # holes too
            filled = fill_poly(polygon, inst.mask.shape)  # what Ultralytics trains on: outline drawn
            assert not (inst.mask & ~filled).any()
            if inst.mask.sum() >= 100:
                assert iou(filled, inst.mask) >= 0.75
        assert split(path) in ("train", "val")
    # two_parts is one line: its two boxes joined by a bridge (a repeated pair of vertices)
    two_parts = read[a_path][1][2][1]
    assert len(two_parts) == 4 + 4 + 2


def test_yolo_seg_default_tolerance_and_split(tmp_path: Path) -> None:
    m = disc((120, 160), 60, 60, 45) | box((120, 160), 20, 100, 120, 150)
    m &= ~disc((120, 160), 60, 60, 10)  # a hole
    root = tmp_path / "images"
    root.mkdir()
    imgs = []
    for k in range(12):
        Image.new("L", (160, 120), 90).save(root / f"{k}.png")
        imgs.append(ImageAnnotation(f"{k}.png", 160, 120, [Instance(m, 1)]))
    (root / "images").mkdir()
    Image.new("L", (160, 120), 90).save(root / "images" / "inner.png")  # a folder called images inside
    imgs.append(ImageAnnotation("images/inner.png", 160, 120, [Instance(m, 1)]))
    s = AnnotationSet([Category(1, "c")], imgs)
    out = tmp_path / "yolo"
    export(s, "yolo-seg", out, image_root=root, bundle=True)
    data, read = read_yolo(out / "data.yaml")
    assert "path" not in data and data["val"] == "images/val"  # a bundle: relative to data.yaml
    assert len(read) == 13 and {p.split("/")[1] for p in read} == {"train", "val"}
    assert any(p.endswith("/images_/inner.png") for p in read)
    for _, objects in read.values():
        (cls, polygon), = objects
        assert cls == 0 and len(polygon) < 120
        assert iou(polygons_to_mask([Polygon(polygon)], m.shape), m) >= 0.98


def test_every_format_writes_parseable_files(aset: AnnotationSet, tmp_path: Path) -> None:
    for fmt in FORMATS:
        out = tmp_path / fmt
        files = export(aset, fmt, out)
        assert files and all(f.is_file() for f in files)
        for f in files:
            if f.suffix == ".json":
                json.loads(f.read_text(encoding="utf-8"))
            elif f.suffix == ".png":
                Image.open(f).load()
        assert no_temp_files(out)


def test_export_skips_empty_instances(aset: AnnotationSet, tmp_path: Path) -> None:
    aset.images[1].instances.append(Instance(np.zeros(B, bool), category_id=1))
    report = export_with_report(aset, "coco", tmp_path)
    assert report.skipped_empty == 1
    anns = json.loads((tmp_path / "annotations.json").read_text())["annotations"]
    assert all(a["area"] > 0 for a in anns)


@pytest.mark.parametrize("fmt", ["labelme", "yolo-seg", "coco"])
def test_tolerance_keeps_shapes_close(fmt: str, tmp_path: Path) -> None:
    m = disc((120, 160), 60, 60, 45) | box((120, 160), 20, 100, 120, 150)
    s = AnnotationSet([Category(1, "c")], [ImageAnnotation("x.png", 160, 120, [Instance(m, 1)])])
    export(s, fmt, tmp_path, tolerance=0.7)
    if fmt == "labelme":
        back = import_labelme(tmp_path).images[0].instances[0].mask
    elif fmt == "coco":
        back = import_coco(tmp_path / "annotations.json").images[0].instances[0].mask
    else:
        rings = [
            np.array([float(v) for v in line.split()[1:]]).reshape(-1, 2) * [160, 120]
            for line in (tmp_path / "labels" / "train" / "x.txt").read_text().splitlines()
        ]
        assert len(rings) == 1  # the two parts joined into one polygon
        back = polygons_to_mask([Polygon(r) for r in rings], m.shape)
    assert iou(back, m) >= 0.98


def test_bad_tolerance(aset: AnnotationSet, tmp_path: Path) -> None:
    with pytest.raises(ClickmaskError, match="tolerance"):
        export(aset, "coco", tmp_path, tolerance=-1)


def test_labelme_import_file_list_and_stray_hole(tmp_path: Path) -> None:
    data = _labelme_base()
    data["shapes"].append(
        {"label": "c", "points": [[2, 2], [3, 2], [3, 3]], "group_id": 4, "shape_type": "polygon",
         "flags": {"hole": True}}
    )
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one" / "x.json").write_text(json.dumps(data))
    other = dict(_labelme_base(), imagePath="y.jpg")
    (tmp_path / "two" / "y.json").write_text(json.dumps(other))
    warnings: list[str] = []
    s = import_labelme([tmp_path / "one" / "x.json", tmp_path / "two"], warnings=warnings)
    assert [i.file_name for i in s.images] == ["one/x.jpg", "two/y.jpg"]  # relative to the common folder
    assert len(warnings) == 1 and "hole" in warnings[0]
    assert s.images[0].instances[0].mask.sum() == s.images[1].instances[0].mask.sum()


def test_instance_png_safe_names_and_empty_set(tmp_path: Path) -> None:
    m = box((4, 5), 1, 3, 1, 3)
    s = AnnotationSet([Category(1, "a/b: c")], [ImageAnnotation("x.png", 5, 4, [Instance(m, 1)])])
    files = export(s, "instance-png", tmp_path)
    assert files[0] == tmp_path / "instances" / "x" / "1_a_b_c.png"
    for fmt in FORMATS:
        export(AnnotationSet(), fmt, tmp_path / "empty" / fmt)
    assert json.loads((tmp_path / "empty" / "coco" / "annotations.json").read_text())["images"] == []
