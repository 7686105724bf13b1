"""`launcher rules --explain RULE` and `launcher check --show-facts`, in process (launcher.cli.main)."""

from __future__ import annotations

import json

import pytest

from launcher.cli import main
from tests.harness.common import model_dir


def test_explain_names_the_facts_a_rule_reads_and_their_producers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--explain", "memory-kv-cache-too-small"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("memory-kv-cache-too-small (error) in data/compatibility.yaml")
    assert "reads        derived.kv_fits (bool?) from check/memory.py fit_facts" in out


def test_explain_a_deployment_rule_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--explain", "shm-small", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == "shm-small"


def test_explain_an_unknown_rule_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "--explain", "kv-fp8-e5m2-fallsback"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "error: no rule 'kv-fp8-e5m2-fallsback'; did you mean kv-fp8-e5m2-falls-back? `launcher rules` lists them"
    )


def test_show_facts(capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "check",
        "--target",
        "cuda:h100",
        "--vllm-version",
        "0.26.0",
        "--show-facts",
        "--",
        "--model",
        model_dir("meta-llama__Llama-3.1-8B-Instruct"),
        "-tp",
        "2",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "facts:" in out and "args.tensor_parallel_size" in out and "derived.kv_heads_per_rank" in out
    assert main([*argv[:1], "--format", "json", *argv[1:]]) == 0
    facts = json.loads(capsys.readouterr().out)["facts"]
    assert facts["args"]["tensor_parallel_size"] == 2 and facts["derived"]["kv_heads_per_rank"] == 4


def test_json_without_show_facts_keeps_the_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "check",
                "--target",
                "cuda:h100",
                "--format",
                "json",
                "--",
                "--model",
                model_dir("meta-llama__Llama-3.1-8B-Instruct"),
            ]
        )
        == 0
    )
    assert "facts" not in json.loads(capsys.readouterr().out)
