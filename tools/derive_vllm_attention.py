"""The CUDA attention-backend facts of one vLLM release, derived by executing its own code per GPU generation.

Run in a child interpreter of tools/derive_vllm_facts.py, one per compute capability (a fresh interpreter, because
vLLM caches capability-dependent answers with functools.cache and reads the platform at import time). The child
makes vLLM's own CUDA platform class (`vllm.platforms.cuda.NonNvmlCudaPlatform`) the current platform with only
`get_device_capability` replaced by the capability asked about; every other helper vLLM's backends call
(`has_device_capability`, `is_device_capability_family`, `get_flash_attn_version`, `flash_attn_supports_fp8`,
`flash_attn_supports_sinks`, `flash_attn_supports_mla`, `is_flashmla_*_supported`, `supports_trtllm_attention`, ...)
is vLLM's code running on that answer. vLLM's compiled extensions (`vllm._C`, `_vllm_fa3_C`, `_flashmla_C`, ...) are
empty stubs, which makes them importable as they are in the CUDA wheel; the network is closed, and
`has_flashinfer_cubin` answers True (vLLM's CUDA image ships flashinfer-cubin), so no helper asks NVIDIA's
artifactory.

It records, per backend: the answers of `supports_head_size`, `supports_dtype`, `supports_kv_cache_dtype`,
`supports_block_size`, `is_mla`, `is_sparse`, `supports_sink`, `supports_sliding_window`,
`supports_compute_capability`, ... and `supports_combination` over the grid the per-input checks admit, under each
model shape the combination reads from the model config (MLA head dims, `index_topk`); per priority key, the order
of `_get_backend_priorities`; and, as samples for tests, vLLM's own `get_attn_backend_cls` answer (the backend, or
its "No valid attention backend found ..." / "Selected backend ... is not valid ..." error) for a set of inputs.
"""

from __future__ import annotations

import inspect
import socket
import types
from typing import Any, get_args

# Head sizes every backend is asked about: each multiple of 8 up to 576 (the MLA latent size), and a few others.
HEAD_SIZES = sorted({*range(8, 577, 8), 40, 72, 100, 112, 120, 160, 200, 224, 320, 512, 576})
BLOCK_SIZES = [1, 8, 16, 32, 64, 128, 256, 512, 1024]
DTYPES = ["float16", "bfloat16", "float32"]

