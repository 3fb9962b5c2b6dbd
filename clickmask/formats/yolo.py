"""Ultralytics YOLO segmentation labels.

Layout::

    <out_dir>/data.yaml             path (this folder, absolute), train/val: images, nc, names
    <out_dir>/labels/<stem>.txt     one line per polygon part: "<class> x1 y1 x2 y2 ..."

``<class>`` is the 0-based index of the category in the category list, and
``names`` in ``data.yaml`` lists the category names in that order. Coordinates
are the polygon vertices in the pixel-corner convention (0 = left/top edge of
the image, W/H = right/bottom edge) divided by the image width/height, so they
lie in [0, 1]; 6 decimals. Each part of an instance is its own line (YOLO has
no notion of multi-part objects), and holes are dropped because YOLO polygons
cannot hold them: only the outer outline is written (counted in
``holes_dropped``). Unassigned and empty instances are skipped (counted). Lines
are written in drawing order (increasing z_order). Every image gets a label
file, empty when it has no objects (a background image for YOLO).

``<stem>`` keeps sub-folders. Ultralytics finds labels by replacing ``images``
with ``labels`` in the image path, so put (copy or link) the images under
``<out_dir>/images/`` with the same relative paths, e.g. ``images/sub/a.jpg``
for ``labels/sub/a.txt``. ``train`` and ``val`` both point at all images;
split them as you like.
"""

from __future__ import annotations

import json
from pathlib import Path

from clickmask.formats._common import ExportResult, exportable, instance_polygons, output_stems, write_text
from clickmask.formats.annotations import AnnotationSet, drawing_order

__all__ = ["export_yolo_seg", "data_yaml"]


def data_yaml(annotations: AnnotationSet, out_dir: Path) -> str:
    """Text of ``data.yaml``: names quoted as JSON strings (valid YAML double-quoted scalars)."""
    lines = [
        "# YOLO segmentation dataset exported by clickmask",
        "# Put the images under images/ next to labels/, with the same relative paths.",
        f"path: {json.dumps(str(Path(out_dir).resolve()), ensure_ascii=False)}",
        "train: images",
        "val: images",
        f"nc: {len(annotations.categories)}",
        "names:" if annotations.categories else "names: {}",
    ]
    for k, cat in enumerate(annotations.categories):
        lines.append(f"  {k}: {json.dumps(cat.name, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def export_yolo_seg(annotations: AnnotationSet, out_dir: Path, tolerance: float = 0.0) -> ExportResult:
    """Write ``labels/<stem>.txt`` per image and ``data.yaml`` (see the module docstring)."""
    out = Path(out_dir)
    result = ExportResult("yolo-seg")
    index = {c.id: k for k, c in enumerate(annotations.categories)}
    for img, stem in zip(annotations.images, output_stems(annotations)):
        lines: list[str] = []
        for i in drawing_order(img):
            inst = img.instances[i]
            mask = exportable(inst, result)
            if mask is None:
                continue
            polys = instance_polygons(mask, tolerance)
            if any(p.holes for p in polys):
                result.holes_dropped += 1
            for poly in polys:
                ring = poly.exterior
                if len(ring) < 3:
                    continue
                xs = ring[:, 0] / img.width
                ys = ring[:, 1] / img.height
                coords = " ".join(f"{x:.6f} {y:.6f}" for x, y in zip(xs.tolist(), ys.tolist()))
                lines.append(f"{index[inst.category_id]} {coords}")
        write_text(out / "labels" / f"{stem}.txt", "".join(line + "\n" for line in lines), result)
    write_text(out / "data.yaml", data_yaml(annotations, out), result)
    return result
