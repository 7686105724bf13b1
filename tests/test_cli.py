"""The CLI contract: exit 0 accepted, 2 rejected or bad input, JSON shape, never a traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.cli import run_cli as launcher
from tests.harness.common import model_dir

LLAMA = model_dir("meta-llama__Llama-3.1-8B-Instruct")


def test_the_entry_point_keeps_the_contract() -> None:
    """The real `python -m launcher.cli` (the other tests call main in process): exit codes, JSON on stdout."""
    argv = [
        "check",
        "--target",
        "cuda:v100",
        "--vllm-version",
        "0.26.0",
        "--format",
        "json",
        "--",
        "--model",
        LLAMA,
        "-q",
        "fp8",
    ]
    result = subprocess.run([sys.executable, "-m", "launcher.cli", *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and json.loads(result.stdout)["accepted"] is False
    bad = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "frobnicate"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr


def test_accepted_exits_0_with_json_contract() -> None:
    result = launcher(
        "check",
        "--target",
        "cuda:h100",
        "--vllm-version",
        "0.26.0",
        "--format",
        "json",
        "--",
        "--model",
        LLAMA,
        "-tp",
        "2",
    )
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["accepted"] is True
    assert body["effective_args"] == ["--model", LLAMA, "--tensor-parallel-size", "2"]
    assert set(body) >= {"accepted", "findings", "effective_args"}


def test_rejected_exits_2_and_text_names_rule_and_fix() -> None:
    result = launcher(
        "check", "--target", "cuda:v100", "--vllm-version", "0.26.0", "--", "--model", LLAMA, "--quantization", "fp8"
    )
    assert result.returncode == 2
    assert result.stdout.startswith("REJECTED")
    assert "[fp8-gpu-too-old]" in result.stdout and "fix: remove --quantization fp8" in result.stdout
    body = json.loads(
        launcher(
            "check",
            "--target",
            "cuda:v100",
            "--vllm-version",
            "0.26.0",
            "--format",
            "json",
            "--",
            "--model",
            LLAMA,
            "-q",
            "fp8",
        ).stdout
    )
    assert body["accepted"] is False
    assert {"rule", "severity", "message", "fix"} <= set(body["findings"][0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["check", "--", "--model", "/nonexistent/model"], "does not exist"),
        (["check", "--target", "cuda:h1000", "--", "--model", LLAMA], "unknown --target"),
        (["check", "--"], "no model given"),
        (["check", "--vllm-version", "banana", "--", "--model", LLAMA], "not a version"),
        (["check", "--format", "yaml", "--", "--model", LLAMA], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_one_line_exit_2(argv: list[str], message: str) -> None:
    result = launcher(*argv)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("error: ")


def test_a_repeated_flag_is_accepted_with_a_warning_in_json() -> None:
    """vLLM's parser keeps the last value of a repeated flag (issue 19: refusing it was a false reject)."""
    repeated = ["--max-model-len", "4096", "--max-model-len", "8192"]
    result = launcher(*"check --target cuda:h100 --format json --".split(), "--model", LLAMA, *repeated)
    assert result.returncode == 0, result.stdout + result.stderr
    body = json.loads(result.stdout)
    assert body["accepted"] is True
    assert [f["severity"] for f in body["findings"] if f["rule"] == "argument-repeated"] == ["warning"]


def test_malformed_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": [')
    result = launcher("check", "--", "--model", str(tmp_path))
    assert result.returncode == 2 and "not valid JSON" in result.stderr and "Traceback" not in result.stderr


def test_rules_markdown_lists_every_rule() -> None:
    result = launcher("rules")
    assert result.returncode == 0
    assert "| `vision-fp8-per-rank-16` |" in result.stdout


def test_readme_table_is_generated_from_the_yaml() -> None:
    result = subprocess.run(
        [sys.executable, "tools/render_docs.py", "--check"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
