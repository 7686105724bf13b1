"""One case per rule id, fired and not fired, on real config.json files (tests/fixtures/models)."""

from __future__ import annotations

import pytest

from launcher.check.engine import load_table
from tests.harness.common import rule_ids, run_check

LLAMA_8B = "meta-llama__Llama-3.1-8B-Instruct"
LLAMA_405B = "meta-llama__Meta-Llama-3.1-405B"
DEEPSEEK_V3 = "deepseek-ai__DeepSeek-V3"
DEEPSEEK_V32 = "deepseek-ai__DeepSeek-V3.2"
KIMI = "moonshotai__Kimi-K2.5"
QWEN3_VL = "Qwen__Qwen3-VL-235B-A22B-Instruct"
QWEN3_MOE_FP8 = "Qwen__Qwen3-30B-A3B-FP8"
QWEN25 = "Qwen__Qwen2.5-7B-Instruct"
GPT_OSS = "openai__gpt-oss-20b"
MODELOPT_70B = "nvidia__Llama-3.1-70B-Instruct-FP8"
HEAD16 = "synthetic__tiny-llama-head16"
BLOCK_FP8_DENSE = "synthetic__llama-8b-block-fp8"
# `launcher quantize` of SmolLM2-135M (compressed-tensors FP8_DYNAMIC): its config.json, tests/tools/test_quantize.py
SMOLLM2_FP8_DYNAMIC = "local__SmolLM2-135M-Instruct-FP8-Dynamic"

NO_MODEL_TYPE = "synthetic__no-model-type"
GEMMA3 = "google__gemma-3-27b-it"

