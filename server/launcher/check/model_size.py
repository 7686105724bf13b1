"""How big a model is, from config.json alone: its shape, parameters per GPU, bytes per parameter at
each precision, and KV cache bytes per token.

Weights follow what vLLM quantizes: online FP8 (`--quantization fp8` on a BF16 checkpoint) converts every
LinearBase layer (attention, MLP, experts, vision tower) and leaves the embeddings, the lm_head (a
VocabParallelEmbedding), norms and MoE routers in BF16 (quantization/fp8.py get_quant_method). A
pre-quantized checkpoint is read from its quantization_config (fp8 block, compressed-tensors int4 group,
mxfp4 experts, ModelOpt FP8/NVFP4, GPTQ/AWQ), ignore lists included. MTP (next-n) layers are not counted:
vLLM loads them only for speculative decoding.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import LauncherError
from .engine import load_table
from .kv_cache import CHUNKED, FULL, MLA, SLIDING, LayerSpec
from .model_facts import ModelFacts


@dataclass(frozen=True)
class ExpertSplit:
    """How vLLM spreads a MoE layer's experts over the ranks (fused_moe/config.py FusedMoEParallelConfig.make,
    0.17-0.33): over all TP x DP ranks (flatten_tp_across_dp); with expert parallelism, which needs more than one
    rank, every rank holds whole experts, else each expert's intermediate is split over all of them."""

    ranks: int = 1
    expert_parallel: bool = False

    @classmethod
    def of(cls, tp: int, dp: int, enable_expert_parallel: bool) -> ExpertSplit:
        ranks = tp * dp
        return cls(ranks, enable_expert_parallel and ranks > 1)

    @property
    def shard_ranks(self) -> int:
        """The ranks one expert's intermediate is split over: 1 with expert parallelism."""
        return 1 if self.expert_parallel else self.ranks

    def local_experts(self, experts: int) -> int:
        """The experts the fullest rank holds (determine_expert_map): ceil(experts / ranks) with expert
        parallelism, else a share of every one of them."""
        return math.ceil(experts / self.ranks) if self.expert_parallel else experts

    def intermediate(self, expert_intermediate: int) -> float:
        """One local expert's intermediate size on a rank."""
        return expert_intermediate / self.shard_ranks


# Modules vLLM builds as LinearBase (quantizable) and those it leaves in the model dtype.
LINEAR = ("attn", "indexer_q", "dense_mlp", "experts", "shared_experts", "vision")
UNQUANTIZED = ("embed", "lm_head", "router", "indexer_k")
# One module name per category, to match checkpoint ignore lists (modules_to_not_convert, ignore, ...).
REPRESENTATIVE = {
    "attn": ("model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.o_proj"),
    "indexer_q": ("model.layers.1.self_attn.indexer.wq_b",),
    "dense_mlp": ("model.layers.0.mlp.gate_proj", "model.layers.0.mlp.down_proj"),
    "experts": ("model.layers.5.mlp.experts.0.gate_proj", "model.layers.5.mlp.experts.0.down_proj"),
    "shared_experts": ("model.layers.5.mlp.shared_experts.gate_proj", "model.layers.5.mlp.shared_expert.gate_proj"),
    "vision": ("visual.blocks.0.attn.qkv", "vision_tower.encoder.layers.0.mlp.fc1"),
}
# config.json files that rely on transformers' defaults (Gemma3TextConfig: vocab 262208, tied embeddings).
DEFAULT_VOCAB = {"gemma3": 262208, "gemma3_text": 262208}
DEFAULT_TIED = ("gemma3", "gemma3_text")


class MemoryModelError(LauncherError):
    """The memory model cannot size this model or this option (an unknown quantization, a missing field)."""


