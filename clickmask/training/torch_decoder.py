"""A differentiable PyTorch twin of a SAM-style ONNX prompt encoder + mask decoder.

The architecture follows Segment Anything's prompt encoder and mask decoder,
written out here so that training can back-propagate through it; all weights
are read from the ONNX decoder's initializers (see :func:`load_onnx_weights`)
and become ordinary ``nn.Parameter``s.

Point convention (as in SAM's ONNX export): ``point_coords`` are (x, y) in the
1024 frame; the encoder adds 0.5, divides by 1024, maps to [-1, 1] and applies
the random Fourier features. Labels: 1 positive, 0 negative, 2/3 box corners,
-1 padding (not-a-point embedding, no positional encoding).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clickmask.errors import ModelError

EMBED_DIM = 256
EMBED_HW = 64
LOW_RES = 256
NUM_MASK_TOKENS = 4
INPUT_SIDE = 1024


class LayerNorm2d(nn.Module):
    """Channel-wise layer norm of a BxCxHxW tensor (SAM's LayerNorm2d)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them."""

    def __init__(self, dims: list[int]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class Attention(nn.Module):
    """Multi-head attention with q/k/v projections to ``dim // downsample`` channels."""

    def __init__(self, dim: int, heads: int, downsample: int = 1) -> None:
        super().__init__()
        inner = dim // downsample
        self.heads = heads
        self.q_proj = nn.Linear(dim, inner)
        self.k_proj = nn.Linear(dim, inner)
        self.v_proj = nn.Linear(dim, inner)
        self.out_proj = nn.Linear(inner, dim)

    def _split(self, x: Tensor) -> Tensor:
        b, n, c = x.shape
        return x.reshape(b, n, self.heads, c // self.heads).transpose(1, 2)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        q, k, v = self._split(self.q_proj(q)), self._split(self.k_proj(k)), self._split(self.v_proj(v))
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        out = (attn @ v).transpose(1, 2)
        return self.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


class TwoWayBlock(nn.Module):
    """Token self-attention, token->image, MLP, image->token attention (SAM's TwoWayAttentionBlock)."""

    def __init__(self, dim: int, heads: int, mlp_dim: int, skip_first_pe: bool) -> None:
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Module()
        self.mlp.lin1 = nn.Linear(dim, mlp_dim)
        self.mlp.lin2 = nn.Linear(mlp_dim, dim)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, heads, downsample=2)
        self.skip_first_pe = skip_first_pe

    def forward(self, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor) -> tuple[Tensor, Tensor]:
        if self.skip_first_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            q = queries + query_pe
            queries = queries + self.self_attn(q, q, queries)
        queries = self.norm1(queries)
        q, k = queries + query_pe, keys + key_pe
        queries = self.norm2(queries + self.cross_attn_token_to_image(q, k, keys))
        queries = self.norm3(queries + self.mlp.lin2(F.relu(self.mlp.lin1(queries))))
        q, k = queries + query_pe, keys + key_pe
        keys = self.norm4(keys + self.cross_attn_image_to_token(k, q, queries))
        return queries, keys


class TwoWayTransformer(nn.Module):
    """Two two-way blocks and a final token->image attention."""

    def __init__(self, dim: int = EMBED_DIM, depth: int = 2, heads: int = 8, mlp_dim: int = 2048) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TwoWayBlock(dim, heads, mlp_dim, skip_first_pe=(i == 0)) for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, heads, downsample=2)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image: Tensor, image_pe: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor]:
        """image, image_pe: BxCxHxW; tokens: BxTxC -> (BxTxC tokens, Bx(HW)xC image)."""
        keys = image.flatten(2).transpose(1, 2)
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = tokens
        for layer in self.layers:
            queries, keys = layer(queries, keys, tokens, key_pe)
        q, k = queries + tokens, keys + key_pe
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q, k, keys))
        return queries, keys


