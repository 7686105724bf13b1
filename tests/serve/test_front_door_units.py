"""The front door's pure parts, in-process: the route decision, redaction, the limits and their documentation."""

from __future__ import annotations

import re
import resource
from pathlib import Path

import pytest

from launcher import cli, settings
from launcher.redact import MASK, Redactor, is_secret_name
from launcher.serve.limits import FrontDoorLimits
from launcher.serve.routes import INFERENCE_ROUTES, decide

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", b"/v1/completions", 200),
        ("POST", b"/v1/chat/completions", 200),
        ("GET", b"/v1/models", 200),
        ("HEAD", b"/v1/models", 200),
        ("GET", b"/v1/responses/resp_01abc", 200),
        ("POST", b"/v1/responses/resp_01abc/cancel", 200),
        ("GET", b"/v1/completions", 405),
        ("POST", b"/v1/load_lora_adapter", 404),
        ("POST", b"/v1/models/", 404),
        ("POST", b"/v1/responses/a/b", 404),
        ("POST", b"/v1/../pause", 400),
        ("POST", b"/v1/%2e%2e/pause", 400),
        ("POST", b"/v1/./models", 400),
        ("POST", b"/v1//completions", 400),
        ("POST", b"/v1/completions\\", 400),
        ("POST", b"/v1/comple%74ions", 400),
        ("POST", b"/v1/completions\x00", 400),
        ("POST", b"/v1/\xc3\xa9", 400),
        ("POST", b"/v1/..", 400),
    ],
)
def test_route_decision(method: str, path: bytes, status: int) -> None:
    assert decide(method, path).status == status


def test_every_route_label_is_reachable_by_its_own_example() -> None:
    examples = {label: label.replace("{id}", "resp_1").encode() for label in INFERENCE_ROUTES}
    for label, path in examples.items():
        method = sorted(INFERENCE_ROUTES[label][1])[0]
        assert decide(method, path).label == label


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("--api-key", True),
        ("--hf-token", True),
        ("HF_TOKEN", True),
        ("aws_secret_access_key", True),
        ("--db-password", True),
        ("VLLM_API_KEY", True),
        ("--max-num-batched-tokens", False),
        ("--tokenizer", False),
        ("--kv-cache-dtype", False),
        ("--tokenizer-mode", False),
        ("--keyfile-path", False),
        ("--model", False),
    ],
)
def test_secret_names_are_words_not_substrings(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


def test_vllm_argument_echo_is_masked() -> None:
    line = (
        "INFO non-default args: {'model': 'm', 'api_key': ['k1', 'k2'], 'hf_token': 'hf_abcdefgh', "
        "'max_num_batched_tokens': 8192}"
    )
    redacted = Redactor().text(line)
    assert "k1" not in redacted and "hf_abcdefgh" not in redacted
    assert "'max_num_batched_tokens': 8192" in redacted and "'model': 'm'" in redacted


def test_prose_with_a_hyphenated_secret_word_is_not_masked() -> None:
    """A flag starts a word: `163840-token sequences` (the fit check's fix text) and `per-key limits` are prose,
    while a flag in the same line is still masked."""
    line = "fix: 4 x 163840-token sequences, per-key limits; vllm serve m --hf-token hf_abcdefgh --api-key=k123"
    redacted = Redactor().text(line)
    assert "4 x 163840-token sequences, per-key limits" in redacted
    assert "hf_abcdefgh" not in redacted and "k123" not in redacted and redacted.count(MASK) == 2


def test_known_values_are_masked_anywhere_and_argv_keeps_flags() -> None:
    redactor = Redactor.for_process(
        ["--model", "m", "--api-key", "sk-one-1234", "sk-two-5678", "--hf-token=hf_xyz9"],
        {"MY_SERVICE_TOKEN": "tok-env-0000", "PATH": "/bin"},
    )
    assert redactor.text("a sk-two-5678 b tok-env-0000 c hf_xyz9") == f"a {MASK} b {MASK} c {MASK}"
    assert redactor.argv(["--api-key", "sk-one-1234", "sk-two-5678", "--hf-token=hf_xyz9", "--model", "m"]) == [
        "--api-key",
        MASK,
        MASK,
        f"--hf-token={MASK}",
        "--model",
        "m",
    ]
    assert redactor.data({"effective_args": ["--hf-token", "hf_xyz9"], "hf_token": "x", "n": 1}) == {
        "effective_args": ["--hf-token", MASK],
        "hf_token": MASK,
        "n": 1,
    }


def test_abbreviated_secret_flags_are_masked(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse takes `--api-k` and `--hf_tok` as --api-key and --hf-token (allow_abbrev): their values are secrets."""
    argv = ["--model", "m", "--api-k", "sk-short-1234", "--hf_tok=hf_abbrev99", "--max-model-le", "4096"]
    redactor = Redactor.for_process(argv)
    assert redactor.argv(argv) == ["--model", "m", "--api-k", MASK, f"--hf_tok={MASK}", "--max-model-le", "4096"]
    assert redactor.text("got --api-k sk-other-555 and --hf-tok x1") == f"got --api-k {MASK} and --hf-tok {MASK}"
    assert Redactor().text("--max-model-le 4096 --tokenizer t") == "--max-model-le 4096 --tokenizer t"
    model = str(Path(__file__).resolve().parents[1] / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct")
    argv = [
        "check",
        "--target",
        "cuda:h100",
        "--format",
        "json",
        "--",
        "--model",
        model,
        "--hf-tok",
        "hf_abbrev_secret",
    ]
    assert cli.main(argv) == 0
    assert "hf_abbrev_secret" not in capsys.readouterr().out


def test_limits_fit_the_fd_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda _kind: (256, 256))
    fitted = FrontDoorLimits().fitted_to_fd_limit()
    assert fitted.max_connections + fitted.upstream_connections <= 256 - 64
    assert fitted.max_connections >= 100


def test_every_limit_is_in_the_readme_with_its_default() -> None:
    readme = ROOT.joinpath("README.md").read_text()
    security = readme[readme.index("## Security") :]
    for field in FrontDoorLimits.__dataclass_fields__:
        variable = f"LAUNCHER_{field.upper()}"
        row = next((line for line in security.splitlines() if f"`{variable}`" in line), None)
        assert row is not None, f"{variable} is not in the README's Security section"
        default = settings.BY_NAME[variable].default
        shown = f"{default:g}" if isinstance(default, float) else str(default)
        assert re.search(rf"\| {shown}\b", row), f"{variable}'s default {default} is not in its row: {row}"