# -- the model's shape --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    experts: int = 0
    experts_per_token: int = 0
    expert_intermediate: int = 0
    shared_intermediate: int = 0
    moe_layers: int = 0
    kv_lora_rank: int | None = None
    q_lora_rank: int | None = None
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    index_head_dim: int | None = None
    index_heads: int = 0
    sliding_layers: int = 0
    sliding_window: int | None = None
    chunked_layers: int = 0
    attention_chunk: int | None = None
    vision_params: int = 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None

    @property
    def is_sparse_mla(self) -> bool:
        return self.is_mla and self.index_head_dim is not None

    @property
    def latent(self) -> int:
        """kv_lora_rank of an MLA model (0 otherwise): the latent cache's width before the rope part."""
        return self.kv_lora_rank or 0

    @property
    def indexer_dim(self) -> int:
        """index_head_dim of a sparse-MLA model (0 otherwise)."""
        return self.index_head_dim or 0


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _moe_layers(text: Mapping[str, Any], layers: int) -> int:
    if text.get("n_routed_experts"):  # DeepSeek, Kimi: dense first_k_dense_replace layers, then every moe_layer_freq
        first, freq = _int(text.get("first_k_dense_replace")), _int(text.get("moe_layer_freq")) or 1
        return sum(1 for i in range(first, layers) if i % freq == 0)
    if text.get("num_experts") and text.get("decoder_sparse_step") is not None:  # Qwen MoE
        step, dense = _int(text.get("decoder_sparse_step")) or 1, set(text.get("mlp_only_layers") or [])
        return sum(1 for i in range(layers) if i not in dense and (i + 1) % step == 0)
    return layers


def _sliding(text: Mapping[str, Any], model_type: str | None, layers: int) -> tuple[int, int | None]:
    """Sliding-window layers, as vLLM's models pick them: layer_types (llama.py, gemma3.py), gpt-oss's even
    layers (gpt_oss.py), Gemma-3's pattern, else every layer when config.json sets a window (Attention falls
    back to cache_config.sliding_window: Mistral 7B v0.1)."""
    window = _int(text.get("sliding_window"))
    if not window or text.get("use_sliding_window") is False:  # Qwen2: a window that is off
        return 0, None
    if isinstance(text.get("layer_types"), list):
        return sum(1 for t in text["layer_types"][:layers] if t == "sliding_attention"), window
    if model_type == "gpt_oss":
        return sum(1 for i in range(layers) if i % 2 == 0), window
    if model_type in ("gemma3", "gemma3_text"):  # every sliding_window_pattern-th layer is global
        pattern = _int(text.get("sliding_window_pattern")) or 6
        return sum(1 for i in range(layers) if (i + 1) % pattern), window
    return layers, window


def _chunked(text: Mapping[str, Any], layers: int) -> tuple[int, int | None]:
    """Llama 4's chunked local attention: the RoPE layers (no_rope_layers[i] == 1) attend within a chunk."""
    chunk = _int(text.get("attention_chunk_size"))
    flags = text.get("no_rope_layers")
    if not chunk or not isinstance(flags, list):
        return 0, None
    return sum(1 for f in flags[:layers] if f), chunk


def _vision_params(vision: Mapping[str, Any]) -> int:
    """The vision tower's blocks; for a Qwen-VL tower (out_hidden_size, spatial_merge_size: qwen2_5_vl.py,
    qwen3_vl.py) also its patch embedding, position embedding and patch mergers (one, plus one per deepstack
    level: fc1 of (hidden x merge^2) squared, fc2 to out_hidden_size)."""
    hidden = _int(vision.get("hidden_size") or vision.get("vt_hidden_size"))
    inner = _int(vision.get("intermediate_size") or vision.get("vt_intermediate_size"))
    depth = _int(vision.get("depth") or vision.get("num_hidden_layers") or vision.get("vt_num_hidden_layers"))
    blocks = depth * (4 * hidden * hidden + 2 * hidden * inner)
    out_hidden, merge = _int(vision.get("out_hidden_size")), _int(vision.get("spatial_merge_size"))
    if not (out_hidden and merge):
        return blocks
    patch = _int(vision.get("patch_size")) or 14
    values = (_int(vision.get("in_channels")) or 3) * (_int(vision.get("temporal_patch_size")) or 1) * patch * patch
    merged = hidden * merge * merge
    mergers = 1 + len(vision.get("deepstack_visual_indexes") or [])
    return (
        blocks
        + values * hidden
        + _int(vision.get("num_position_embeddings")) * hidden
        + mergers * (merged * merged + merged * out_hidden)
    )