# Model shapes that supports_combination reads from the model's hf_text_config (flashinfer_mla.py, tokenspeed_mla.py,
# flashinfer_mla_sparse.py, flashattn_mla_sparse.py). Keys: how the launcher names the shape of a model
# (server/launcher/check/attention_backend.py model_shape).
MODEL_SHAPES: dict[str, dict[str, Any]] = {
    "mha": {},
    # DeepSeek-V2/V3/R1, Kimi-K2: kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128; -sparse: V3.2 (index_topk)
    "mla-512-128-64-128": {"kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128},
    "mla-512-128-64-128-sparse": {
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "index_topk": 2048,
    },
    "mla-256-64-32-64": {"kv_lora_rank": 256, "qk_nope_head_dim": 64, "qk_rope_head_dim": 32, "v_head_dim": 64},
    "mla-512-192-64-256": {"kv_lora_rank": 512, "qk_nope_head_dim": 192, "qk_rope_head_dim": 64, "v_head_dim": 256},
    "mla-512-192-64-256-sparse": {
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 192,
        "qk_rope_head_dim": 64,
        "v_head_dim": 256,
        "index_topk": 2048,
    },
}

# vLLM's runtime dependencies (the wheel's Requires-Dist) that are not installed here but present in its image:
# importing them must succeed, as it does there.
RUNTIME_DEPENDENCIES = ["tokenspeed_mla"]


def _no_network() -> None:
    def refuse(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("network closed during derivation")

    socket.socket.connect = refuse  # type: ignore[method-assign,assignment]
    socket.create_connection = refuse  # type: ignore[assignment]


def set_cuda_platform(major: int, minor: int) -> Any:
    """vLLM's own CUDA platform, answering `major.minor` for the device capability."""
    import vllm.platforms as platforms
    from vllm.platforms import cuda
    from vllm.platforms.interface import DeviceCapability

    class DerivedCudaPlatform(cuda.NonNvmlCudaPlatform):  # type: ignore[name-defined,misc]
        @classmethod
        def get_device_capability(cls, device_id: int = 0) -> Any:
            return DeviceCapability(major, minor)

        @classmethod
        def get_device_name(cls, device_id: int = 0) -> str:
            return f"derived sm{major}{minor}"

        @classmethod
        def num_compute_units(cls, device_id: int = 0) -> int:
            return 132  # read by CUTLASS MLA's module-level workspace; no predicate depends on it

    platforms._current_platform = DerivedCudaPlatform()
    return platforms._current_platform


def _allocate_on_meta() -> None:
    """Module-level CUDA allocations (cutlass_mla.py's SM100Workspace, flashinfer_mla.py's g_fi_workspace) land on
    the meta device."""
    import torch

    def on_meta(allocate: Any) -> Any:
        def allocate_on_meta(*args: Any, **kwargs: Any) -> Any:
            if str(kwargs.get("device", "")).startswith("cuda"):
                kwargs["device"] = "meta"
            return allocate(*args, **kwargs)

        return allocate_on_meta

    for name in ("empty", "zeros", "ones"):
        setattr(torch, name, on_meta(getattr(torch, name)))


def _assume_image_environment() -> list[str]:
    """What vLLM's CUDA image has and this machine has not; returned as the list recorded in the output."""
    _allocate_on_meta()
    assumed = ["torch.empty/zeros/ones(device='cuda') allocate on the meta device (module-level workspaces)"]
    try:
        import vllm.utils.flashinfer as fi

        fi.has_flashinfer_cubin = lambda: True  # type: ignore[assignment]
        assumed.append("vllm.utils.flashinfer.has_flashinfer_cubin() -> True (flashinfer-cubin in vLLM's image)")
    except Exception as exc:  # noqa: BLE001
        assumed.append(f"vllm.utils.flashinfer not importable: {type(exc).__name__}: {exc}"[:200])
    return assumed


def _fake_vllm_config(shape: dict[str, Any], kv_cache_dtype: str) -> Any:
    """The parts of a VllmConfig the backends' predicates read: the model's text config (the shape), the default
    AttentionConfig of the release, a single-rank parallel config."""
    from vllm.config.attention import AttentionConfig

    hf = types.SimpleNamespace(**shape)
    model_config = types.SimpleNamespace(
        hf_config=hf,
        hf_text_config=hf,
        is_diffusion=False,
        is_mm_prefix_lm=False,
        use_mla="qk_nope_head_dim" in shape,
        dtype=None,
        get_num_attention_heads=lambda _pc: 32,
        get_num_kv_heads=lambda _pc: 8,
    )
    parallel = types.SimpleNamespace(
        decode_context_parallel_size=1,
        prefill_context_parallel_size=1,
        tensor_parallel_size=1,
        data_parallel_size=1,
    )
    cache = types.SimpleNamespace(cache_dtype=kv_cache_dtype, user_specified_block_size=False, block_size=16)
    return types.SimpleNamespace(
        model_config=model_config,
        attention_config=AttentionConfig(),
        parallel_config=parallel,
        cache_config=cache,
        kv_transfer_config=None,
    )


def _use_config(config: Any) -> None:
    import vllm.config.vllm as config_module

    config_module._current_vllm_config = config


def _call(function: Any) -> Any:
    try:
        return function()
    except Exception as exc:  # noqa: BLE001 - the error is the fact
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def _kwargs(function: Any, values: dict[str, Any]) -> dict[str, Any]:
    accepted = set(inspect.signature(function).parameters)
    return {k: v for k, v in values.items() if k in accepted}


def _backend_answers(cls: Any, capability: Any, kv_dtypes: list[str]) -> dict[str, Any]:
    import torch

    def flag(name: str, default: Any = False) -> Any:
        method = getattr(cls, name, None)
        return default if method is None else _call(method)

    facts: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "head_sizes": [h for h in HEAD_SIZES if _call(lambda h=h: cls.supports_head_size(h)) is True],
        "dtypes": [d for d in DTYPES if _call(lambda d=d: cls.supports_dtype(getattr(torch, d))) is True],
        "kv_cache_dtypes": [k for k in kv_dtypes if _call(lambda k=k: cls.supports_kv_cache_dtype(k)) is True],
        "block_sizes": [b for b in BLOCK_SIZES if _call(lambda b=b: cls.supports_block_size(b)) is True],
        "compute_capability": _call(lambda: cls.supports_compute_capability(capability)),
        "is_mla": flag("is_mla"),
        "is_sparse": flag("is_sparse"),
        "sink": flag("supports_sink"),
        "sliding_window": flag("supports_sliding_window", True),
        "mm_prefix": flag("supports_mm_prefix"),
        "per_head_quant_scales": flag("supports_per_head_quant_scales"),
        "non_causal": flag("supports_non_causal"),
        "batch_invariance": flag("supports_batch_invariance"),
        "kv_connector": flag("supports_kv_connector", True),
        "pcp": flag("supports_pcp", True),
    }
    if hasattr(cls, "supports_attn_type"):
        facts["decoder"] = _call(lambda: cls.supports_attn_type("decoder"))
    return facts


def _combinations(cls: Any, facts: dict[str, Any], capability: Any, shape_names: list[str]) -> dict[str, Any]:
    """supports_combination's reasons, per model shape, over the inputs the per-input checks admit: {"all": reason}
    when it gives one reason for all of them, else {"some": {reason: ["head|dtype|kv|sink", ...]}}; absent: none."""
    import torch

    if not hasattr(cls, "supports_combination"):
        return {}
    sinks = [False, True] if facts["sink"] is True else [False]
    result: dict[str, Any] = {}
    for shape in shape_names:
        reasons: dict[str, list[str]] = {}
        asked = 0
        for kv in facts["kv_cache_dtypes"]:
            _use_config(_fake_vllm_config(MODEL_SHAPES[shape], kv))
            for head in facts["head_sizes"]:
                for dtype in facts["dtypes"]:
                    for sink in sinks:
                        values = {
                            "head_size": head,
                            "dtype": getattr(torch, dtype),
                            "kv_cache_dtype": kv,
                            "block_size": None,
                            "use_mla": facts["is_mla"] is True,
                            "has_sink": sink,
                            "use_sparse": facts["is_sparse"] is True,
                            "use_mm_prefix": False,
                            "device_capability": capability,
                        }
                        check = cls.supports_combination
                        answer = _call(lambda v=values, c=check: c(**_kwargs(c, v)))
                        asked += 1
                        if answer is not None:
                            reason = answer if isinstance(answer, str) else f"error: {answer}"
                            reasons.setdefault(reason, []).append(f"{head}|{dtype}|{kv}|{int(sink)}")
        if len(reasons) == 1 and len(next(iter(reasons.values()))) == asked:
            result[shape] = {"all": next(iter(reasons))}  # the same reason for every input
        elif reasons:
            result[shape] = {"some": reasons}
    return result


def _priorities(cuda: Any, capability: Any) -> dict[str, Any]:
    """_get_backend_priorities per (MLA, quantized KV, few heads) - "mha|mla/auto|fp8/128|16" - for the most common
    head size, and the head sizes whose order differs (0.33 orders MLA by head size)."""
    from collections import Counter

    function = cuda._get_backend_priorities
    default: dict[str, list[str]] = {}
    by_head_size: dict[str, dict[str, list[str]]] = {}
    for use_mla in (False, True):
        for kv in ("auto", "fp8"):
            for num_heads in (128, 16):
                orders = {}
                for head in HEAD_SIZES:
                    values = {
                        "use_mla": use_mla,
                        "device_capability": capability,
                        "num_heads": num_heads,
                        "kv_cache_dtype": kv,
                        "use_non_causal": False,
                        "head_size": head,
                        "use_mm_prefix": False,
                    }
                    orders[head] = [b.name for b in function(**_kwargs(function, values))]
                key = f"{'mla' if use_mla else 'mha'}/{kv}/{num_heads}"
                common = Counter(tuple(o) for o in orders.values()).most_common(1)[0][0]
                default[key] = list(common)
                for head, order in orders.items():
                    if tuple(order) != common:
                        by_head_size.setdefault(str(head), {})[key] = order
    return {"default": default, "by_head_size": by_head_size}


def _selector_fields() -> tuple[str, ...]:
    from vllm.v1.attention.selector import AttentionSelectorConfig

    return tuple(AttentionSelectorConfig._fields)


def _selector_config(values: dict[str, Any]) -> Any:
    from vllm.v1.attention.selector import AttentionSelectorConfig

    return AttentionSelectorConfig(**{k: v for k, v in values.items() if k in AttentionSelectorConfig._fields})


# Inputs whose vLLM answer (get_attn_backend_cls) is recorded as a sample: (shape, head, dtype, kv, sink, sliding,
# num_heads, explicit backend). Chosen to touch each branch: FA head limits, fp8 variants, sinks, MLA, sparse MLA.
def _sample_inputs() -> list[tuple[str, int, str, str, bool, bool, int, str | None]]:
    samples: list[tuple[str, int, str, str, bool, bool, int, str | None]] = []
    for head in (64, 72, 80, 96, 128, 256, 40, 100, 320, 512):
        for dtype in ("bfloat16", "float16", "float32") if head == 128 else ("bfloat16", "float16"):
            for kv in ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "nvfp4", "bfloat16", "fp8_inc"):
                samples.append(("mha", head, dtype, kv, False, False, 32, None))
    for head in (64, 128):
        for kv in ("auto", "fp8", "fp8_e5m2"):
            for sliding in (False, True):
                samples.append(("mha", head, "bfloat16", kv, True, sliding, 64, None))
    for shape in ("mla-512-128-64-128", "mla-512-128-64-128-sparse"):
        for dtype in ("bfloat16", "float16"):
            for kv in ("auto", "fp8", "fp8_e4m3", "fp8_e5m2", "fp8_ds_mla", "bfloat16"):
                for num_heads in (128, 16):
                    samples.append((shape, 576, dtype, kv, False, False, num_heads, None))
    for explicit in ("FLASH_ATTN", "FLASHINFER", "TRITON_ATTN", "FLASHMLA", "TRITON_MLA", "FLEX_ATTENTION"):
        for kv in ("auto", "fp8", "fp8_e5m2"):
            samples.append(("mha", 128, "bfloat16", kv, False, False, 32, explicit))
            samples.append(("mla-512-128-64-128", 576, "bfloat16", kv, False, False, 128, explicit))
    return samples


