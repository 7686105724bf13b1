"""--quantization on a pre-quantized checkpoint: what vLLM's own ModelConfig._verify_quantization does, per release
and platform (tools/derive_vllm_facts.py executes it on CHECKPOINT_SAMPLES into data/vllm/<release>.json
checkpoint_quantization). A flag that names another method is refused (the method mismatch), served as given, or
silently replaced by an override_quantization_method (ModelOpt, GPT-OSS MXFP4 claim every flag)."""

import json
from pathlib import Path

import pytest

from launcher.check import vllm_parser
from launcher.check.model_facts import checkpoint_sample
from launcher.check.verdict import check
from tests.harness.common import MODELS, rule_ids

CONFLICT = "quantization-conflicts-with-checkpoint"
REPLACED = "quantization-replaced-by-checkpoint"
LLAMA = json.loads((MODELS / "meta-llama__Llama-3.1-8B-Instruct" / "config.json").read_text())

CHECKPOINTS = {
    "fp8": {"quant_method": "fp8", "activation_scheme": "dynamic"},
    "gptq": {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False},
    "awq": {"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"},
    "modelopt-fp8": {"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": ["lm_head"]},
    "modelopt-nvfp4": {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16},
}


def checkpoint(tmp_path: Path, kind: str) -> str:
    folder = tmp_path / kind
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**LLAMA, "quantization_config": CHECKPOINTS[kind]}))
    return str(folder)


CASES = [
    # (checkpoint, flag, target, release, rules among CONFLICT/REPLACED)
    ("fp8", "fp8", "cuda:h200", "0.26.0", set()),
    ("fp8", "awq", "cuda:h200", "0.26.0", {CONFLICT}),  # the mismatch ValueError
    ("modelopt-fp8", "awq", "cuda:h200", "0.26.0", {REPLACED}),  # ModelOptFp8Config claims any flag
    ("modelopt-fp8", "fp8", "cuda:h100", "0.33.0", {REPLACED}),
    ("modelopt-fp8", "modelopt", "cuda:h200", "0.26.0", set()),
    ("modelopt-nvfp4", "gptq", "cuda:b200", "0.26.0", {REPLACED}),
    ("gptq", "gptq", "cuda:h200", "0.26.0", set()),  # its own method: vLLM picks the kernel (auto_gptq), no warning
    ("gptq", "awq", "cuda:h200", "0.26.0", {CONFLICT}),
    ("awq", "awq_marlin", "cuda:h200", "0.26.0", {REPLACED}),  # Marlin's override needs the GPU's capability
    ("awq", "awq_marlin", "cpu:avx512", "0.32.0", {CONFLICT}),  # none on CPU: awq != awq_marlin
]


@pytest.mark.parametrize(("kind", "flag", "target", "release", "expected"), CASES)
def test_flag_on_a_quantized_checkpoint(
    tmp_path: Path, kind: str, flag: str, target: str, release: str, expected: set[str]
) -> None:
    verdict = check(
        ["--model", checkpoint(tmp_path, kind), "--quantization", flag], target=target, vllm_version=release
    )
    assert rule_ids(verdict) & {CONFLICT, REPLACED} == expected
    if CONFLICT in expected:
        assert not verdict.accepted


def test_replacement_names_the_method_vllm_serves(tmp_path: Path) -> None:
    verdict = check(
        ["--model", checkpoint(tmp_path, "modelopt-fp8"), "-q", "awq"], target="cuda:h200", vllm_version="0.26.0"
    )
    (finding,) = [f for f in verdict.findings if f.rule == REPLACED]
    assert "with modelopt, not with --quantization awq" in finding.message


def test_every_release_derived_every_sample_on_every_platform() -> None:
    for release in vllm_parser.known_releases():
        section = vllm_parser.release_facts(release)["checkpoint_quantization"]
        assert section["not_derived"] == {}, release
        for kind, per_platform in section["served"].items():
            assert "cpu" in per_platform, (release, kind)


@pytest.mark.parametrize("kind", sorted(CHECKPOINTS))
def test_each_checkpoint_is_like_a_derived_sample(kind: str) -> None:
    sample = checkpoint_sample(CHECKPOINTS[kind], "llama")
    assert sample in vllm_parser.release_facts("0.26.0")["checkpoint_quantization"]["served"]


def test_a_checkpoint_like_no_sample_falls_back_to_the_table(tmp_path: Path) -> None:
    assert checkpoint_sample({"quant_method": "gptq", "bits": 2}, "llama") is None
    assert checkpoint_sample({"quant_method": "mxfp4"}, "llama") is None  # MXFP4's override claims GPT-OSS only