def shape_of(model: ModelFacts) -> Shape:
    facts, text = model.facts(), model.text
    missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads") if not facts.get(k)]
    if missing:
        raise MemoryModelError(f"config.json of {model.name} has no {', '.join(missing)}; the planner cannot size it")
    layers = facts["num_hidden_layers"]
    vocab = facts["vocab_size"] or model.config.get("vocab_size") or DEFAULT_VOCAB.get(str(text.get("model_type")))
    if not vocab:
        raise MemoryModelError(f"config.json of {model.name} has no vocab_size; the planner cannot size it")
    experts = _int(facts.get("num_experts"))
    model_type = text.get("model_type") or model.config.get("model_type")
    tied = text.get("tie_word_embeddings", model.config.get("tie_word_embeddings", model_type in DEFAULT_TIED))
    shared = _int(text.get("shared_expert_intermediate_size")) or (
        _int(text.get("n_shared_experts")) * _int(text.get("moe_intermediate_size"))
    )
    sliding, window = _sliding(text, model_type, layers)
    chunked, chunk = _chunked(text, layers)
    return Shape(
        hidden=facts["hidden_size"],
        layers=layers,
        heads=facts["num_attention_heads"],
        kv_heads=facts["num_key_value_heads"] or facts["num_attention_heads"],
        head_dim=facts["head_dim"],
        intermediate=_int(facts.get("intermediate_size")),
        vocab=int(vocab),
        tied=bool(tied),
        experts=experts,
        experts_per_token=_int(text.get("num_experts_per_tok")),
        expert_intermediate=_int(text.get("moe_intermediate_size")) or _int(facts.get("intermediate_size")),
        shared_intermediate=shared,
        moe_layers=_moe_layers(text, layers) if experts else 0,
        kv_lora_rank=text.get("kv_lora_rank"),
        q_lora_rank=text.get("q_lora_rank"),
        qk_rope_head_dim=_int(text.get("qk_rope_head_dim")),
        qk_nope_head_dim=_int(text.get("qk_nope_head_dim")),
        v_head_dim=_int(text.get("v_head_dim")),
        index_head_dim=text.get("index_head_dim") if text.get("index_topk") else None,
        index_heads=_int(text.get("index_n_heads")),
        sliding_layers=sliding,
        sliding_window=window if sliding else None,
        chunked_layers=chunked,
        attention_chunk=chunk if chunked else None,
        vision_params=_vision_params(model.vision),
    )


# -- parameters per GPU -------------------------------------------------------------------------------


def params_per_rank(shape: Shape, tp: int, experts: ExpertSplit, vision_tp: int) -> dict[str, float]:
    """Parameters one tensor-parallel rank holds, per category, for all layers (pipeline stages split them).
    With expert parallelism the fullest rank holds ceil(experts / (TP x DP)) whole experts
    (fused_moe/layer.py determine_expert_map); without it every rank holds 1/TP of each expert."""
    h, layers = shape.hidden, shape.layers
    if shape.is_mla:
        qk_head = shape.qk_nope_head_dim + shape.qk_rope_head_dim
        replicated = h * (shape.latent + shape.qk_rope_head_dim)  # kv_a_proj_with_mqa: ReplicatedLinear
        if shape.q_lora_rank:
            replicated += h * shape.q_lora_rank  # q_a_proj (fused with kv_a, replicated)
            split = shape.q_lora_rank * shape.heads * qk_head
        else:
            split = h * shape.heads * qk_head
        split += shape.latent * shape.heads * (shape.qk_nope_head_dim + shape.v_head_dim)  # kv_b_proj
        split += shape.heads * shape.v_head_dim * h  # o_proj
        attn = replicated + split / tp
    else:
        kv_per_rank = math.ceil(shape.kv_heads / tp)  # replicated when TP > KV heads
        attn = 2 * h * shape.heads * shape.head_dim / tp + 2 * h * kv_per_rank * shape.head_dim
    params = {"attn": attn * layers}
    if shape.is_sparse_mla:  # the indexer is replicated: wq_b (quantizable), wk + weights_proj (kept BF16)
        params["indexer_q"] = layers * (shape.q_lora_rank or h) * shape.indexer_dim * shape.index_heads
        params["indexer_k"] = layers * h * (shape.indexer_dim + shape.index_heads)
    dense_layers = layers - shape.moe_layers
    params["dense_mlp"] = dense_layers * 3 * h * shape.intermediate / tp
    if shape.moe_layers:
        local = experts.local_experts(shape.experts) * experts.intermediate(shape.expert_intermediate)
        params["experts"] = shape.moe_layers * local * 3 * h
        params["shared_experts"] = shape.moe_layers * 3 * h * shape.shared_intermediate / tp
        params["router"] = shape.moe_layers * h * shape.experts
    params["embed"] = shape.vocab * h / tp
    params["lm_head"] = 0.0 if shape.tied else shape.vocab * h / tp
    params["vision"] = shape.vision_params / vision_tp
    return params