def _samples(platform: Any) -> list[list[Any]]:
    import torch
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    rows = []
    for shape, head, dtype, kv, sink, sliding, num_heads, explicit in _sample_inputs():
        _use_config(_fake_vllm_config(MODEL_SHAPES[shape], kv))
        values = {
            "head_size": head,
            "dtype": getattr(torch, dtype),
            "kv_cache_dtype": kv,
            "block_size": None,
            "use_mla": shape != "mha",
            "has_sink": sink,
            "use_sparse": shape.endswith("-sparse"),
            "has_sliding_window": sliding,
        }
        selected = getattr(AttentionBackendEnum, explicit) if explicit else None
        try:
            path = platform.get_attn_backend_cls(selected, _selector_config(values), num_heads=num_heads)
            answer: dict[str, Any] = {"backend": _backend_name(path)}
        except Exception as exc:  # noqa: BLE001 - vLLM's refusal is the fact
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        rows.append([shape, head, dtype, kv, sink, sliding, num_heads, explicit, answer])
    return rows


# The predicates AttentionBackend.validate_configuration asks (vllm/v1/attention/backend.py), each with the input
# that makes it matter; "mla" and "sparse" are compared with the input both ways.
PROBED_PREDICATES = {
    "supports_head_size": {},
    "supports_dtype": {},
    "supports_kv_cache_dtype": {},
    "supports_block_size": {"block_size": 16},
    "supports_mm_prefix": {"use_mm_prefix": True},
    "supports_sink": {"has_sink": True},
    "supports_per_head_quant_scales": {"use_per_head_quant_scales": True},
    "supports_compute_capability": {},
    "supports_attn_type": {},
    "supports_sliding_window": {"has_sliding_window": True},
    "supports_non_causal": {"use_non_causal": True},
    "supports_batch_invariance": {"use_batch_invariant": True},
    "supports_kv_connector": {"use_kv_connector": True},
    "supports_pcp": {"use_pcp": True},
}


