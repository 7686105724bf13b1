"""The attention backend vLLM's CUDA platform will pick, or the error it stops with, from the release's derived facts.

Pure: the facts (data/vllm/<release>.json `attention`) were derived by executing each backend's supports_* and
supports_combination on vLLM's own CUDA platform per compute capability (tools/derive_vllm_attention.py). This module
replays vllm/platforms/cuda.py CudaPlatformBase.get_attn_backend_cls: an explicit backend is validated alone
("Selected backend ... is not valid for this configuration. Reason: [...]"); otherwise every backend of
_get_backend_priorities is validated (AttentionBackend.validate_configuration, its reasons in the release's order)
and the first valid one wins, or "No valid attention backend found for cuda with AttentionSelectorConfig(...).
Reasons: {...}." tests/check/test_class4_attention_backend.py compares it with vLLM's own answers (samples recorded
by the same derivation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

DEVICE_NAME = "cuda"  # CudaPlatformBase.device_name


@dataclass(frozen=True)
class AttentionQuery:
    """One attention layer's inputs to vllm/v1/attention/selector.py get_attn_backend."""

    capability: int  # 90 for 9.0
    head_size: int
    dtype: str  # float16 | bfloat16 | float32
    kv_cache_dtype: str  # after vLLM's own resolution (resolved_kv_cache_dtype)
    block_size: int | None = None  # only when --block-size was given
    use_mla: bool = False
    use_sparse: bool = False
    has_sink: bool = False
    has_sliding_window: bool = False
    num_heads: int | None = None  # attention heads per rank
    model_shape: str = "mha"  # a key of the derived model_shapes
    backend: str | None = None  # --attention-backend


@dataclass
class Selection:
    """vLLM's answer: a backend, or its error; `unknown` says why no answer is predicted (inputs not derived)."""

    backend: str | None = None
    error: str | None = None
    explicit: bool = False
    valid: list[str] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    unknown: str | None = None


class NotDerived(Exception):
    """An input the derivation did not ask about: the selection is not predicted."""


def _reasons(facts: dict[str, Any], section: dict[str, Any], query: AttentionQuery) -> list[str]:
    """AttentionBackend.validate_configuration, replayed on the backend's derived answers."""
    if "error" in facts:
        raise NotDerived(f"{facts.get('class', 'a backend')} could not be loaded: {facts['error']}")
    validation = section["validation"]
    text = validation["reasons"]
    if query.head_size not in section["head_sizes_asked"]:
        raise NotDerived(f"head size {query.head_size} was not asked")
    if query.block_size is not None and query.block_size not in section["block_sizes_asked"]:
        raise NotDerived(f"block size {query.block_size} was not asked")
    failing = {
        "supports_head_size": query.head_size not in facts["head_sizes"],
        "supports_dtype": query.dtype not in facts["dtypes"],
        "supports_kv_cache_dtype": query.kv_cache_dtype not in facts["kv_cache_dtypes"],
        "supports_block_size": query.block_size is not None and query.block_size not in facts["block_sizes"],
        "mla": query.use_mla and facts["is_mla"] is not True,
        "non_mla": not query.use_mla and facts["is_mla"] is True,
        "supports_sink": query.has_sink and facts["sink"] is not True,
        "sparse": query.use_sparse and facts["is_sparse"] is not True,
        "non_sparse": not query.use_sparse and facts["is_sparse"] is True,
        "supports_compute_capability": facts["compute_capability"] is not True,
        "supports_attn_type": facts.get("decoder", True) is not True,
        "supports_sliding_window": query.has_sliding_window and facts["sliding_window"] is not True,
    }
    reasons = [text[name] for name in validation["order"] if failing.get(name) and name in text]
    combination = _combination_reason(facts, section, query)
    if combination:
        reasons.append(combination)
    return reasons


def _combination_reason(facts: dict[str, Any], section: dict[str, Any], query: AttentionQuery) -> str | None:
    """supports_combination's reason for the query; it was asked under each model shape of the backend's kind (MLA
    or not), so a backend of the other kind (already refused) has none here."""
    if query.use_mla != (facts["is_mla"] is True):
        return None
    if query.model_shape not in section["model_shapes"]:
        raise NotDerived(f"model shape {query.model_shape} was not asked")
    entry = (facts.get("combination") or {}).get(query.model_shape)
    asked = (
        query.head_size in facts["head_sizes"]
        and query.dtype in facts["dtypes"]
        and query.kv_cache_dtype in facts["kv_cache_dtypes"]
    )
    if not entry or not asked:  # outside the grid the backend is refused anyway; vLLM may add a reason here
        return None
    if "all" in entry:
        return str(entry["all"])
    key = f"{query.head_size}|{query.dtype}|{query.kv_cache_dtype}|{int(query.has_sink)}"
    return next((reason for reason, keys in entry.get("some", {}).items() if key in keys), None)


