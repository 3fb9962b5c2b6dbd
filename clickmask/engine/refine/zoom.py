"""Focus view (option ``zoom``): refine the object in a crop encoded at full model resolution.

From click ``zoom_from`` on, each click is first predicted on the whole image
(so the object can grow anywhere); then the object (that mask and the positive
clicks) is cropped with margin ``zoom_expand`` and minimum side ``zoom_min``
px, the crop is encoded (its embedding cached like an image's), the clicks
inside it are mapped into it, and its prediction is pasted over the
whole-image one. The crop is kept while the object stays inside it; no zoom
when the crop would cover more than ``zoom_max_frac`` of the image's long side
(no resolution to gain). A prediction records its crop in ``info["crop"]``
and the crop's low-res logits in ``info["crop_low_res"]``.

The crop has a margin around the object, so the object's mask in it should
stay clear of the crop's edges inside the image. A crop prediction that
covers more than :data:`EDGE_LIMIT` of one of those edges has spilled out of
the object rather than found it (the decoder sometimes answers "all of it"):
it is not pasted, and the whole-image prediction stands (``info["crop_refused"]``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from clickmask.engine.clicks import BoxPrompt, Click
from clickmask.engine.predictor import Prediction
from clickmask.engine.refine.frame import Box, Frame, bbox
from clickmask.engine.refine.options import InferenceOptions


def choose_crop(options: InferenceOptions, clicks: Sequence[Click], current: Prediction,
                previous: Prediction | None, image_hw: tuple[int, int], user_box: BoxPrompt | None = None,
                ahead: bool = False) -> Box | None:
    """The crop to refine in, or None: object box (current mask + positive clicks + the user's
    ``user_box``, which counts as one click for ``zoom_from``), expanded; the previous crop (or the
    crop prepared for this click, ``info["next_crop"]``) is kept while the object stays inside it.

    ``ahead``: the crop the next click will start from, as if it were made now (one click more
    for ``zoom_from``), so that its encoding can start in the background while the user looks.
    """
    if not options.zoom or len(clicks) + (user_box is not None) + int(ahead) < options.zoom_from:
        return None
    h, w = image_hw
    box = bbox(current.logits > 0)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    for c in clicks:
        if c.positive:
            x0, y0 = min(x0, int(c.x)), min(y0, int(c.y))
            x1, y1 = max(x1, int(c.x) + 1), max(y1, int(c.y) + 1)
    if user_box is not None:
        ub = user_box
        x0, y0 = max(0, min(x0, int(ub.x0))), max(0, min(y0, int(ub.y0)))
        x1, y1 = min(w, max(x1, int(np.ceil(ub.x1)))), min(h, max(y1, int(np.ceil(ub.y1))))
    old = None if previous is None else previous.info.get("crop") or previous.info.get("next_crop")
    if old is not None:
        ox0, oy0, ox1, oy1 = old
        margin = 0.05 * max(ox1 - ox0, oy1 - oy0)
        inside = (x0 >= ox0 + margin or ox0 == 0) and (y0 >= oy0 + margin or oy0 == 0) and \
            (x1 <= ox1 - margin or ox1 == w) and (y1 <= oy1 - margin or oy1 == h)
        if inside:
            return old
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bw = max((x1 - x0) * options.zoom_expand, options.zoom_min)
    bh = max((y1 - y0) * options.zoom_expand, options.zoom_min)
    if max(bw, bh) > options.zoom_max_frac * max(h, w):
        return None
    nx0, ny0 = int(max(0, round(cx - bw / 2))), int(max(0, round(cy - bh / 2)))
    nx1, ny1 = int(min(w, round(cx + bw / 2))), int(min(h, round(cy + bh / 2)))
    return nx0, ny0, nx1, ny1


#: Share of one inner edge of the crop that a crop prediction may cover before it counts as spilling out.
EDGE_LIMIT = 0.5
EDGE_BAND = 3  # pixels


def fills_crop(zoomed: np.ndarray, crop: Box, image_hw: tuple[int, int]) -> bool:
    """True when the crop's HxW bool mask covers more than EDGE_LIMIT of an edge of the crop that lies inside the image."""
    x0, y0, x1, y1 = crop
    h, w = image_hw
    b = EDGE_BAND  # an edge is a band: a mask that stops a pixel short of the edge still fills the crop
    edges = [zoomed[:, :b].any(axis=1) if x0 > 0 else None, zoomed[:, -b:].any(axis=1) if x1 < w else None,
             zoomed[:b, :].any(axis=0) if y0 > 0 else None, zoomed[-b:, :].any(axis=0) if y1 < h else None]
    return any(e is not None and e.mean() > EDGE_LIMIT for e in edges)


def paste(pred: Prediction, zoomed: Prediction, crop: Box) -> Prediction:
    """The whole-image prediction with the crop's logits pasted in (the decoder state stays the whole image's)."""
    fused = pred.logits.copy()
    x0, y0, x1, y1 = crop
    fused[y0:y1, x0:x1] = zoomed.logits
    return Prediction(
        logits=fused, low_res_logits=pred.low_res_logits, score=zoomed.score, candidates=pred.candidates,
        info={**pred.info, "crop": crop, "crop_low_res": zoomed.low_res_logits},
    )


def mask_input(frame: Frame, previous: Prediction | None) -> np.ndarray | None:
    """The previous prediction as 256x256 low-res logits of ``frame`` (the whole image or a crop)."""
    if previous is None:
        return None
    crop = previous.info.get("crop")
    if frame.box is None:
        if crop is None:
            return previous.low_res_logits
    elif crop == frame.box and "crop_low_res" in previous.info:
        return previous.info["crop_low_res"]
    x0, y0 = frame.offset
    fh, fw = frame.size
    return frame.to_low_res(previous.logits[y0 : y0 + fh, x0 : x0 + fw])