def validation_reasons(capability: Any) -> dict[str, Any]:
    """The reason validate_configuration gives when each predicate fails, and their order, learned by calling it on
    a probe backend whose predicates all pass but one (and all fail, for the order)."""
    import torch
    from vllm.v1.attention.backend import AttentionBackend

    def probe(failing: set[str], is_mla: bool = False, is_sparse: bool = False) -> Any:
        attrs: dict[str, Any] = {
            name: classmethod(lambda cls, *a, _n=name, **k: _n not in failing) for name in PROBED_PREDICATES
        }
        attrs["is_mla"] = classmethod(lambda cls: is_mla)
        attrs["is_sparse"] = classmethod(lambda cls: is_sparse)
        attrs["supports_combination"] = classmethod(lambda cls, *a, **k: None)
        return type("Probe", (AttentionBackend,), attrs)

    base = {
        "head_size": 128,
        "dtype": torch.bfloat16,
        "kv_cache_dtype": "auto",
        "block_size": None,
        "use_mla": False,
        "has_sink": False,
        "use_sparse": False,
        "use_mm_prefix": False,
        "use_per_head_quant_scales": False,
        "device_capability": capability,
        "attn_type": "decoder",
    }

    def reasons(cls: Any, **inputs: Any) -> list[str]:
        values = {**base, **inputs}
        return list(cls.validate_configuration(**_kwargs(cls.validate_configuration, values)))

    every_input: dict[str, Any] = {k: v for extra in PROBED_PREDICATES.values() for k, v in extra.items()}
    checked = {name: reasons(probe({name}), **extra) for name, extra in PROBED_PREDICATES.items()}
    mismatches = {
        "mla": reasons(probe(set()), use_mla=True),
        "non_mla": reasons(probe(set(), is_mla=True)),
        "sparse": reasons(probe(set()), use_sparse=True),
        "non_sparse": reasons(probe(set(), is_sparse=True)),
    }
    all_failing = reasons(probe(set(PROBED_PREDICATES)), **every_input, use_mla=True, use_sparse=True)
    text = {name: found[0] for name, found in {**checked, **mismatches}.items() if found}
    order = sorted(text, key=lambda name: all_failing.index(text[name]) if text[name] in all_failing else 99)
    if "non_mla" in order and "mla" in order:  # the two directions share one place
        order.insert(order.index("mla"), order.pop(order.index("non_mla")))
    if "non_sparse" in order and "sparse" in order:
        order.insert(order.index("sparse"), order.pop(order.index("non_sparse")))
    return {
        "source": "vllm/v1/attention/backend.py AttentionBackend.validate_configuration (executed on probe backends)",
        "reasons": text,
        "order": order,
        "not_checked": sorted(name for name, found in checked.items() if not found),
    }