# (rule id, model, serve args, target, vLLM version, fires)
CASES = [
    # class 2 and 3 (tests/check/test_class2_model_config.py, test_class3_dtype_quantization.py have more)
    ("model-type-missing", NO_MODEL_TYPE, [], "cuda:h100", "0.26.0", True),
    ("model-type-missing", QWEN25, [], "cuda:h100", "0.26.0", False),
    ("dtype-float16-not-supported", GEMMA3, ["--dtype", "half"], "cuda:h100", "0.26.0", True),
    ("dtype-float16-not-supported", GEMMA3, ["--dtype", "bfloat16"], "cuda:h100", "0.26.0", False),
    ("dtype-bfloat16-pre-ampere", QWEN25, ["--dtype", "bfloat16"], "cuda:t4", "0.26.0", True),
    ("dtype-bfloat16-pre-ampere", QWEN25, ["--dtype", "bfloat16"], "cuda:a10g", "0.26.0", False),
    ("quantization-capability-too-low", QWEN25, ["-q", "experts_int8"], "cuda:t4", "0.26.0", True),
    ("quantization-capability-too-low", QWEN25, ["-q", "experts_int8"], "cuda:a100", "0.26.0", False),
    ("quantization-act-dtype", GPT_OSS, ["--dtype", "float16"], "cuda:h100", "0.26.0", True),
    ("quantization-act-dtype", GPT_OSS, [], "cuda:h100", "0.26.0", False),
    ("quantization-needs-checkpoint", QWEN25, ["-q", "awq"], "cuda:h100", "0.26.0", True),
    ("quantization-needs-checkpoint", QWEN25, ["-q", "fp8"], "cuda:h100", "0.26.0", False),
    # class 5 (tests/check/test_class5_parallel.py has more)
    ("config-revision-ignored", LLAMA_8B, ["--revision", "v2"], "cuda:h100", "0.26.0", True),
    ("config-revision-ignored", LLAMA_8B, ["--code-revision", "v2"], "cuda:h100", "0.26.0", False),
    ("expert-parallel-dense", LLAMA_8B, ["--enable-expert-parallel"], "cuda:h100", "0.26.0", True),
    ("expert-parallel-dense", QWEN3_MOE_FP8, ["--enable-expert-parallel"], "cuda:h100", "0.26.0", False),
    ("eplb-without-expert-parallel", QWEN3_MOE_FP8, ["--enable-eplb", "-tp", "2"], "cuda:h100", "0.26.0", True),
    ("eplb-without-expert-parallel", QWEN3_MOE_FP8, ["--enable-eplb", "-tp", "2", "-ep"], "cuda:h100", "0.26.0", False),
    ("eplb-without-parallelism", QWEN3_MOE_FP8, ["--enable-eplb", "-ep"], "cuda:h100", "0.26.0", True),
    ("eplb-without-parallelism", QWEN3_MOE_FP8, ["--enable-eplb", "-ep", "-tp", "2"], "cuda:h100", "0.26.0", False),
    (
        "batched-tokens-below-max-model-len",
        LLAMA_8B,
        ["--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096"],
        "cuda:h100",
        "0.26.0",
        True,
    ),
    (
        "batched-tokens-below-max-model-len",
        LLAMA_8B,
        ["--max-num-batched-tokens", "4096"],
        "cuda:h100",
        "0.26.0",
        False,
    ),
    (
        "batched-tokens-below-max-num-seqs",
        LLAMA_8B,
        ["--max-num-batched-tokens", "8", "--max-num-seqs", "16"],
        "cuda:h100",
        "0.26.0",
        True,
    ),
    (
        "batched-tokens-below-max-num-seqs",
        LLAMA_8B,
        ["--max-num-batched-tokens", "16", "--max-num-seqs", "16"],
        "cuda:h100",
        "0.26.0",
        False,
    ),
    ("quantization-ptpc-fp8-removed", LLAMA_8B, ["-q", "ptpc_fp8"], "rocm:mi300x", "0.26.0", True),
    (
        "quantization-ptpc-fp8-removed",
        LLAMA_8B,
        ["-q", "ptpc_fp8", "--allow-deprecated-quantization"],
        "rocm:mi300x",
        "0.17.0",
        False,
    ),
    ("quantization-unknown", LLAMA_8B, ["--quantization", "gguf"], "cuda:h100", "0.26.0", True),
    ("quantization-unknown", LLAMA_8B, ["--quantization", "fp8"], "cuda:h100", "0.26.0", False),
    ("quantization-deprecated", LLAMA_8B, ["-q", "ptpc_fp8"], "rocm:mi300x", "0.17.0", True),
    (
        "quantization-deprecated",
        LLAMA_8B,
        ["-q", "fbgemm_fp8", "--allow-deprecated-quantization"],
        "cuda:h100",
        "0.26.0",
        False,
    ),
    (
        "quantization-conflicts-with-checkpoint",
        KIMI,
        ["--quantization", "fp8", "-tp", "8"],
        "rocm:mi300x",
        "0.26.0",
        True,
    ),
    ("quantization-conflicts-with-checkpoint", KIMI, ["-tp", "8"], "rocm:mi300x", "0.26.0", False),
    ("quantization-conflicts-with-checkpoint", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.17.0", True),
    # vLLM 0.26 served -q fp8 on the GPT-OSS MXFP4 checkpoint on an H100 (bench/results/h100-ground-truth.json)
    ("quantization-conflicts-with-checkpoint", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.26.0", False),
    ("quantization-conflicts-with-checkpoint", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.17.1", True),  # no override yet
    # derived (checkpoint_quantization): Mxfp4Config's override claims every flag on a GPT-OSS MXFP4 checkpoint
    ("quantization-replaced-by-checkpoint", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.26.0", True),
    ("quantization-replaced-by-checkpoint", GPT_OSS, ["-q", "mxfp4"], "cuda:h100", "0.26.0", False),
    ("quantization-conflicts-with-checkpoint", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.26.0", False),
    ("quantization-conflicts-with-checkpoint", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.17.1", True),  # no override yet
    # the hand-read fallback where nothing is derived (ROCm)
    ("quantization-gpt-oss-mxfp4-override", GPT_OSS, ["-q", "fp8"], "rocm:mi300x", "0.26.0", True),
    ("quantization-gpt-oss-mxfp4-override", GPT_OSS, ["-q", "fp8"], "cuda:h100", "0.26.0", False),
    ("quantization-conflicts-with-checkpoint", GPT_OSS, ["-q", "mxfp4"], "cuda:h100", "0.26.0", False),
    ("quantization-conflicts-with-checkpoint", QWEN3_MOE_FP8, ["-q", "fp8"], "cuda:h100", "0.26.0", False),
    ("quantization-replaced-by-checkpoint", MODELOPT_70B, ["-q", "fp8", "-tp", "4"], "cuda:h100", "0.26.0", True),
    ("quantization-modelopt-override", MODELOPT_70B, ["-q", "fp8", "-tp", "4"], "rocm:mi300x", "0.26.0", True),
    ("modelopt-rocm", MODELOPT_70B, ["-tp", "4"], "rocm:mi300x", "0.17.0", True),
    ("modelopt-rocm", MODELOPT_70B, ["-tp", "4"], "rocm:mi300x", "0.26.0", False),
    ("modelopt-fp8-capability", MODELOPT_70B, ["-tp", "4"], "cuda:a100", "0.26.0", True),
    ("modelopt-fp8-capability", MODELOPT_70B, ["-tp", "4"], "cuda:a100", "0.33.0", False),
    ("fp8-gpu-too-old", LLAMA_8B, ["-q", "fp8"], "cuda:v100", "0.26.0", True),
    ("fp8-gpu-too-old", LLAMA_8B, ["-q", "fp8"], "cuda:t4", "0.26.0", False),
    ("fp8-weight-only-marlin", LLAMA_8B, ["-q", "fp8"], "cuda:a100", "0.26.0", True),
    ("fp8-weight-only-marlin", LLAMA_8B, ["-q", "fp8"], "cuda:l40s", "0.26.0", False),
    ("fp8-rocm-mi200", LLAMA_8B, ["-q", "fp8"], "rocm:mi250x", "0.26.0", True),
    ("fp8-rocm-mi200", LLAMA_8B, ["-q", "fp8"], "rocm:mi300x", "0.26.0", False),
    ("fp8-rocm-fnuz", LLAMA_8B, ["-q", "fp8"], "rocm:mi300x", "0.26.0", True),
    ("fp8-rocm-fnuz", LLAMA_8B, ["-q", "fp8"], "rocm:mi355x", "0.26.0", False),
    ("fp8-online-deprecated-name", LLAMA_8B, ["-q", "fp8"], "cuda:h100", "0.33.0", True),
    ("fp8-online-deprecated-name", LLAMA_8B, ["-q", "fp8"], "cuda:h100", "0.26.0", False),
    ("ptpc-fp8-not-rocm", LLAMA_8B, ["-q", "ptpc_fp8", "--allow-deprecated-quantization"], "cuda:h100", "0.17.0", True),
    ("block-fp8-moe-per-rank", QWEN3_MOE_FP8, ["-tp", "4"], "cuda:h100", "0.26.0", True),
    ("block-fp8-moe-per-rank", QWEN3_MOE_FP8, ["-tp", "2"], "cuda:h100", "0.26.0", False),
    ("block-fp8-moe-refined", QWEN3_MOE_FP8, ["-tp", "4"], "cuda:h100", "0.33.0", True),
    ("block-fp8-dense-per-rank", BLOCK_FP8_DENSE, ["-tp", "2"], "cuda:h100", "0.26.0", True),
    ("block-fp8-dense-per-rank", BLOCK_FP8_DENSE, [], "cuda:h100", "0.26.0", False),
    ("vision-fp8-per-rank-16", QWEN3_VL, ["-tp", "8", "-q", "fp8"], "rocm:mi300x", "0.17.0", True),
    (
        "vision-fp8-per-rank-16",
        QWEN3_VL,
        ["-tp", "8", "-q", "fp8", "--mm-encoder-tp-mode", "data"],
        "rocm:mi300x",
        "0.17.0",
        False,
    ),
    ("vision-fp8-per-rank-16", QWEN3_VL, ["-tp", "8"], "rocm:mi300x", "0.17.0", False),
    ("vision-fp8-padded-cuda", QWEN3_VL, ["-tp", "8", "-q", "fp8"], "cuda:h100", "0.26.0", True),
    (
        "kv-fp8-e5m2-with-fp8-weights",
        LLAMA_8B,
        ["-q", "fp8", "--kv-cache-dtype", "fp8_e5m2"],
        "cuda:h100",
        "0.26.0",
        True,
    ),
    ("kv-fp8-e5m2-with-fp8-weights", LLAMA_8B, ["-q", "fp8", "--kv-cache-dtype", "fp8"], "cuda:h100", "0.26.0", False),
    ("kv-fp8-e5m2-flash-attn-v017", LLAMA_8B, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:h100", "0.17.0", True),
    ("kv-fp8-e5m2-flash-attn-v017", LLAMA_8B, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:a100", "0.17.0", False),
    ("kv-fp8-e5m2-falls-back", LLAMA_8B, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:l40s", "0.26.0", True),
    ("kv-fp8-e5m2-falls-back", LLAMA_8B, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:h100", "0.26.0", False),
    # measured on an H100 with vLLM 0.26 (bench/results/h100-ground-truth.json, llama3-8b-kv-fp8-e5m2)
    ("kv-fp8-e5m2-flashinfer-hopper", LLAMA_8B, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:h100", "0.26.0", True),
    ("kv-fp8-e5m2-flashinfer-hopper", LLAMA_8B, ["--kv-cache-dtype", "fp8"], "cuda:h100", "0.26.0", False),
    ("kv-fp8-e5m2-flashinfer-hopper", LLAMA_8B, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:l40s", "0.26.0", False),
    ("mla-kv-fp8-e5m2", DEEPSEEK_V3, ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"], "cuda:h200", "0.26.0", True),
    # class 4 (tests/check/test_class4_attention_backend.py has the matrix)
    (
        "attention-no-valid-backend",
        DEEPSEEK_V3,
        ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"],
        "cuda:h200",
        "0.26.0",
        True,
    ),
    ("attention-no-valid-backend", DEEPSEEK_V3, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:h200", "0.26.0", False),
    ("attention-backend-invalid", LLAMA_8B, ["--attention-backend", "FLASHMLA"], "cuda:h200", "0.26.0", True),
    ("attention-backend-invalid", LLAMA_8B, ["--attention-backend", "TRITON_ATTN"], "cuda:h200", "0.26.0", False),
    ("mla-kv-fp8-pre-ada", DEEPSEEK_V3, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:a100", "0.26.0", True),
    ("mla-kv-fp8-pre-ada", DEEPSEEK_V3, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:h100", "0.26.0", False),
    ("mla-kv-fp8-hopper-ok", DEEPSEEK_V3, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:h100", "0.26.0", True),
    (
        "mla-sparse-kv-fp8-e4m3-hopper",
        DEEPSEEK_V32,
        ["-tp", "8", "--kv-cache-dtype", "fp8_e4m3"],
        "cuda:h200",
        "0.26.0",
        True,
    ),
    (
        "mla-sparse-kv-fp8-e4m3-hopper",
        DEEPSEEK_V32,
        ["-tp", "8", "--kv-cache-dtype", "fp8_e4m3"],
        "cuda:h200",
        "0.33.0",
        False,
    ),
    ("mla-sparse-kv-fp8-rocm", DEEPSEEK_V32, ["-tp", "8", "--kv-cache-dtype", "fp8"], "rocm:mi300x", "0.17.0", True),
    ("mla-sparse-kv-fp8-rocm", DEEPSEEK_V32, ["-tp", "8", "--kv-cache-dtype", "fp8"], "rocm:mi300x", "0.26.0", False),
    ("mla-sparse-kv-fp8-rocm", DEEPSEEK_V32, ["-tp", "8"], "rocm:mi300x", "0.17.0", False),
    ("tp-attention-heads", QWEN25, ["-tp", "8"], "cuda:h100", "0.26.0", True),
    ("tp-attention-heads", QWEN25, ["-tp", "4"], "cuda:h100", "0.26.0", False),
    ("tp-kv-heads", QWEN25, ["-tp", "14"], "cuda:h100", "0.26.0", True),
    ("tp-kv-heads", QWEN25, ["-tp", "28"], "cuda:h100", "0.26.0", False),
    ("max-model-len-above-limit", LLAMA_8B, ["--max-model-len", "200000"], "cuda:h100", "0.26.0", True),
    ("max-model-len-above-limit", LLAMA_8B, ["--max-model-len", "128k"], "cuda:h100", "0.26.0", False),
    ("max-model-len-above-limit", DEEPSEEK_V3, ["-tp", "8", "--max-model-len", "163841"], "cuda:h200", "0.26.0", True),
    ("cpu-fp8-quantization", LLAMA_8B, ["-q", "fp8"], "cpu:avx512", "0.32.0", True),
    ("cpu-fp8-quantization", LLAMA_8B, [], "cpu:avx512", "0.32.0", False),
    # Measured (docs/quantize.md): CPU vLLM 0.32 serves a pre-quantized compressed-tensors FP8 checkpoint
    # (ChannelWiseTorchFP8ScaledMMLinearKernel); only online --quantization fp8 dies there.
    ("cpu-fp8-quantization", SMOLLM2_FP8_DYNAMIC, [], "cpu:avx512", "0.32.0", False),
    ("cpu-fp8-checkpoint-slow", SMOLLM2_FP8_DYNAMIC, [], "cpu:avx512", "0.32.0", True),
    ("cpu-fp8-checkpoint-slow", KIMI, [], "cpu:avx512", "0.32.0", False),  # compressed-tensors, but int4
    ("quantization-conflicts-with-checkpoint", SMOLLM2_FP8_DYNAMIC, ["-q", "fp8"], "cuda:h100", "0.32.0", True),
    ("cpu-head-size", HEAD16, [], "cpu:avx512", "0.32.0", True),
    ("cpu-head-size", LLAMA_8B, [], "cpu:avx2", "0.32.0", False),
    ("cpu-kv-fp8-needs-avx512", LLAMA_8B, ["--kv-cache-dtype", "fp8"], "cpu:avx2", "0.32.0", True),
    ("cpu-kv-fp8-needs-avx512", LLAMA_8B, ["--kv-cache-dtype", "fp8"], "cpu:avx512", "0.32.0", False),
    ("cpu-kv-fp8-needs-avx512", LLAMA_8B, ["--kv-cache-dtype", "fp8"], "cpu:amx", "0.32.0", False),
    ("cpu-kv-fp8-head-size-32", HEAD16, ["--kv-cache-dtype", "fp8"], "cpu:avx512", "0.32.0", True),
    ("cpu-kv-fp8-head-size-32", LLAMA_8B, ["--kv-cache-dtype", "fp8"], "cpu:avx512", "0.32.0", False),
    ("cpu-sparse-mla", DEEPSEEK_V32, [], "cpu:avx512", "0.32.0", True),
    ("cpu-sleep-mode", LLAMA_8B, ["--enable-sleep-mode"], "cpu:avx512", "0.32.0", True),
    ("cpu-sleep-mode", LLAMA_8B, ["--enable-sleep-mode"], "cuda:h100", "0.26.0", False),
    ("mxfp4-gpu-too-old", GPT_OSS, [], "cuda:v100", "0.26.0", True),
    ("mxfp4-gpu-too-old", GPT_OSS, [], "cuda:a100", "0.26.0", False),
    ("mxfp4-cpu", GPT_OSS, [], "cpu:avx512", "0.26.0", True),
    ("mxfp4-cpu", GPT_OSS, [], "cpu:avx512", "0.32.0", False),
    ("memory-weights-do-not-fit", LLAMA_405B, ["-tp", "8"], "cuda:h100", "0.26.0", True),
    ("memory-weights-do-not-fit", LLAMA_405B, ["-tp", "8", "-q", "fp8"], "cuda:h100", "0.26.0", False),
    ("memory-weights-do-not-fit", LLAMA_405B, ["-tp", "8"], "rocm:mi300x", "0.26.0", False),
    ("memory-weights-do-not-fit", DEEPSEEK_V3, ["-tp", "8"], "cuda:h100", "0.26.0", True),
    ("memory-weights-do-not-fit", DEEPSEEK_V3, ["-tp", "8"], "cuda:h200", "0.26.0", False),
    ("memory-kv-cache-too-small", LLAMA_8B, [], "cuda:l4", "0.26.0", True),
    ("memory-kv-cache-too-small", LLAMA_8B, ["--max-model-len", "32768"], "cuda:l4", "0.26.0", False),
    ("memory-kv-cache-too-small", LLAMA_8B, ["--kv-cache-dtype", "fp8", "-q", "fp8"], "cuda:l4", "0.26.0", False),
]


@pytest.mark.parametrize(
    ("rule", "model", "args", "target", "version", "fires"),
    CASES,
    ids=[f"{c[0]}-{'fires' if c[5] else 'quiet'}-{i}" for i, c in enumerate(CASES)],
)
def test_rule(rule: str, model: str, args: list[str], target: str, version: str, fires: bool) -> None:
    verdict = run_check(model, *args, target=target, version=version)
    assert (rule in rule_ids(verdict)) is fires, [f.message for f in verdict.findings]
    severity = next(r.severity for r in load_table()["parsed_rules"] if r.id == rule)
    if fires and severity == "error":
        assert not verdict.accepted


def test_every_rule_has_a_firing_case() -> None:
    """A rule with no case that fires it is untested: the table and this file must grow together."""
    fired = {case[0] for case in CASES if case[5]}
    unit_tested = {"tp-more-than-gpus", "cpu-memory-utilization"}  # need a detected machine: test_verdict.py
    unit_tested |= {"config-revision-unseen", "config-format-partly-modelled"}  # an HF cache, params.json:
    # tests/check/test_config_source.py
    table = {rule.id for rule in load_table()["parsed_rules"]}
    assert table - fired - unit_tested == set()


# The four rows of the ROCm FP8 table, and the same models where the platform changes the verdict.
SEED_ROWS = [
    (DEEPSEEK_V32, ["-tp", "8"], "rocm:mi300x", "0.17.0", True),
    (DEEPSEEK_V32, ["-tp", "8", "--kv-cache-dtype", "fp8"], "rocm:mi300x", "0.17.0", False),
    (DEEPSEEK_V32, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:h200", "0.26.0", True),
    (
        LLAMA_405B,
        ["-tp", "8", "-q", "fp8", "--max-model-len", "32768", "--gpu-memory-utilization", "0.95"],
        "rocm:mi300x",
        "0.17.0",
        True,
    ),
    (
        LLAMA_405B,
        ["-tp", "8", "-q", "fp8", "--kv-cache-dtype", "fp8", "--max-model-len", "16384"],
        "rocm:mi300x",
        "0.17.0",
        True,
    ),
    (QWEN3_VL, ["-tp", "8", "-q", "fp8"], "rocm:mi300x", "0.17.0", False),
    (QWEN3_VL, ["-tp", "8"], "rocm:mi300x", "0.17.0", True),
    (KIMI, ["-tp", "8", "-q", "fp8"], "rocm:mi300x", "0.17.0", False),
    (KIMI, ["-tp", "8"], "rocm:mi300x", "0.17.0", True),
    # 8 x H100 is too small for DeepSeek-V3's ~79 GiB of FP8 weights per GPU (memory-weights-do-not-fit): H200.
    (DEEPSEEK_V3, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:h200", "0.26.0", True),
]


@pytest.mark.parametrize(("model", "args", "target", "version", "accepted"), SEED_ROWS)
def test_seed_rows(model: str, args: list[str], target: str, version: str, accepted: bool) -> None:
    verdict = run_check(model, *args, target=target, version=version)
    assert verdict.accepted is accepted, [f.message for f in verdict.findings]


def test_messages_name_the_problem_and_fix() -> None:
    verdict = run_check(QWEN3_VL, "-tp", "8", "-q", "fp8", target="rocm:mi300x", version="0.17.0")
    finding = next(f for f in verdict.findings if f.rule == "vision-fp8-per-rank-16")
    assert "4304 / TP 8 = 538" in finding.message
    assert "1152x538" in finding.message
    assert "--mm-encoder-tp-mode data" in finding.fix
    kimi = run_check(KIMI, "-tp", "8", "-q", "fp8", target="rocm:mi300x", version="0.26.0")
    conflict = next(f for f in kimi.findings if f.rule == "quantization-conflicts-with-checkpoint")
    assert "compressed-tensors" in conflict.message and "4-bit" in conflict.message
    assert conflict.fix.startswith("remove --quantization fp8")
