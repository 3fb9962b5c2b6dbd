"""Derive a faster, more informative decoder from a SAM ONNX decoder export.

SAM's standard ONNX export returns one mask, upsampled inside the graph to the
original image size. The graph computes more than it returns: the four mask
tokens' 256x256 low-res logits and their predicted IoUs, before it selects one
(best of tokens 1-3 for a single click, token 0 otherwise). This module cuts
the graph right there, so that

- the candidates are available (first-click disambiguation, click consistency),
- the in-graph upsampling is skipped (done in NumPy/OpenCV only where needed;
  CFR's inner passes never need it).

If the graph does not have the expected structure, :func:`extract_candidates_model`
returns None and the caller keeps using the full decoder.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

PROMPT_INPUTS = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input"]


def _find_candidate_tensors(graph) -> tuple[str, str] | None:
    """Names of (all low-res masks Nx4x256x256, all IoU predictions Nx4), or None."""
    producers = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    argmax = [n for n in graph.node if n.op_type == "ArgMax"]
    if len(argmax) != 1:
        return None
    add = producers.get(argmax[0].input[0])
    if add is None or add.op_type != "Add":
        return None
    iou_all = add.input[0]
    # walk forward from ArgMax to the Gather whose data comes from a Flatten of all masks
    frontier, seen = [argmax[0].output[0]], set()
    while frontier:
        name = frontier.pop()
        for node in consumers.get(name, []):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.op_type == "Gather":
                data = producers.get(node.input[0])
                if data is not None and data.op_type == "Flatten" and data.input[0] != iou_all:
                    return data.input[0], iou_all
            frontier.extend(node.output)
    return None


def extract_candidates_model(decoder_path: Path) -> tuple[bytes, tuple[str, str]] | None:
    """Serialized ONNX model prompts -> (all low-res masks, all IoU predictions), and
    the names of those two outputs.

    Returns None (and logs why) when the decoder's graph is not a standard SAM
    export or ``onnx`` cannot process it.
    """
    try:
        import onnx
        from onnx.utils import Extractor

        model = onnx.load(str(decoder_path))
        names = _find_candidate_tensors(model.graph)
        if names is None:
            logger.info("decoder %s: no multi-mask tensors found; using the full decoder", decoder_path)
            return None
        have = {i.name for i in model.graph.input}
        if not set(PROMPT_INPUTS) <= have:
            return None
        model = onnx.shape_inference.infer_shapes(model)
        sub = Extractor(model).extract_model(PROMPT_INPUTS, list(names))
        return sub.SerializeToString(), names
    except Exception as exc:  # a model we cannot cut is still usable whole
        logger.info("decoder %s: cannot extract candidates (%s); using the full decoder", decoder_path, exc)
        return None
