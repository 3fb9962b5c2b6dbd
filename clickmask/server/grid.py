"""The patch grid of a large image: go through it patch by patch and mark each one done (as EISeg does).

A large image is cut into square patches of ``patch`` pixels (the last row and
column smaller), numbered row by row from the top-left: patch ``k`` is column
``k % cols``, row ``k // cols``. Which patches are done is kept in the
project's settings table as ``grid/<image id>`` = ``{"patch": p, "done": [k, ...]}``,
so every annotator of a team project sees the same progress; changing the
patch size starts the grid over.
"""

from __future__ import annotations

import math
from typing import Any

from clickmask.errors import ClickmaskError
from clickmask.project.store import ProjectStore

#: Patch sides a user can choose (pixels); the default is the first window size that holds most objects.
PATCH_SIDES = (1024, 2048, 4096, 8192)
DEFAULT_PATCH = 2048


def _key(image_id: int) -> str:
    return f"grid/{image_id}"


def grid_state(store: ProjectStore, image_id: int, width: int, height: int) -> dict[str, Any]:
    """The grid as the browser shows it: patch side, columns, rows, the done patches and, per patch,
    how many finished objects have their box's centre in it."""
    kept = store.get_setting(_key(image_id)) or {}
    patch = int(kept.get("patch", DEFAULT_PATCH))
    cols, rows = math.ceil(width / patch), math.ceil(height / patch)
    objects = [0] * (cols * rows)
    for inst in store.list_instances(image_id):
        x, y, w, h = inst["bbox"]
        col, row = min(cols - 1, int((x + w / 2) // patch)), min(rows - 1, int((y + h / 2) // patch))
        objects[row * cols + col] += 1
    done = sorted(int(k) for k in kept.get("done", []) if 0 <= int(k) < cols * rows)
    return {"patch": patch, "cols": cols, "rows": rows, "done": done, "objects": objects}


def set_grid(store: ProjectStore, image_id: int, width: int, height: int, patch: Any = None,
             done: Any = None) -> dict[str, Any]:
    """Change the patch side (the done marks start over) and/or the done patches; returns the grid.

    Raises ClickmaskError (one line) for a patch side not offered or a patch that does not exist.
    """
    current = grid_state(store, image_id, width, height)
    if patch is not None and patch not in PATCH_SIDES:
        raise ClickmaskError(f"patch side {patch!r}: choose one of {', '.join(map(str, PATCH_SIDES))}")
    side = current["patch"] if patch is None else int(patch)
    count = math.ceil(width / side) * math.ceil(height / side)
    if done is None:
        marks = current["done"] if side == current["patch"] else []
    else:
        if not isinstance(done, list) or not all(isinstance(k, int) and not isinstance(k, bool) for k in done):
            raise ClickmaskError("done: expected a list of patch numbers")
        bad = [k for k in done if not 0 <= k < count]
        if bad:
            raise ClickmaskError(f"patch {bad[0]} does not exist (the grid has {count} patches of {side} px)")
        marks = sorted(set(done))
    store.set_setting(_key(image_id), {"patch": side, "done": marks})
    return grid_state(store, image_id, width, height)
