"""Facts that combine the arguments with the model or the platform (per-rank sizes, memory fit), and the whole
fact tree the rules read. Pure: what it needs was gathered (check/gather.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import memory, vllm_parser
from .arguments import ServeArgs
from .attention_backend import attention_facts
from .model_facts import ModelFacts
from .model_size import ExpertSplit
from .platforms import Platform


def _per_rank(value: int | None, ranks: int) -> float | None:
    return None if value is None else value / ranks


DTYPE_SPELLINGS = {"half": "float16", "float": "float32"}


def resolved_dtype(args: dict[str, Any], model: dict[str, Any], platform: dict[str, Any]) -> str:
    """The activation dtype vLLM will run (vllm/config/model.py _get_and_verify_dtype): the flag's, else the
    checkpoint's 16-bit dtype (float32 checkpoints are served in 16 bits), bfloat16 turned float16 on CUDA GPUs
    below capability 8.0 (CudaPlatform.supported_dtypes)."""
    dtype = DTYPE_SPELLINGS.get(str(args["dtype"]), str(args["dtype"]))
    if dtype != "auto":
        return dtype
    checkpoint = str(model.get("torch_dtype") or "bfloat16")
    dtype = "float16" if checkpoint == "float16" else "bfloat16"
    capability = platform.get("capability")
    if dtype == "bfloat16" and platform.get("kind") == "cuda" and capability is not None and capability < 8.0:
        return "float16"
    return dtype


def quantization_facts(
    quantization: str | None, args: dict[str, Any], model: dict[str, Any], vllm: dict[str, Any]
) -> dict[str, Any]:
    """The target release's own answers for the quantization method (derived by calling its config class:
    get_min_capability, get_supported_act_dtypes, get_config_filenames)."""
    derived_facts = vllm.get("quantization_facts") or {}
    method = (derived_facts.get("methods") or {}).get(quantization or "") or {}
    act_dtypes = [d.removeprefix("torch.") for d in method.get("supported_act_dtypes") or []]
    return {
        "quantization_min_capability": method.get("min_capability"),
        "quantization_act_dtypes": act_dtypes or None,
        "quantization_needs_checkpoint_config": bool(
            args["quantization"]
            and args["quantization"] in (derived_facts.get("needs_checkpoint_config") or [])
            and model["checkpoint_quant_method"] is None
        ),
        "quantization_config_files": method.get("config_filenames"),
        "quantization_checkpoint_sources": " or ".join(
            ["a quantization_config in config.json", *(method.get("config_filenames") or [])]
        ),
        # what vLLM's get_quant_config raised for the method on a checkpoint without a quantization config
        "quantization_unquantized_error": (method.get("unquantized_checkpoint") or {}).get("refused"),
    }


def scheduler_facts(args: dict[str, Any], model: dict[str, Any]) -> dict[str, Any]:
    """The max_model_len the scheduler checks against (vllm/config/scheduler.py verify_max_model_len: the flag, else
    the derived limit, else 2048)."""
    given = args["max_model_len"]
    return {"effective_max_model_len": given if given else (model["max_model_len_limit"] or 2048)}


def attention_section(vllm: dict[str, Any]) -> dict[str, Any] | None:
    """The release's derived attention facts (data/vllm/<release>.json), read once per release."""
    release = vllm.get("release")
    return vllm_parser.release_facts(str(release)).get("attention") if release else None


def served_quantization(model: dict[str, Any], platform: dict[str, Any], vllm: dict[str, Any]) -> dict[str, str] | None:
    """What the release's own ModelConfig._verify_quantization did on the sample checkpoint this one is like, on
    this platform (data/vllm/<release>.json checkpoint_quantization, executed on CPU and per CUDA capability): each
    --quantization it serves (`-`: none given) and the method it serves it with. None where nothing was derived:
    another platform, a checkpoint like no sample, a release without the section."""
    release, sample = vllm.get("release"), model.get("checkpoint_sample")
    if not release or not sample:
        return None
    served = ((vllm_parser.release_facts(str(release)).get("checkpoint_quantization") or {}).get("served") or {}).get(
        sample
    ) or {}
    if platform.get("kind") == "cpu":
        return served.get("cpu")
    capability = platform.get("capability")
    if platform.get("kind") != "cuda" or capability is None:
        return None
    derived = [key for key in served if key != "cpu" and float(key) <= float(capability) + 1e-9]
    return served[max(derived, key=float)] if derived else None