def selector_config_template() -> str:
    """AttentionSelectorConfig.__repr__ of the release, with {field} placeholders (vllm/v1/attention/selector.py) and
    the decoder attention type as the release prints it."""
    from vllm.v1.attention.selector import AttentionSelectorConfig

    class Placeholder(str):
        def __repr__(self) -> str:
            return self

    from vllm.v1.attention.backend import AttentionType

    values = {f: Placeholder("{" + f + "}") for f in AttentionSelectorConfig._fields}
    values["attn_type"] = Placeholder(f"{AttentionType.DECODER}")  # how the release prints a decoder layer's type
    return repr(AttentionSelectorConfig(**values))


def kv_cache_dtype_updates(kv_dtypes: list[str]) -> dict[str, dict[str, str]]:
    """How each architecture's verify_and_update_config (vllm/model_executor/models/config.py MODELS_CONFIG_MAP)
    rewrites --kv-cache-dtype before any layer is built, on this capability: {architecture: {given: used}}, only
    where it changes it (DeepSeek-V3.2 bfloat16 -> auto; GLM-DSA auto -> fp8_e4m3 on SM10x; 0.17 fp8 -> fp8_ds_mla).
    A class that needs more of a config than the stand-in raises; what it changed before that is kept."""
    import contextlib

    from vllm.model_executor.models import config as model_configs

    updates: dict[str, dict[str, str]] = {}
    for architecture, cls in getattr(model_configs, "MODELS_CONFIG_MAP", {}).items():
        for kv in kv_dtypes:
            config = _fake_vllm_config(MODEL_SHAPES["mla-512-128-64-128-sparse"], kv)
            config.speculative_config = None
            with contextlib.suppress(Exception):  # what it set before failing on the stand-in still counts
                cls.verify_and_update_config(config)
            if config.cache_config.cache_dtype != kv:
                updates.setdefault(architecture, {})[kv] = config.cache_config.cache_dtype
    return updates


