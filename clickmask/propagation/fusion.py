"""Merging a new round's propagated mask with the mask an earlier round left on the same frame.

A round propagates from the frame the user just corrected (``a``). The frames
it reaches may already hold masks of earlier rounds, each propagated from its
own annotated frame (``e``) and carrying that annotation's intent. Plain
*overwrite* replaces them. *Fusion* blends the two object probabilities per
pixel with the weight of the new mask

    w = w_dist + (1 - w_dist) * diff,   w_dist = d(j, e) / (d(j, a) + d(j, e))

``w_dist`` trusts the nearer annotation (1 at ``a``, 0 at ``e``). ``diff`` is
difference-aware: the change the user's correction made on ``a`` (pixels
added or removed relative to the mask ``a`` had before), carried to frame
``j`` by the same memory read-out as the mask (:func:`.propagator.Track`);
where the correction changed something, the new mask is taken even near
``e``; where it changed nothing, the nearer annotation decides.
"""

from __future__ import annotations

import numpy as np

from clickmask.propagation.grid import sigmoid

FUSION_MODES = ("fuse", "overwrite")


def distance_weight(j: int, new_source: int, old_source: int | None) -> float:
    """Weight of the new mask at frame ``j`` from its distances to the two source annotations.

    ``old_source`` None (unknown) trusts the new mask fully (1.0).
    """
    if old_source is None:
        return 1.0
    dn, do = abs(j - new_source), abs(j - old_source)
    return float(do / (dn + do)) if dn + do else 1.0


def fuse_low_res(new: np.ndarray, old: np.ndarray, weight: float, diff: np.ndarray | None = None) -> np.ndarray:
    """Blend two 256x256 logit maps: probability ``w p_new + (1 - w) p_old`` back to logits.

    weight: ``w_dist`` (scalar); diff: 256x256 in [0, 1] or None (see the
    module doc). Returns float32 log-odds, clipped to +-20.
    """
    w = np.float32(np.clip(weight, 0.0, 1.0))
    if diff is not None:
        w = w + (1.0 - w) * np.clip(np.asarray(diff, np.float32), 0.0, 1.0)
    p = w * sigmoid(new) + (1.0 - w) * sigmoid(old)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.clip(np.log(p / (1 - p)), -20, 20).astype(np.float32)
