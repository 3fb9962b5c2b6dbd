"""A corrective click's mask token that keeps what was right (option ``steady``).

For two or more prompts SAM answers with its single-mask token (token 0).
After a corrective click that token sometimes reshapes the whole mask, and
that is where a click makes a good mask worse. The decoder's other tokens
answer the same prompts; when token 0 keeps little of the mask fed back
(IoU at most ``steady_iou`` with it) and another token, scored almost as high
(at most ``steady_score`` lower), keeps clearly more of it (``steady_gain``
more IoU), that token is taken. Evidence: docs/decisions/0014-small-corrections-stay-local.md.
"""

from __future__ import annotations

import numpy as np

from clickmask.engine.refine.options import InferenceOptions


def low_res_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two 256x256 low-res logit maps' positive parts (0 if both are empty)."""
    pa, pb = a > 0, b > 0
    union = np.count_nonzero(pa | pb)
    return np.count_nonzero(pa & pb) / union if union else 0.0


def pick_steady(low_res: np.ndarray, scores: np.ndarray, mask_input: np.ndarray | None, best: int,
                options: InferenceOptions) -> int:
    """The token to use instead of ``best`` for a multi-prompt answer (``best`` if none qualifies).

    low_res: Kx256x256 logits of the decoder's tokens; scores: K predicted
    IoUs; mask_input: the 256x256 low-res logits fed back (None: nothing to keep).
    """
    if mask_input is None or len(scores) < 2:
        return best
    kept = [low_res_iou(low_res[k], mask_input) for k in range(len(scores))]
    if kept[best] > options.steady_iou:
        return best
    others = [k for k in range(len(scores)) if k != best and scores[k] >= scores[best] - options.steady_score
              and kept[k] > kept[best] + options.steady_gain]
    return max(others, key=lambda k: kept[k]) if others else best
