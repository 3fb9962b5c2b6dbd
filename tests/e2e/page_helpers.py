"""What several browser tests ask the page: where an image pixel is on the page, the mask being clicked, an export."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def page_point(page, x: float, y: float) -> tuple[float, float]:
    """The page coordinates of image pixel (x, y) in the viewer."""
    p = page.evaluate("([x, y]) => window.cm.viewer.toPage(x, y)", [float(x), float(y)])
    return p["x"], p["y"]


def shown_mask(page, image_id: int) -> np.ndarray:
    """The mask the page's tab has in progress, as the server holds it."""
    from clickmask.geometry.rle import decode_rle

    rle = page.evaluate("""async (id) => {
        const r = await fetch(`/api/images/${id}/mask?format=rle`,
                              {headers: {"X-Clickmask-Tab": sessionStorage.getItem("clickmask-tab")}});
        return (await r.json()).rle;
    }""", image_id)
    return decode_rle(rle)


def export_with_button(page, fmt: str, select: str = "export-format", button: str = "export") -> tuple[Path, list[str]]:
    """Choose ``fmt`` in the export list, press Export, wait for the report: (its folder, its files)."""
    page.get_by_test_id(select).select_option(fmt)
    page.get_by_test_id(button).click()
    page.wait_for_function(f"window.cm.state.exportResult && window.cm.state.exportResult.format === '{fmt}'")
    result = page.evaluate("window.cm.state.exportResult")
    return Path(result["dir"]), result["files"]