def fourier_features(coords: Tensor, gaussian: Tensor) -> Tensor:
    """Random Fourier positional encoding of ...x2 coords in [0, 1] -> ...x(2*F)."""
    proj = (2.0 * coords - 1.0) @ gaussian * (2.0 * math.pi)
    return torch.cat([torch.sin(proj), torch.cos(proj)], dim=-1)


class PromptEncoder(nn.Module):
    """Sparse (points) and dense (mask) prompt embeddings, as in SAM's ONNX export."""

    def __init__(self, dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.gaussian = nn.Parameter(torch.zeros(2, dim // 2))  # positional_encoding_gaussian_matrix
        self.point_embeddings = nn.Parameter(torch.zeros(4, dim))  # labels 0, 1, 2, 3
        self.not_a_point_embed = nn.Parameter(torch.zeros(dim))
        self.no_mask_embed = nn.Parameter(torch.zeros(dim))
        self.mask_downscaling = nn.Sequential(
            nn.Conv2d(1, 4, 2, stride=2), LayerNorm2d(4), nn.GELU(),
            nn.Conv2d(4, 16, 2, stride=2), LayerNorm2d(16), nn.GELU(),
            nn.Conv2d(16, dim, 1),
        )

    def embed_points(self, coords: Tensor, labels: Tensor) -> Tensor:
        """BxNx2 coords (1024 frame), BxN labels -> BxNxC point embeddings."""
        pe = fourier_features((coords + 0.5) / INPUT_SIDE, self.gaussian)
        lab = labels.unsqueeze(-1)
        emb = pe * (lab != -1) + self.not_a_point_embed * (lab == -1)
        for i in range(self.point_embeddings.shape[0]):
            emb = emb + self.point_embeddings[i] * (lab == i)
        return emb

    def embed_mask(self, mask_input: Tensor, has_mask_input: Tensor) -> Tensor:
        """Bx1x256x256 logits, B flags -> BxCx64x64 dense embedding."""
        has = has_mask_input.reshape(-1, 1, 1, 1)
        return self.mask_downscaling(mask_input) * has + (1.0 - has) * self.no_mask_embed[None, :, None, None]

    def dense_pe(self, hw: int = EMBED_HW) -> Tensor:
        """CxHxW positional encoding of the embedding grid (pixel centres)."""
        grid = (torch.arange(hw, dtype=torch.float32, device=self.gaussian.device) + 0.5) / hw
        y, x = torch.meshgrid(grid, grid, indexing="ij")
        return fourier_features(torch.stack([x, y], dim=-1), self.gaussian).permute(2, 0, 1)


class MaskDecoder(nn.Module):
    """Two-way transformer, output upscaling, per-token hypernetwork MLPs and the IoU head."""

    def __init__(self, dim: int = EMBED_DIM, num_mask_tokens: int = NUM_MASK_TOKENS) -> None:
        super().__init__()
        self.iou_token = nn.Parameter(torch.zeros(1, dim))
        self.mask_tokens = nn.Parameter(torch.zeros(num_mask_tokens, dim))
        self.transformer = TwoWayTransformer(dim)
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, 2, stride=2), LayerNorm2d(dim // 4), nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, 2, stride=2), nn.GELU(),
        )
        self.output_hypernetworks_mlps = nn.ModuleList(MLP([dim, dim, dim, dim // 8]) for _ in range(num_mask_tokens))
        self.iou_prediction_head = MLP([dim, dim, dim, num_mask_tokens])

    def forward(self, image: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor) -> tuple[Tensor, Tensor]:
        """image: BxCx64x64, image_pe: Cx64x64, sparse: BxNxC, dense: BxCx64x64 ->
        (BxKx256x256 logits, BxK IoU predictions)."""
        b = sparse.shape[0]
        out_tokens = torch.cat([self.iou_token, self.mask_tokens], 0).unsqueeze(0).expand(b, -1, -1)
        tokens = torch.cat([out_tokens, sparse], dim=1)
        src = image + dense
        pos = image_pe.unsqueeze(0).expand(b, -1, -1, -1)
        hs, src = self.transformer(src, pos, tokens)
        k = self.mask_tokens.shape[0]
        iou_out, mask_out = hs[:, 0], hs[:, 1 : 1 + k]
        c, h, w = image.shape[1:]
        upscaled = self.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
        hyper = torch.stack([mlp(mask_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)], 1)
        bu, cu, hu, wu = upscaled.shape
        masks = (hyper @ upscaled.reshape(bu, cu, hu * wu)).reshape(bu, k, hu, wu)
        return masks, self.iou_prediction_head(iou_out)


class TorchSamDecoder(nn.Module):
    """SAM prompt encoder + mask decoder in PyTorch, weights loaded from an ONNX decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.prompt_encoder = PromptEncoder()
        self.mask_decoder = MaskDecoder()
        self.source_path: str = ""

    @classmethod
    def from_onnx(cls, path: str | Path) -> "TorchSamDecoder":
        """Build the decoder and load every weight from the ONNX file at ``path``."""
        model = cls()
        load_onnx_weights(model, path)
        model.source_path = str(path)
        model.eval()
        return model

    def forward(
        self,
        image_embeddings: Tensor,
        point_coords: Tensor,
        point_labels: Tensor,
        mask_input: Tensor,
        has_mask_input: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Decode all mask tokens.

        image_embeddings: Bx256x64x64 (or 1x256x64x64, shared by all B prompts);
        point_coords: BxNx2 (x, y) in the 1024 frame, padding point included;
        point_labels: BxN (1 pos, 0 neg, -1 padding, 2/3 box corners);
        mask_input: Bx1x256x256 previous low-res logits; has_mask_input: B (1.0 or 0.0).
        Returns (Bx4x256x256 low-res logits, Bx4 predicted IoUs).
        """
        b = point_coords.shape[0]
        if image_embeddings.shape[0] != b:
            image_embeddings = image_embeddings.expand(b, -1, -1, -1)
        sparse = self.prompt_encoder.embed_points(point_coords, point_labels)
        dense = self.prompt_encoder.embed_mask(mask_input, has_mask_input)
        return self.mask_decoder(image_embeddings, self.prompt_encoder.dense_pe(), sparse, dense)


def decode(
    decoder: TorchSamDecoder,
    embedding: Tensor,
    coords: Tensor,
    labels: Tensor,
    mask_input: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Mirror of ``SamOnnxPredictor.decode_candidates`` for one prompt set or a batch.

    embedding: 1x256x64x64 or Bx256x64x64; coords: Nx2 or BxNx2 (x, y, 1024 frame);
    labels: N or BxN; mask_input: 256x256 / Bx1x256x256 logits or None (zeros,
    has_mask 0). A padding point (0, 0, label -1) is appended.
    Returns (4x256x256, 4) for unbatched input, else (Bx4x256x256, Bx4).
    """
    single = coords.dim() == 2
    if single:
        coords, labels = coords[None], labels[None]
    b = coords.shape[0]
    dev, dt = embedding.device, embedding.dtype
    coords = torch.cat([coords.to(dt), torch.zeros(b, 1, 2, dtype=dt, device=dev)], 1)
    labels = torch.cat([labels.to(dt), torch.full((b, 1), -1.0, dtype=dt, device=dev)], 1)
    if mask_input is None:
        mask = torch.zeros(b, 1, LOW_RES, LOW_RES, dtype=dt, device=dev)
        has = torch.zeros(b, dtype=dt, device=dev)
    else:
        mask = mask_input.to(dt).reshape(-1, 1, LOW_RES, LOW_RES).expand(b, -1, -1, -1)
        has = torch.ones(b, dtype=dt, device=dev)
    masks, ious = decoder(embedding, coords, labels, mask, has)
    return (masks[0], ious[0]) if single else (masks, ious)


# -- loading weights from ONNX -------------------------------------------------------


def _initializers(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _module_path(node_output: str) -> str:
    """'/transformer/layers.0/self_attn/q_proj/MatMul_output_0' -> 'transformer.layers.0.self_attn.q_proj'."""
    return ".".join(p for p in node_output.split("/")[:-1] if p)


def onnx_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Map the ONNX decoder's initializers to this module's parameter names.

    Named initializers (``mask_decoder.*``, ``*.prompt_encoder.*``) map by name.
    Anonymous ones are found by tracing the graph: MatMul weights (stored
    transposed, ``in x out``) take the module path of the node that uses them;
    the LayerNorm2d scales/shifts are the constant operands of the Mul/Add after
    the normalisation; ``no_mask_embed`` is multiplied by ``1 - has_mask_input``;
    the 1x5x256 constant that is expanded over the batch holds the IoU token and
    the four mask tokens.
    """
    import onnx

    try:
        graph = onnx.load(str(path)).graph
    except Exception as exc:  # onnx raises several exception types for bad files
        raise ModelError(f"cannot read ONNX decoder '{path}': {exc}") from exc
    inits = _initializers(graph)
    out: dict[str, np.ndarray] = {}
    pe = "prompt_encoder."
    for name, value in inits.items():
        if name.startswith("mask_decoder."):
            out[name] = value
        elif ".prompt_encoder." in name or name.startswith(pe):
            short = name[name.index(pe) + len(pe):]
            if short == "pe_layer.positional_encoding_gaussian_matrix":
                out[pe + "gaussian"] = value
            elif short.startswith("point_embeddings."):
                out.setdefault(pe + "point_embeddings", np.zeros((4, value.shape[-1]), np.float32))
                out[pe + "point_embeddings"][int(short.split(".")[1])] = value.reshape(-1)
            elif short == "not_a_point_embed.weight":
                out[pe + "not_a_point_embed"] = value.reshape(-1)
            elif short == "no_mask_embed.weight":
                out[pe + "no_mask_embed"] = value.reshape(-1)
            else:
                out[pe + short] = value
    producers = {o: n for n in graph.node for o in n.output}
    for node in graph.node:
        consts = [i for i in node.input if i in inits and not (i.startswith("mask_decoder.") or "prompt_encoder." in i)]
        if not consts:
            continue
        value = inits[consts[0]]
        where = _module_path(node.output[0])
        if node.op_type == "MatMul" and where.startswith("transformer."):
            out["mask_decoder." + where + ".weight"] = value.T
        elif node.op_type in ("Mul", "Add") and where.split(".")[0] in ("mask_downscaling", "output_upscaling"):
            # '/mask_downscaling/mask_downscaling.1/Mul' -> prompt_encoder.mask_downscaling.1.weight
            parts = where.split(".")
            module = "prompt_encoder." if parts[0] == "mask_downscaling" else "mask_decoder."
            kind = "weight" if node.op_type == "Mul" else "bias"
            out[f"{module}{parts[0]}.{parts[-1]}.{kind}"] = value.reshape(-1)
        elif node.op_type == "Mul" and value.size == EMBED_DIM:
            other = next(i for i in node.input if i != consts[0])
            sub = producers.get(other)
            if sub is not None and sub.op_type == "Sub" and "has_mask_input" in sub.input:
                out[pe + "no_mask_embed"] = value.reshape(-1)
        elif node.op_type == "Expand" and value.ndim == 3 and value.shape[1] == 1 + NUM_MASK_TOKENS:
            out["mask_decoder.iou_token"] = value[0, :1]
            out["mask_decoder.mask_tokens"] = value[0, 1:]
    return out


def load_onnx_weights(model: TorchSamDecoder, path: str | Path) -> None:
    """Copy the ONNX decoder's weights into ``model``; ModelError if any is missing or misshapen."""
    state = onnx_state_dict(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        raise ModelError(f"ONNX decoder '{path}' has no weights for {len(missing)} parameters, e.g. {missing[0]}")
    with torch.no_grad():
        for name, param in own.items():
            value = torch.from_numpy(np.array(state[name], dtype=np.float32))
            if value.shape != param.shape:
                raise ModelError(
                    f"ONNX decoder '{path}': {name} has shape {tuple(value.shape)}, expected {tuple(param.shape)}"
                )
            param.copy_(value)
