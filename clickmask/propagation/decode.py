"""The memory read-out turned into a mask by the image engine's prompt decoder.

The read-out (64x64 object probabilities) becomes the decoder's prompts:

- ``mask_input``: the read-out upsampled to 256x256 and scaled to logits
  (``+-scale`` where certain, :func:`~.grid.prob_to_logits`);
- ``point``: a positive point at the most interior location of the read-out's
  largest object region (farthest from its edge);
- ``box``: the box around the read-out's object cells;
- ``negatives``: negative points where the read-out is confidently
  background, at the locations farthest from the object inside the box
  grown by half its size (0 = none).

Of the decoder's mask tokens the one that agrees best with the read-out is
kept (``select="agree"``; ``"token0"``: SAM's multi-prompt token). When even
that one overlaps the read-out by less than ``fallback`` (IoU), the decoder
misread the prompts and the read-out itself is the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from clickmask.propagation.grid import LOW_RES, FrameGrid, grid_to_low_res

#: Read-out probability above which a cell counts as object.
OBJECT = 0.5


@dataclass(frozen=True)
class DecodeOptions:
    """Which prompts the read-out becomes (see the module doc)."""

    mask_input: bool = True
    scale: float = 10.0
    point: bool = True
    box: bool = True
    negatives: int = 0
    select: str = "agree"
    fallback: float = 0.3

    def describe(self) -> dict:
        return {"mask_input": self.mask_input, "scale": self.scale, "point": self.point, "box": self.box,
                "negatives": self.negatives, "select": self.select, "fallback": self.fallback}


@dataclass
class Decoded:
    """A propagated frame's mask: 256x256 low-res logits, the decoder's predicted IoU, the read-out
    agreement (IoU of the kept mask with the read-out's object cells at 256x256) and the read-out."""

    low_res: np.ndarray
    score: float
    agreement: float
    readout: np.ndarray  # 64x64 object probabilities
    used_readout: bool = False

    @property
    def confidence(self) -> float:
        """How much to trust this frame: predicted IoU x read-out agreement (0 for an empty read-out)."""
        return float(self.score * self.agreement)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 1.0


def _interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of the pixel of ``mask`` (uint8/bool) farthest from its edge, in its largest component."""
    m = mask.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n > 2:
        biggest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        m = (labels == biggest).astype(np.uint8)
    dist = cv2.distanceTransform(np.pad(m, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return int(r), int(c)


def readout_prompts(prob256: np.ndarray, grid: FrameGrid, options: DecodeOptions
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(N x 2 float32 coords in the encoder's ``side`` frame, N labels) derived from 256x256 probabilities."""
    obj = prob256 > OBJECT
    f = grid.side / LOW_RES
    coords: list[tuple[float, float]] = []
    labels: list[float] = []
    if options.point:
        r, c = _interior_point(obj)
        coords.append(((c + 0.5) * f, (r + 0.5) * f))
        labels.append(1.0)
    if options.box or options.negatives:
        rows = np.flatnonzero(obj.any(axis=1))
        cols = np.flatnonzero(obj.any(axis=0))
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        if options.box:
            coords += [(c0 * f, r0 * f), (c1 * f, r1 * f)]
            labels += [2.0, 3.0]
        if options.negatives:
            nh, nw = grid.resized
            lim_r, lim_c = int(np.ceil(nh / f)), int(np.ceil(nw / f))
            gr, gc = (r1 - r0) // 2 + 1, (c1 - c0) // 2 + 1
            region = np.zeros_like(obj)
            region[max(0, r0 - gr):min(lim_r, r1 + gr), max(0, c0 - gc):min(lim_c, c1 + gc)] = True
            background = region & (prob256 < 1.0 - 0.9)
            dist = cv2.distanceTransform((~obj).astype(np.uint8), cv2.DIST_L2, 5)
            dist[~background] = 0
            for _ in range(options.negatives):
                if dist.max() <= 2:
                    break
                r, c = np.unravel_index(int(np.argmax(dist)), dist.shape)
                coords.append(((c + 0.5) * f, (r + 0.5) * f))
                labels.append(0.0)
                cv2.circle(dist, (int(c), int(r)), 12, 0.0, -1)
    return np.array(coords, np.float32).reshape(-1, 2), np.array(labels, np.float32)


def decode_readout(model, embedding: np.ndarray, grid: FrameGrid, readout: np.ndarray,
                   options: DecodeOptions = DecodeOptions()) -> Decoded:
    """Decode a mask for a frame from its read-out.

    model: a :class:`~clickmask.engine.sam_onnx.SamOnnxPredictor` (only its
    decoder runs, on ``embedding``, 1x256x64x64); readout: 64x64 object
    probabilities. An empty read-out (the object is gone) gives an empty mask
    without running the decoder.
    """
    low_readout = grid_to_low_res(readout, options.scale)
    prob256 = (low_readout / options.scale + 1.0) / 2.0
    obj = prob256 > OBJECT
    if not obj.any():
        return Decoded(np.full((LOW_RES, LOW_RES), -options.scale, np.float32), 0.0, 0.0, readout, True)
    coords, labels = readout_prompts(prob256, grid, options)
    if len(coords) == 0 and not options.mask_input:
        raise ValueError("decode options give the decoder no prompt at all")
    masks, scores = model.decode_candidates(coords, labels, low_readout if options.mask_input else None,
                                            embedding=embedding)
    if options.select == "agree" and len(scores) > 1:
        agreements = [_iou(m > 0, obj) for m in masks]
        best = int(np.argmax(np.asarray(agreements) + 0.1 * np.asarray(scores)))
    else:
        best = model.select_candidate(len(coords), scores)
    agreement = _iou(masks[best] > 0, obj)
    if agreement < options.fallback:
        return Decoded(low_readout, float(scores[best]), agreement, readout, True)
    return Decoded(np.asarray(masks[best], np.float32), float(scores[best]), agreement, readout)
