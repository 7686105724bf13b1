"""The check itself: serve arguments + config.json + platform + vLLM version -> findings."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LauncherError
from ..plan import memory
from . import engine as rules
from . import platforms
from .argument_findings import check_arguments
from .arguments import ServeArgs
from .model_facts import ModelFacts, load_model
from .platforms import Platform
from .versions import resolve_version, version_data
from .vllm_inprocess import vllm_findings

FP8_METHODS = ("fp8", "fbgemm_fp8", "ptpc_fp8", "modelopt", "fp8_per_tensor", "fp8_per_channel", "fp8_per_block")
ONLINE_FP8_METHODS = ("fp8", "fp8_per_tensor", "fp8_per_channel", "fp8_per_block", "ptpc_fp8")


@dataclass
class Verdict:
    accepted: bool
    findings: list[rules.Finding]
    effective_args: list[str]
    model: ModelFacts | None  # None when the arguments were refused before the model was read
    platform: Platform
    vllm_version: str
    facts: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "findings": [f.as_dict() for f in self.findings],
            "effective_args": self.effective_args,
            "model": self.model.name if self.model else None,
            "platform": self.platform.describe(),
            "target": self.platform.target,
            "vllm_version": self.vllm_version,
        }


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


def quantization_facts(quantization: str | None, args: dict[str, Any], model: dict[str, Any],
                       vllm: dict[str, Any]) -> dict[str, Any]:
    """The target release's own answers for the quantization method (derived by calling its config class:
    get_min_capability, get_supported_act_dtypes, get_config_filenames)."""
    derived_facts = vllm.get("quantization_facts") or {}
    method = (derived_facts.get("methods") or {}).get(quantization or "") or {}
    act_dtypes = [d.removeprefix("torch.") for d in method.get("supported_act_dtypes") or []]
    return {
        "quantization_min_capability": method.get("min_capability"),
        "quantization_act_dtypes": act_dtypes or None,
        "quantization_needs_checkpoint_config": bool(
            args["quantization"] and args["quantization"] in (derived_facts.get("needs_checkpoint_config") or [])
            and model["checkpoint_quant_method"] is None),
        "quantization_config_files": method.get("config_filenames"),
    }


def scheduler_facts(args: dict[str, Any], model: dict[str, Any], parsed: dict[str, Any]) -> dict[str, Any]:
    """The max_model_len the scheduler checks against (vllm/config/scheduler.py verify_max_model_len: the flag, else
    the derived limit, else 2048) and the ranks an expert-parallel group spans (TP x DP)."""
    given = args["max_model_len"]
    return {
        "effective_max_model_len": given if given else (model["max_model_len_limit"] or 2048),
        "ep_ranks": args["tensor_parallel_size"] * int(parsed.get("data_parallel_size") or 1),
    }


def derive(args: dict[str, Any], model: dict[str, Any], platform: dict[str, Any],
           table: dict[str, Any], vllm: dict[str, Any] | None = None) -> dict[str, Any]:
    """Facts that combine the arguments with the model or the platform (per-rank sizes, memory)."""
    tp = args["tensor_parallel_size"]
    vision_tp = 1 if args["mm_encoder_tp_mode"] == "data" else tp
    checkpoint = model["checkpoint_quant_method"]
    kv_heads = model["num_key_value_heads"]
    quantization = args["quantization"] or model["checkpoint_quant_method"]
    derived: dict[str, Any] = {
        "quantization": quantization,
        "online_fp8": args["quantization"] in ONLINE_FP8_METHODS and checkpoint is None,
        "fp8_weights": quantization in FP8_METHODS,
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
        "resolved_dtype": resolved_dtype(args, model, platform),
        "capability_int": None if platform.get("capability") is None else round(platform["capability"] * 10),
        **quantization_facts(quantization, args, model, vllm or {}),
    }
    total, available = platform["numa_total_gib"], platform["numa_available_gib"]
    if platform["kind"] == "cpu" and total and available is not None:
        left = max(available - table["cpu_vllm_startup_gib"], 0.0)
        derived["cpu_requested_gib"] = round(args["gpu_memory_utilization"] * total, 2)
        derived["cpu_available_for_vllm_gib"] = round(left, 2)
        # One percent below what will be left, rounded down to two decimals.
        derived["cpu_max_utilization"] = max(math.floor((left / total - 0.01) * 100) / 100, 0.0)
    return derived


def parsed_facts(namespace: Any) -> dict[str, Any]:
    """The values vLLM's own parser of the target release produced (vllm_parser), with its defaults."""
    if namespace is None:
        return {}
    return {key: value for key, value in vars(namespace).items()
            if value is None or isinstance(value, (bool, int, float, str, list, dict))}


def build_facts(args: ServeArgs, model: ModelFacts, platform: Platform, vllm: dict[str, Any],
                table: dict[str, Any], environ: dict[str, str] | None = None, namespace: Any = None) -> dict[str, Any]:
    environ = dict(os.environ if environ is None else environ)
    facts = {
        "args": args.facts(lowercase_quantization=bool(vllm["model_config"].get("quantization_lowercased"))),
        "model": model.facts(),
        "platform": platform.facts(),
        "vllm": vllm,
        "parsed": parsed_facts(namespace),
        "env": {key: value for key, value in environ.items() if key.startswith("VLLM_")},
        "table": {key: value for key, value in table.items() if key not in ("rules", "parsed_rules", "vllm_versions")},
    }
    facts["derived"] = derive(facts["args"], facts["model"], facts["platform"], table, vllm)
    facts["derived"].update(scheduler_facts(facts["args"], facts["model"], facts["parsed"]))
    facts["derived"].update(memory.fit_facts(args, model, platform, environ))  # GPU targets only
    return facts


def check(
    argv: list[str],
    target: str | None = None,
    vllm_version: str | None = None,
    config_folders: list[Path] | None = None,
    environ: dict[str, str] | None = None,
) -> Verdict:
    """The verdict; `environ` replaces this process's environment as the source of VLLM_* variables (a deployment
    file's container env, for `launcher check --from`)."""
    table = rules.load_table()
    version = resolve_version(vllm_version, table)
    vllm = version_data(version, table)
    platform = platforms.resolve(target, gpu_count=None)
    argument_findings, namespace = check_arguments(argv, version)
    if any(f.severity == "error" for f in argument_findings):
        return Verdict(False, argument_findings, list(argv), None, platform, version, {})
    args = ServeArgs.parse(argv, vllm["release"])
    if not args.model:
        raise LauncherError("no model given: pass --model PATH_OR_HF_ID (or the model as the first argument)")
    overrides = getattr(namespace, "hf_overrides", None)
    model = load_model(args.model, config_folders).as_served(
        overrides if isinstance(overrides, dict) else None, vllm["max_len"],
        bool(getattr(namespace, "disable_sliding_window", False)))
    facts = build_facts(args, model, platform, vllm, table, environ, namespace)
    findings = argument_findings + rules.evaluate(facts) + vllm_findings(list(argv), version)
    accepted = not any(f.severity == "error" for f in findings)
    return Verdict(accepted, findings, args.argv(), model, platform, version, facts)
