"""What --cpu-offload-gb moves off one GPU, as vLLM 0.26's UVA offloader does it.

model_executor/models/utils.py make_layers passes the decoder layers of this pipeline stage, in order, to
offloader/uva.py UVAOffloader.wrap_modules. For each layer, and inside it for each parameter in registration
order, it stops once the bytes offloaded so far reach cpu_offload_gb, else moves the whole parameter to pinned
CPU memory: the offloaded bytes are the first running total of decoder-layer parameters that reaches the
limit (one parameter past it at most), or all of them. The embeddings, the lm_head and the vision tower are
never offloaded (they are not built by make_layers).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from .model_size import ExpertSplit, Shape


def _attention(shape: Shape, tp: int) -> list[tuple[str, float]]:
    h = shape.hidden
    if shape.is_mla:
        qk_head = shape.qk_nope_head_dim + shape.qk_rope_head_dim
        fused_a = h * (shape.latent + shape.qk_rope_head_dim + (shape.q_lora_rank or 0))
        q_b = (shape.q_lora_rank or h) * shape.heads * qk_head / tp
        kv_b = shape.latent * shape.heads * (shape.qk_nope_head_dim + shape.v_head_dim) / tp
        o = shape.heads * shape.v_head_dim * h / tp
        return [("attn", fused_a), ("attn", q_b), ("attn", kv_b), ("attn", o)]
    kv_per_rank = math.ceil(shape.kv_heads / tp)
    qkv = h * (shape.heads * shape.head_dim / tp + 2 * kv_per_rank * shape.head_dim)
    return [("attn", qkv), ("attn", h * shape.heads * shape.head_dim / tp)]


def layer_parameters(shape: Shape, tp: int, experts: ExpertSplit, moe: bool) -> list[tuple[str, float]]:
    """(category, parameter count) of one decoder layer's large tensors, in vLLM's registration order."""
    h = shape.hidden
    found = _attention(shape, tp)
    if not moe:
        inner = shape.intermediate / tp
        return [*found, ("dense_mlp", 2 * h * inner), ("dense_mlp", h * inner)]
    local, inner = experts.local_experts(shape.experts), experts.intermediate(shape.expert_intermediate)
    found += [("router", h * shape.experts), ("experts", local * 2 * h * inner), ("experts", local * h * inner)]
    if shape.shared_intermediate:
        shared = shape.shared_intermediate / tp
        found += [("shared_experts", 2 * h * shared), ("shared_experts", h * shared)]
    return found


def _tensors(
    shape: Shape, tp: int, experts: ExpertSplit, layers: int, bytes_per: Mapping[str, float]
) -> Iterator[float]:
    moe_share = shape.moe_layers / shape.layers if shape.layers else 0.0
    moe_layers = round(moe_share * layers)
    for index in range(layers):  # dense layers first (DeepSeek's first_k_dense_replace)
        moe = index >= layers - moe_layers
        for category, count in layer_parameters(shape, tp, experts, moe):
            yield count * bytes_per[category]


def offloaded_bytes(
    shape: Shape,
    tp: int,
    experts: ExpertSplit,
    layers: int,
    bytes_per: Mapping[str, float],
    limit_bytes: float,
) -> float:
    """The bytes of this stage's decoder layers the UVA offloader moves to the CPU for a limit of `limit_bytes`."""
    if limit_bytes <= 0:
        return 0.0
    moved = 0.0
    for size in _tensors(shape, tp, experts, layers, bytes_per):
        if moved >= limit_bytes:
            break
        moved += size
    return moved