def model_buffers_bytes(model: ModelFacts, shape: Shape, batched_tokens: int, dtype_bytes: float) -> float:
    """Tensors the model allocates at construction besides its parameters, which vLLM's "Model loading took"
    counts: the RoPE cos/sin cache, max_position_embeddings x rotary dim in the model dtype, one per distinct
    rotary embedding (rotary_embedding/base.py, shared through get_rope's _ROPE_DICT; Gemma-3 has a local and a
    global one), and Qwen3-VL's deepstack input buffers, one [max_num_batched_tokens, hidden] per level
    (qwen3_vl.py)."""
    text = model.text
    positions = _int(model.text_with_defaults().get("max_position_embeddings"))
    if shape.is_mla:
        rotary = shape.qk_rope_head_dim
    else:
        rotary = int(shape.head_dim * float(text.get("partial_rotary_factor") or 1.0))
    ropes = 2 if str(text.get("model_type", "")).startswith("gemma3") else 1
    deepstack = len(model.vision.get("deepstack_visual_indexes") or [])
    return (ropes * positions * rotary + deepstack * batched_tokens * shape.hidden) * dtype_bytes


# -- bytes per parameter: how the weights are stored -------------------------------------------------------


@dataclass(frozen=True)
class WeightScheme:
    label: str
    bytes: Mapping[str, float]
    accuracy_rank: int = 0  # 0 BF16 (or the checkpoint as published), 1 FP8 per-channel, 2 FP8 per-tensor


def _ignored(patterns: Iterable[str], names: Iterable[str]) -> bool:
    for pattern in patterns:
        for name in names:
            if pattern.startswith("re:"):
                if re.match(pattern[3:], name):
                    return True
            elif (
                fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(name, f"{pattern}.*") or f".{pattern}." in f".{name}."
            ):
                return True
    return False


def _scheme(
    label: str,
    quantized_bytes: float,
    dtype_bytes: float,
    ignore: Iterable[str] = (),
    categories: Iterable[str] = LINEAR,
    rank: int = 0,
) -> WeightScheme:
    ignore = list(ignore)
    result = {cat: dtype_bytes for cat in (*LINEAR, *UNQUANTIZED)}
    for cat in categories:
        if not _ignored(ignore, REPRESENTATIVE.get(cat, (cat,))):
            result[cat] = quantized_bytes
    return WeightScheme(label, result, rank)


def _int_bytes(bits: float, group: int | None, zero_point: bool = False) -> float:
    """Packed integer weights plus a 16-bit scale (and a packed zero point) per group."""
    per_group = 2 + (bits / 8 if zero_point else 0)
    return bits / 8 + (per_group / group if group and group > 0 else 0)