def priorities(section: dict[str, Any], query: AttentionQuery) -> list[str]:
    """vllm/platforms/cuda.py _get_backend_priorities for the query (derived per capability)."""
    orders = section["cuda"][str(query.capability)]["priorities"]
    quantized = query.kv_cache_dtype.startswith("fp8") or query.kv_cache_dtype.endswith("per_token_head")
    kv = "fp8" if quantized or query.kv_cache_dtype == "nvfp4" else "auto"
    heads = "16" if query.num_heads is not None and query.num_heads <= 16 else "128"
    key = f"{'mla' if query.use_mla else 'mha'}/{kv}/{heads}"
    special = orders["by_head_size"].get(str(query.head_size), {})
    return list(special.get(key) or orders["default"][key])


def config_repr(section: dict[str, Any], query: AttentionQuery) -> str:
    """AttentionSelectorConfig.__repr__ of the release for the query."""
    values = {
        "head_size": query.head_size,
        "dtype": f"torch.{query.dtype}",
        "kv_cache_dtype": query.kv_cache_dtype,
        "block_size": query.block_size,
        "use_mla": query.use_mla,
        "has_sink": query.has_sink,
        "use_sparse": query.use_sparse,
        "use_mm_prefix": False,
        "use_per_head_quant_scales": False,
        "attn_type": "decoder",
        "has_sliding_window": query.has_sliding_window,
    }
    fields = {name: False for name in section["selector_config_fields"]}
    return str(section["selector_config_repr"]).format(**{**fields, **values})


def select(section: dict[str, Any], query: AttentionQuery) -> Selection:
    """CudaPlatformBase.get_attn_backend_cls on the derived facts."""
    cuda = section.get("cuda") or {}
    if str(query.capability) not in cuda:
        return Selection(unknown=f"capability {query.capability / 10:.1f} was not derived")
    backends = cuda[str(query.capability)]["backends"]
    try:
        if query.backend is not None:
            name = query.backend.upper()
            if name not in backends:
                return Selection(unknown=f"--attention-backend {query.backend} is no backend of this release")
            reasons = _reasons(backends[name], section, query)
            if reasons:
                error = (
                    f"Selected backend AttentionBackendEnum.{name} is not valid for this configuration. "
                    f"Reason: {reasons!r}"
                )
                return Selection(error=error, explicit=True, reasons={name: reasons})
            return Selection(backend=name, explicit=True, valid=[name])
        valid: list[str] = []
        invalid: dict[str, list[str]] = {}
        for name in priorities(section, query):
            reasons = _reasons(backends[name], section, query)
            if reasons:
                invalid[name] = reasons
            else:
                valid.append(name)
    except NotDerived as missing:
        return Selection(unknown=str(missing))
    if not valid:
        listed = ", ".join(f"{name}: [{', '.join(reasons)}]" for name, reasons in invalid.items())
        error = (
            f"No valid attention backend found for {DEVICE_NAME} with {config_repr(section, query)}. "
            f"Reasons: {{{listed}}}."
        )
        return Selection(error=error, reasons=invalid)
    return Selection(backend=valid[0], valid=valid, reasons=invalid)


# -- the query from the launcher's facts -----------------------------------------------------------------------------


def model_shape(model: dict[str, Any], section: dict[str, Any]) -> str:
    """The derived model shape supports_combination was asked under: "mha", or the MLA head dims (+ "-sparse")."""
    if not model.get("is_mla"):
        return "mha"
    dims = (
        model.get("kv_lora_rank"),
        model.get("qk_nope_head_dim"),
        model.get("qk_rope_head_dim"),
        model.get("v_head_dim"),
    )
    name = "mla-" + "-".join(str(d) for d in dims) + ("-sparse" if model.get("is_sparse_mla") else "")
    return name if name in section.get("model_shapes", {}) else f"{name} (not derived)"


def explicit_backend(parsed: dict[str, Any]) -> str | None:
    """--attention-backend, else --attention-config's backend (vllm/engine/arg_utils.py: the flag fills
    AttentionConfig.backend)."""
    if parsed.get("attention_backend"):
        return str(parsed["attention_backend"])
    config = parsed.get("attention_config")
    if isinstance(config, str):
        try:
            config = json.loads(config)
        except ValueError:
            return None
    backend = config.get("backend") if isinstance(config, dict) else getattr(config, "backend", None)
    return str(backend) if backend else None


