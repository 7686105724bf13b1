"""vLLM serve-argument parsing: spellings, aliases, booleans, multi-value flags, bad input."""

import pytest

from launcher.check.arguments import ServeArgs
from launcher.errors import LauncherError


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
        (["--quantization", "fp8", "--quantization", "awq"], "given twice"),
        (["--enforce-eager", "--no-enforce-eager"], "contradict"),
        (["--model", "m", "stray"], "unexpected argument"),
        (["--max-model-len", "lots"], "whole number"),
        (["--gpu-memory-utilization", "1.5"], "fraction"),
        (["--tensor-parallel-size", "0"], "positive"),
    ],
)
def test_bad_input_is_a_clear_error(argv: list[str], message: str) -> None:
    with pytest.raises(LauncherError, match=message):
        ServeArgs.parse(argv).facts()