def weight_scheme(model: ModelFacts, quantization: str | None, dtype_bytes: float) -> WeightScheme:
    """How vLLM stores this checkpoint's weights with this --quantization."""
    quant = model.checkpoint_quantization()
    if quant is None:
        return _online_scheme(quantization, dtype_bytes)
    method = str(quant.get("quant_method", "")).lower()
    ignore = [
        *(quant.get("modules_to_not_convert") or []),
        *(quant.get("ignored_layers") or []),
        *(quant.get("ignore") or []),
        *(quant.get("exclude_modules") or []),
    ]
    if method in ("fp8", "fbgemm_fp8"):
        block = quant.get("weight_block_size")
        scale = 4 / (block[0] * block[-1]) if block else 0.0
        detail = f"block {block[0]}x{block[-1]}" if block else "per-tensor"
        return _scheme(f"FP8 {detail} (checkpoint)", 1 + scale, dtype_bytes, ignore)
    if method == "mxfp4":
        return _scheme("MXFP4 experts (checkpoint)", 0.5 + 1 / 32, dtype_bytes, ignore, categories=("experts",))
    if method == "modelopt":
        # modelopt.py ModelOptQuantConfigBase.from_config (0.26): hf_quant_config.json's "quantization" lists
        # exclude_modules; config.json's quantization_config (compressed-tensors style) lists "ignore" and its
        # exclude_modules is never read. get_quant_method quantizes ParallelLMHead too unless it is excluded.
        listed = quant.get("ignore") if model.checkpoint_quantization_in_config() else quant.get("exclude_modules")
        excluded, with_head = list(listed or []), (*LINEAR, "lm_head")
        algo = str(quant.get("quant_algo", "")).upper()
        if algo == "FP8":
            return _scheme("FP8 (ModelOpt checkpoint)", 1.0, dtype_bytes, excluded, categories=with_head)
        if algo == "NVFP4":
            return _scheme("NVFP4 (ModelOpt checkpoint)", 0.5 + 1 / 16, dtype_bytes, excluded, categories=with_head)
        raise MemoryModelError(f"the planner does not size ModelOpt quant_algo {algo or '?'} yet")
    if method == "compressed-tensors":
        groups = [g for g in (quant.get("config_groups") or {}).values() if g.get("weights")]
        if not groups:
            raise MemoryModelError("compressed-tensors checkpoint without weight config_groups")
        weights = groups[0]["weights"]
        bits = weights.get("num_bits") or 8
        if weights.get("type") == "float" and bits == 8:
            size = 1.0
        else:
            size = _int_bytes(bits, weights.get("group_size"), not weights.get("symmetric", True))
        label = f"{'FP' if weights.get('type') == 'float' else 'INT'}{bits}"
        if weights.get("group_size"):
            label += f" group {weights['group_size']}"
        targets = groups[0].get("targets") or ["Linear"]
        categories = LINEAR if "Linear" in targets else ("experts",)
        return _scheme(f"{label} (compressed-tensors checkpoint)", size, dtype_bytes, ignore, categories)
    if method in ("gptq", "awq", "gptq_marlin", "awq_marlin", "auto_gptq", "auto_awq", "moe_wna16"):
        bits = quant.get("bits") or quant.get("w_bit") or 4
        group = quant.get("group_size") or quant.get("q_group_size") or 128
        zero = method.startswith("awq") or not quant.get("sym", True)
        return _scheme(
            f"INT{bits} group {group} ({method} checkpoint)", _int_bytes(bits, group, zero), dtype_bytes, ignore
        )
    if method == "bitsandbytes":
        four = quant.get("load_in_4bit", True)
        return _scheme(
            f"bitsandbytes {'4' if four else '8'}-bit (checkpoint)", 0.5 + 4 / 64 if four else 1.0, dtype_bytes, ignore
        )
    raise MemoryModelError(f"the planner does not size quant_method {method!r} checkpoints yet")


def _online_scheme(quantization: str | None, dtype_bytes: float) -> WeightScheme:
    if quantization is None:
        return _scheme(
            "BF16" if dtype_bytes == 2 else f"{int(dtype_bytes * 8)}-bit float", dtype_bytes, dtype_bytes, categories=()
        )
    if quantization in load_table()["fp8_methods"]["online"]:
        per_channel = quantization in ("fp8_per_channel", "ptpc_fp8")
        block = 4 / (128 * 128) if quantization == "fp8_per_block" else 0.0
        kind = "per-channel" if per_channel else "block 128x128" if block else "per-tensor"
        return _scheme(f"FP8 {kind} (online)", 1 + block, dtype_bytes, rank=1 if per_channel else 2)
    if quantization in ("int8_per_channel_weight_only", "experts_int8"):
        categories = ("experts",) if quantization == "experts_int8" else LINEAR
        return _scheme(f"INT8 ({quantization}, online)", 1.0, dtype_bytes, categories=categories, rank=2)
    if quantization == "mxfp8":
        return _scheme("MXFP8 (online)", 1 + 1 / 32, dtype_bytes, rank=2)
    if quantization == "bitsandbytes":
        return _scheme("bitsandbytes 4-bit (online)", 0.5 + 4 / 64, dtype_bytes, rank=3)
    raise MemoryModelError(f"the planner does not size --quantization {quantization} on an unquantized checkpoint")