def resolved_kv_cache_dtype(
    kv_cache_dtype: str, model: dict[str, Any], section: dict[str, Any], capability: int
) -> str:
    """The cache dtype the layers ask the selector for: a checkpoint's FP8 KV scheme turns "auto" into "fp8"
    (vllm/utils/torch_utils.py resolve_kv_cache_dtype_string; attention.py), then the architecture's
    verify_and_update_config may rewrite it (derived per capability: kv_cache_dtype_updates)."""
    kv = str(kv_cache_dtype)
    if kv == "auto" and model.get("checkpoint_kv_cache_quant"):
        kv = "fp8"
    updates = section["cuda"][str(capability)].get("kv_cache_dtype_updates", {})
    for architecture in model.get("architectures") or [model.get("architecture")]:
        kv = updates.get(architecture, {}).get(kv, kv)
    return kv


def attention_facts(
    args: dict[str, Any],
    model: dict[str, Any],
    platform: dict[str, Any],
    section: dict[str, Any] | None,
    table: dict[str, Any],
    dtype: str,
) -> dict[str, Any]:
    """derived.attention_*: the backend vLLM picks for this model's decoder layers, or its error and a fix."""
    facts: dict[str, Any] = {
        "attention_backend": None,
        "attention_backend_error": None,
        "attention_backend_explicit": False,
        "attention_backend_unknown": None,
        "attention_backend_fix": None,
        "attention_backend_valid": [],
        "attention_kv_cache_dtype": None,
    }
    if platform.get("kind") != "cuda" or platform.get("capability") is None:
        return facts  # ROCm and CPU: the hand-written rules of data/compatibility.yaml
    if not section or "cuda" not in section:
        facts["attention_backend_unknown"] = "the release's CUDA attention facts were not derived"
        return facts
    capability = round(float(platform["capability"]) * 10)
    if str(capability) not in section["cuda"]:
        facts["attention_backend_unknown"] = f"capability {platform['capability']} was not derived"
        return facts
    if model.get("model_type") in section.get("mm_prefix_lm_model_types", []):
        # ModelConfig.is_mm_prefix_lm: its layers ask with use_mm_prefix, whose combinations were not derived
        facts["attention_backend_unknown"] = (
            f"{model.get('model_type')} attends bidirectionally over images (use_mm_prefix), not derived"
        )
        return facts
    parsed = args.get("parsed") or {}
    kv = resolved_kv_cache_dtype(args["kv_cache_dtype"], model, section, capability)
    heads = model.get("num_attention_heads")
    windows = {"all": [True], "some": [False, True]}.get(str(model.get("sliding_window_layers")), [False])
    if parsed.get("disable_sliding_window"):
        windows = [False]
    queries = [
        AttentionQuery(
            capability=capability,
            head_size=int(model.get("attention_head_size") or 0),
            dtype=dtype,
            kv_cache_dtype=kv,
            block_size=parsed.get("block_size"),
            use_mla=bool(model.get("is_mla")),
            use_sparse=bool(model.get("is_sparse_mla")),
            has_sink=model.get("model_type") in table.get("attention_sink_model_types", []),
            has_sliding_window=window,
            num_heads=None if heads is None else heads // int(args.get("tensor_parallel_size") or 1),
            model_shape=model_shape(model, section),
            backend=explicit_backend(parsed),
        )
        for window in windows
    ]
    selections = [select(section, query) for query in queries]
    facts["attention_kv_cache_dtype"] = kv
    facts["attention_backend_explicit"] = queries[0].backend is not None
    unknown = next((s.unknown for s in selections if s.unknown), None)
    if unknown:
        facts["attention_backend_unknown"] = unknown
        return facts
    failed = next((s for s in selections if s.error), None)
    if failed is not None:
        facts["attention_backend_error"] = failed.error
        facts["attention_backend_fix"] = suggest_fix(section, queries[selections.index(failed)])
        return facts
    names = list(dict.fromkeys(s.backend for s in selections if s.backend))
    facts["attention_backend"] = names[0] if len(names) == 1 else f"{names[0]} (sliding-window layers: {names[1]})"
    facts["attention_backend_valid"] = selections[0].valid
    return facts


def suggest_fix(section: dict[str, Any], query: AttentionQuery) -> str:
    """The one flag change that makes vLLM find a backend, tried in this order: drop --attention-backend, another
    --kv-cache-dtype, another --dtype."""
    tries: list[tuple[str, AttentionQuery]] = []
    if query.backend is not None:
        tries.append(("remove --attention-backend", replace(query, backend=None)))
    for kv in ("auto", "fp8", "fp8_e4m3", "bfloat16"):
        if kv != query.kv_cache_dtype:
            tries.append((f"use --kv-cache-dtype {kv}", replace(query, kv_cache_dtype=kv)))
    for dtype in ("bfloat16", "float16"):
        if dtype != query.dtype:
            tries.append((f"use --dtype {dtype}", replace(query, dtype=dtype)))
    for change, changed in tries:
        selection = select(section, changed)
        if selection.backend:
            return f"{change} (vLLM then picks {selection.backend})"
    return "no single change of --attention-backend, --kv-cache-dtype or --dtype gives a valid backend on this GPU"