def checkpoint_quantization_facts(
    args: dict[str, Any], model: dict[str, Any], platform: dict[str, Any], vllm: dict[str, Any], table: dict[str, Any]
) -> dict[str, Any]:
    """Which --quantization values vLLM serves on this checkpoint and with which method (derived), else the table's
    hand-read list (quantization_accepted_for_checkpoint)."""
    checkpoint, given = model["checkpoint_quant_method"], args["quantization"]
    served = served_quantization(model, platform, vllm) if checkpoint else None
    if served is None:
        accepted = table["quantization_accepted_for_checkpoint"].get(checkpoint, [checkpoint])
        return {
            "accepted_quantization_flags": accepted,
            "checkpoint_quantization_derived": False,
            "quantization_served_as": None,
            "quantization_replaced": False,
        }
    served_as = served.get(given or "-")
    return {
        "accepted_quantization_flags": sorted(name for name in served if name != "-"),
        "checkpoint_quantization_derived": True,
        "quantization_served_as": served_as,
        # a flag naming the checkpoint's own method is not ignored when vLLM picks its kernel variant (gptq ->
        # auto_gptq); one naming another method that vLLM serves with the checkpoint's is
        "quantization_replaced": bool(given and served_as and given not in (served_as, checkpoint)),
    }


def parsed_facts(namespace: Any) -> dict[str, Any]:
    """The values vLLM's own parser of the target release produced (vllm_parser), with its defaults."""
    if namespace is None:
        return {}
    return {
        key: value
        for key, value in vars(namespace).items()
        if value is None or isinstance(value, (bool, int, float, str, list, dict))
    }


def derive(
    args: dict[str, Any],
    model: dict[str, Any],
    platform: dict[str, Any],
    table: dict[str, Any],
    vllm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Facts that combine the arguments with the model or the platform (per-rank sizes, memory)."""
    tp = args["tensor_parallel_size"]
    vision_tp = 1 if args["mm_encoder_tp_mode"] == "data" else tp
    checkpoint = model["checkpoint_quant_method"]
    kv_heads = model["num_key_value_heads"]
    served = checkpoint_quantization_facts(args, model, platform, vllm or {}, table)
    # the method vLLM serves with: the flag's, the checkpoint's, or the one an override put in the flag's place
    quantization = served["quantization_served_as"] if served["quantization_replaced"] else None
    quantization = quantization or args["quantization"] or model["checkpoint_quant_method"]
    parsed = args.get("parsed") or {}
    experts = ExpertSplit.of(tp, int(parsed.get("data_parallel_size") or 1), bool(parsed.get("enable_expert_parallel")))
    derived: dict[str, Any] = {
        "quantization": quantization,
        "online_fp8": args["quantization"] in table["fp8_methods"]["online"] and checkpoint is None,
        "fp8_weights": quantization in table["fp8_methods"]["weights"],
        "kv_cache_fp8": str(args["kv_cache_dtype"]).startswith("fp8"),
        "heads_per_rank": _per_rank(model["num_attention_heads"], tp),
        "kv_heads_per_rank": _per_rank(kv_heads, tp),
        "kv_heads_split_ok": None if kv_heads is None else (kv_heads % tp == 0 or tp % kv_heads == 0),
        "intermediate_per_rank": _per_rank(model["intermediate_size"], tp),
        "ep_ranks": experts.ranks,
        "moe_shard_ranks": experts.shard_ranks,
        "moe_intermediate_per_rank": _per_rank(model["moe_intermediate_size"], experts.shard_ranks),
        "vision_tp": vision_tp,
        "vision_intermediate_per_rank": _per_rank(model["vision_intermediate_size"], vision_tp),
        **served,
        "block_n": (model["weight_block_size"] or [None])[0],
        "block_k": (model["weight_block_size"] or [None, None])[-1],
        "gpus_requested": args["world_size"],
        "resolved_dtype": resolved_dtype(args, model, platform),
        "capability_int": None if platform.get("capability") is None else round(platform["capability"] * 10),
        **quantization_facts(quantization, args, model, vllm or {}),
    }
    derived.update(
        attention_facts(args, model, platform, attention_section(vllm or {}), table, derived["resolved_dtype"])
    )
    derived.update(memory.cpu_fit_facts(args["gpu_memory_utilization"], platform, table["cpu_vllm_startup_gib"]))
    return derived


def build_facts(
    args: ServeArgs,
    model: ModelFacts,
    platform: Platform,
    vllm: dict[str, Any],
    table: dict[str, Any],
    environ: Mapping[str, str],
    parsed: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """args.* (args.parsed: the release parser's values), model.*, platform.*, vllm.*, env.* (VLLM_* of `environ`),
    table.* and derived.*."""
    facts = {
        "args": args.facts(
            lowercase_quantization=bool((vllm.get("model_config") or {}).get("quantization_lowercased", True))
        ),
        "model": model.facts(),
        "platform": platform.facts(),
        "vllm": vllm,
        "env": {key: value for key, value in environ.items() if key.startswith("VLLM_")},
        "table": {key: value for key, value in table.items() if key not in ("rules", "parsed_rules", "vllm_versions")},
    }
    facts["args"]["parsed"] = parsed or {}
    facts["derived"] = derive(facts["args"], facts["model"], facts["platform"], table, vllm)
    facts["derived"].update(scheduler_facts(facts["args"], facts["model"]))
    facts["derived"].update(memory.fit_facts(args, model, platform, environ))  # GPU targets only
    return facts
