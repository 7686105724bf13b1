"""Class 3: dtype x quantization x GPU, per release, from the release's own config classes.

Sources (executed by tools/derive_vllm_facts.py into launcher/data/vllm/<release>.json):
vllm/config/model.py _FLOAT16_NOT_SUPPORTED_MODELS / _check_valid_dtype (gemma2, gemma3, gemma3_text, glm4; plamo2
until 0.26); vllm/config/vllm.py _get_quantization_config with each <Method>Config.get_min_capability() and
get_supported_act_dtypes(); vllm/model_executor/model_loader/weight_utils.py get_quant_config with
get_config_filenames() ("Cannot find the config file for awq"); vllm/platforms/cuda.py check_if_supports_dtype.
"""

from pathlib import Path

import pytest

from launcher.check import vllm_parser
from launcher.check.verdict import check
from tests.harness.common import rule_ids, run_check

QWEN = "Qwen__Qwen2.5-7B-Instruct"
GEMMA = "google__gemma-3-27b-it"
LLAMA = "meta-llama__Llama-3.1-8B-Instruct"
GPT_OSS = "openai__gpt-oss-20b"
QWEN_FP8 = "Qwen__Qwen3-30B-A3B-FP8"
FP16 = "dtype-float16-not-supported"
BF16 = "dtype-bfloat16-pre-ampere"
CAPABILITY = "quantization-capability-too-low"
ACT = "quantization-act-dtype"
CHECKPOINT = "quantization-needs-checkpoint"
CLASS3 = {FP16, BF16, CAPABILITY, ACT, CHECKPOINT}

CASES = [
    # (model, args, target, release, the class-3 rules that fire)
    (GEMMA, ["--dtype", "float16"], "cuda:h100", "0.26.0", {FP16}),
    (GEMMA, ["--dtype", "half"], "cuda:h100", "0.33.0", {FP16}),
    (GEMMA, ["--dtype", "bfloat16"], "cuda:h100", "0.26.0", set()),
    (GEMMA, [], "cuda:h100", "0.26.0", set()),  # auto: the checkpoint's bfloat16
    (GEMMA, [], "cuda:t4", "0.26.0", {FP16}),  # auto on Turing is float16, which gemma3 refuses
    (LLAMA, ["--dtype", "float16"], "cuda:h100", "0.26.0", set()),
    (LLAMA, ["--dtype", "bfloat16"], "cuda:v100", "0.26.0", {BF16}),
    (LLAMA, ["--dtype", "bfloat16"], "cuda:a100", "0.26.0", set()),
    (LLAMA, [], "cuda:v100", "0.26.0", set()),  # auto picks float16 there
    (QWEN, ["-q", "awq"], "cuda:h100", "0.26.0", {CHECKPOINT}),  # BF16 weights, no quantize_config.json
    (QWEN, ["-q", "gptq"], "cuda:h100", "0.33.0", {CHECKPOINT}),
    (QWEN, ["-q", "modelopt"], "cuda:h100", "0.26.0", {CHECKPOINT}),  # hf_quant_config.json
    (QWEN, ["-q", "fp8"], "cuda:h100", "0.26.0", set()),  # online: no config files
    # get_quant_config executed per release on a checkpoint without a quantization config: the config class
    # cannot be built without the checkpoint's values (TypeError), though it names no config file
    (QWEN, ["-q", "compressed-tensors"], "cuda:h100", "0.26.0", {CHECKPOINT}),
    (QWEN, ["-q", "compressed-tensors"], "cuda:h100", "0.17.1", {CHECKPOINT}),
    (QWEN, ["-q", "quark"], "cuda:h100", "0.33.0", {CHECKPOINT}),
    (QWEN, ["-q", "torchao"], "cuda:h100", "0.26.0", {CHECKPOINT}),
    (QWEN, ["-q", "mxfp8"], "cuda:b200", "0.26.0", set()),  # an online shorthand since 0.26 (no hf_quant_config)
    (QWEN, ["-q", "bitsandbytes"], "cuda:h100", "0.26.0", set()),  # quantized in flight
    (QWEN, ["-q", "experts_int8"], "cuda:t4", "0.26.0", {CAPABILITY}),  # min capability 80
    (QWEN, ["-q", "experts_int8"], "cuda:a10g", "0.26.0", set()),
    (QWEN, ["-q", "fp8"], "cuda:t4", "0.26.0", set()),  # 75: Marlin weight-only
    (QWEN, ["-q", "fp8"], "cuda:v100", "0.26.0", {CAPABILITY}),
    (GPT_OSS, [], "cuda:h100", "0.26.0", set()),  # mxfp4 checkpoint, bfloat16
    (GPT_OSS, ["--dtype", "float16"], "cuda:h100", "0.26.0", {ACT}),  # mxfp4 acts: bfloat16 only
    (GPT_OSS, [], "cuda:t4", "0.26.0", {CAPABILITY, ACT}),  # mxfp4 needs 80, and auto is float16 there
    (QWEN_FP8, ["--dtype", "half"], "cuda:h100", "0.26.0", set()),  # fp8 acts: bfloat16 and float16
]