def _backend_name(path: str) -> str:
    from vllm.utils.import_utils import resolve_obj_by_qualname

    return str(resolve_obj_by_qualname(path).get_name())


def capability_facts(major: int, minor: int) -> dict[str, Any]:
    """Everything above for one compute capability."""
    _no_network()
    platform = set_cuda_platform(major, minor)
    assumed = _assume_image_environment()
    from vllm.config.cache import CacheDType
    from vllm.platforms import cuda
    from vllm.platforms.interface import DeviceCapability
    from vllm.v1.attention.backends.registry import AttentionBackendEnum

    capability = DeviceCapability(major, minor)
    kv_dtypes = list(get_args(CacheDType))
    backends: dict[str, Any] = {}
    for backend in AttentionBackendEnum:
        _use_config(_fake_vllm_config({}, "auto"))
        try:
            cls = backend.get_class()
        except Exception as exc:  # noqa: BLE001 - a backend whose module cannot load even with CUDA stubs
            backends[backend.name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            continue
        facts = _backend_answers(cls, capability, kv_dtypes)
        shapes = [s for s in MODEL_SHAPES if (s == "mha") != (facts["is_mla"] is True)]
        facts["combination"] = _combinations(cls, facts, capability, shapes)
        backends[backend.name] = facts
    _use_config(None)
    return {
        "capability": 10 * major + minor,
        "backends": backends,
        "priorities": _priorities(cuda, capability),
        "samples": _samples(platform),
        "validation": validation_reasons(capability),
        "kv_cache_dtype_updates": kv_cache_dtype_updates(kv_dtypes),
        "selector_config_repr": selector_config_template(),
        "selector_config_fields": list(_selector_fields()),
        "assumed": assumed,
        "kv_cache_dtypes": kv_dtypes,
    }