# -- KV cache -----------------------------------------------------------------------------------------------

KV_BYTES = {
    "bfloat16": 2,
    "float16": 2,
    "half": 2,
    "float": 4,
    "float32": 4,
    "fp8": 1,
    "fp8_e4m3": 1,
    "fp8_e5m2": 1,
    "fp8_inc": 1,
    "fp8_ds_mla": 1,
    "fp8_per_token_head": 1,
    "int8_per_token_head": 1,
}
# vLLM's sparse MLA "FP8 with scale" layout: 512 fp8 NoPE + 4 fp32 scales + 64 bf16 RoPE values
# (v1/attention/backends/mla/flashmla_sparse.py; kv_cache_interface.py).
SPARSE_MLA_FP8_BYTES = 656
# The indexer's own cache per token per layer: index_head_dim fp8 values + one fp32 scale per 128
# (models/deepseek_v2.py Indexer.k_cache).
INDEXER_SCALE_BLOCK = 128


def kv_cache_dtype(requested: str, model: ModelFacts, dtype_bytes: float) -> tuple[str, float]:
    """The KV cache dtype vLLM ends up with, and its bytes per element."""
    if requested == "auto":
        checkpoint = model.facts()["checkpoint_kv_cache_quant"]
        if (
            isinstance(checkpoint, str)
            and checkpoint.upper().startswith("FP8")
            or (isinstance(checkpoint, dict) and checkpoint.get("num_bits") == 8)
        ):
            return "fp8 (from the checkpoint)", 1  # utils/torch_utils.py resolve_kv_cache_dtype_string
        return ("bf16" if dtype_bytes == 2 else f"{int(dtype_bytes * 8)}-bit"), dtype_bytes
    if requested not in KV_BYTES:
        raise MemoryModelError(f"the planner does not size --kv-cache-dtype {requested} yet")
    return requested, KV_BYTES[requested]


def kv_bytes_per_token_layer(shape: Shape, tp: int, kv_label: str, kv_bytes: float) -> float:
    """One token of one attention layer on one GPU."""
    if shape.is_sparse_mla:
        indexer = shape.indexer_dim + shape.indexer_dim // INDEXER_SCALE_BLOCK * 4
        main = SPARSE_MLA_FP8_BYTES if kv_bytes == 1 else (shape.latent + shape.qk_rope_head_dim) * kv_bytes
        return main + indexer
    if shape.is_mla:  # one latent vector per token, replicated on every TP rank
        return (shape.latent + shape.qk_rope_head_dim) * kv_bytes
    return 2 * math.ceil(shape.kv_heads / tp) * shape.head_dim * kv_bytes


def layer_specs(
    shape: Shape,
    tp: int,
    layers: int,
    kv_label: str,
    kv_bytes: float,
    block_size: int,
) -> list[LayerSpec] | None:
    """The KV cache spec of each of `layers` attention layers on one GPU (Attention.get_kv_cache_spec), in
    vLLM's grouping order; None for sparse MLA, whose indexer cache packs pages of another size."""
    if shape.is_sparse_mla:
        return None
    page = int(kv_bytes_per_token_layer(shape, tp, kv_label, kv_bytes) * block_size)
    if shape.is_mla:
        return [LayerSpec(MLA, block_size, page)] * layers
    sliding = round(shape.sliding_layers * layers / shape.layers)
    chunked = round(shape.chunked_layers * layers / shape.layers)
    specs = [LayerSpec(SLIDING, block_size, page, shape.sliding_window)] * sliding
    specs += [LayerSpec(CHUNKED, block_size, page, shape.attention_chunk)] * chunked
    return specs + [LayerSpec(FULL, block_size, page)] * (layers - sliding - chunked)
