"""One binary PNG per instance.

Layout::

    <out_dir>/instances/<stem>/<k>_<category>.png   (H, W) 8-bit, 255 = instance, 0 = not
    <out_dir>/instances/index.json

``<stem>`` is the image's file name without its suffix (sub-folders kept), ``k``
the instance number (1-based rank in drawing order, increasing z_order, as in
:func:`~clickmask.formats.annotations.instance_map`) and ``<category>`` the
category name made safe for file names, or ``unassigned``. Every instance is
written, including unassigned and empty ones; each mask is the full instance,
not only its visible part. ``index.json``::

    {"categories": [{"id", "name", "color"}, ...],
     "instances": [{"file": "instances/<stem>/<k>_<category>.png", "image": <file_name>,
                    "instance": k, "category_id": id | null, "category": name | null,
                    "z_order": int, "area": pixels, "attributes": {...}}, ...]}

``file`` is relative to ``<out_dir>`` with ``/`` separators. Files of earlier
exports into the same folder are not removed; ``index.json`` lists the current ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clickmask.formats._common import ExportResult, gray_png, output_stems, safe_name, write_image, write_json
from clickmask.formats.annotations import AnnotationSet, _checked_mask, drawing_order

__all__ = ["export_instance_png"]


def export_instance_png(annotations: AnnotationSet, out_dir: Path) -> ExportResult:
    """Write one 0/255 PNG per instance and ``instances/index.json`` (see the module docstring)."""
    out = Path(out_dir)
    result = ExportResult("instance-png")
    names = {c.id: c.name for c in annotations.categories}
    entries: list[dict[str, Any]] = []
    for img, stem in zip(annotations.images, output_stems(annotations)):
        for k, i in enumerate(drawing_order(img), start=1):
            inst = img.instances[i]
            mask = _checked_mask(img, i)
            name = names.get(inst.category_id) if inst.category_id is not None else None
            rel = f"instances/{stem}/{k}_{safe_name(name, 'category') if name else 'unassigned'}.png"
            write_image(out / rel, gray_png(mask), result)
            entries.append(
                {
                    "file": rel,
                    "image": img.file_name,
                    "instance": k,
                    "category_id": inst.category_id,
                    "category": name,
                    "z_order": int(inst.z_order),
                    "area": int(np.count_nonzero(mask)),
                    "attributes": inst.attributes,
                }
            )
    categories = [{"id": c.id, "name": c.name, "color": c.color} for c in annotations.categories]
    index = {"categories": categories, "instances": entries}
    write_json(out / "instances" / "index.json", index, result, indent=1)
    return result
