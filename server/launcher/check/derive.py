"""Facts that combine the arguments with the model or the platform (per-rank sizes, memory fit), and the whole
fact tree the rules read. Pure: what it needs was gathered (check/gather.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import memory
from .arguments import ServeArgs
from .model_facts import ModelFacts
from .platforms import Platform


def _per_rank(value: int | None, ranks: int) -> float | None:
    return None if value is None else value / ranks


def derive(args: dict[str, Any], model: dict[str, Any], platform: dict[str, Any],
           table: dict[str, Any]) -> dict[str, Any]:
    """Facts that combine the arguments with the model or the platform (per-rank sizes, memory)."""
    tp = args["tensor_parallel_size"]
    vision_tp = 1 if args["mm_encoder_tp_mode"] == "data" else tp
    checkpoint = model["checkpoint_quant_method"]
    kv_heads = model["num_key_value_heads"]
    quantization = args["quantization"] or model["checkpoint_quant_method"]
    derived: dict[str, Any] = {
        "quantization": quantization,
        "online_fp8": args["quantization"] in table["fp8_methods"]["online"] and checkpoint is None,
        "fp8_weights": quantization in table["fp8_methods"]["weights"],
        "kv_cache_fp8": str(args["kv_cache_dtype"]).startswith("fp8"),
        "heads_per_rank": _per_rank(model["num_attention_heads"], tp),
        "kv_heads_per_rank": _per_rank(kv_heads, tp),
        "kv_heads_split_ok": None if kv_heads is None else (kv_heads % tp == 0 or tp % kv_heads == 0),
        "intermediate_per_rank": _per_rank(model["intermediate_size"], tp),
        "moe_intermediate_per_rank": _per_rank(model["moe_intermediate_size"], tp),
        "vision_tp": vision_tp,
        "vision_intermediate_per_rank": _per_rank(model["vision_intermediate_size"], vision_tp),
        "accepted_quantization_flags": table["quantization_accepted_for_checkpoint"].get(checkpoint, [checkpoint]),
        "block_n": (model["weight_block_size"] or [None])[0],
        "block_k": (model["weight_block_size"] or [None, None])[-1],
        "gpus_requested": args["world_size"],
    }
    derived.update(memory.cpu_fit_facts(args["gpu_memory_utilization"], platform, table["cpu_vllm_startup_gib"]))
    return derived


def build_facts(args: ServeArgs, model: ModelFacts, platform: Platform, vllm: dict[str, Any],
                table: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """args.*, model.*, platform.*, vllm.*, env.* (VLLM_* of `environ`), table.* and derived.*."""
    facts = {
        "args": args.facts(),
        "model": model.facts(),
        "platform": platform.facts(),
        "vllm": vllm,
        "env": {key: value for key, value in environ.items() if key.startswith("VLLM_")},
        "table": {key: value for key, value in table.items() if key not in ("rules", "parsed_rules", "vllm_versions")},
    }
    facts["derived"] = derive(facts["args"], facts["model"], facts["platform"], table)
    facts["derived"].update(memory.fit_facts(args, model, platform, environ))  # GPU targets only
    return facts