@pytest.mark.parametrize(("model", "args", "target", "release", "expected"), CASES)
def test_dtype_quantization_gpu(model: str, args: list[str], target: str, release: str, expected: set[str]) -> None:
    verdict = run_check(model, *args, target=target, version=release)
    assert rule_ids(verdict) & CLASS3 == expected, [f.message for f in verdict.findings]
    if expected:
        assert not verdict.accepted


def test_fp16_ban_follows_the_release() -> None:
    """plamo2 left _FLOAT16_NOT_SUPPORTED_MODELS between 0.26.0 and 0.32.0 (launcher/data/vllm/*.json)."""
    banned_026 = vllm_parser.release_facts("0.26.0")["model_config"]["float16_not_supported"]
    banned_033 = vllm_parser.release_facts("0.33.0")["model_config"]["float16_not_supported"]
    assert "plamo2" in banned_026 and "plamo2" not in banned_033
    assert {"gemma2", "gemma3", "gemma3_text"} <= set(banned_033)


def test_checkpoint_refusal_quotes_vllm() -> None:
    verdict = run_check(QWEN, "-q", "compressed-tensors", version="0.26.0")
    finding = next(f for f in verdict.findings if f.rule == CHECKPOINT)
    assert "CompressedTensorsConfig.__init__() missing 3 required positional arguments" in finding.message


def test_capability_message_quotes_vllm() -> None:
    finding = next(f for f in run_check(QWEN, "-q", "experts_int8", target="cuda:t4").findings if f.rule == CAPABILITY)
    assert "Minimum capability: 80. Current capability: 75." in finding.message


def test_deprecated_method_from_the_checkpoint() -> None:
    """vllm/config/model.py ModelConfig._verify_quantization (0.26.0) checks DEPRECATED_QUANTIZATION_METHODS on the
    method resolved from the checkpoint, before the capability check: the H200 stopped an fp_quant checkpoint with
    "... deprecated ... set `--allow-deprecated-quantization`" (bench/results/h200-ground-truth.json,
    fp-quant-checkpoint-hopper). With the flag, the capability (100 > 90) is what is left."""
    model = str(Path(__file__).resolve().parents[2] / "bench" / "gpu" / "models" / "fp-quant-checkpoint-hopper")
    plain = check(["--model", model], target="cuda:h200", vllm_version="0.26.0")
    allowed = check(["--model", model, "--allow-deprecated-quantization"], target="cuda:h200", vllm_version="0.26.0")
    assert {"quantization-deprecated", CAPABILITY} <= rule_ids(plain)
    assert "quantization-deprecated" not in rule_ids(allowed) and CAPABILITY in rule_ids(allowed)
    assert rule_ids(run_check(QWEN, target="cuda:h200")) & {"quantization-deprecated"} == set()
