"""data/vllm/<release>.json is checked when loaded: every committed release fits, a broken one is refused with
the path of the problem and what to do (tools/derive_vllm_facts.py), never a KeyError deep in a rule."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from launcher.check import vllm_parser
from launcher.check.release_schema import validate_release_facts
from launcher.errors import LauncherError

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "server" / "launcher" / "data" / "vllm"


def committed(release: str) -> dict[str, Any]:
    facts: dict[str, Any] = json.loads((DATA / f"{release}.json").read_text())
    return facts


@pytest.mark.parametrize("release", vllm_parser.known_releases())
def test_every_committed_release_fits_the_schema(release: str) -> None:
    validate_release_facts(committed(release), release)


def _drop(facts: dict[str, Any], *path: str | int) -> None:
    node: Any = facts
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("parser", "actions", 3, "dest"), "parser.actions.3.dest"),
        (("model_runner", "v1", "offloader"), "model_runner.v1.offloader"),
        (("quantization", "methods"), "quantization.methods"),
        (("schema",), "schema"),
    ],
)
def test_a_broken_release_file_is_refused_with_the_path_of_the_problem(path: tuple[Any, ...], named: str) -> None:
    facts = copy.deepcopy(committed("0.26.0"))
    _drop(facts, *path)
    with pytest.raises(LauncherError) as refused:
        validate_release_facts(facts, "data/vllm/0.26.0.json")
    message = str(refused.value)
    assert message.startswith(f"data/vllm/0.26.0.json: {named}: ")
    assert "tools/derive_vllm_facts.py" in message and "\n" not in message


def test_a_wrong_runner_name_is_refused() -> None:
    facts = copy.deepcopy(committed("0.33.0"))
    facts["model_runner"]["default"] = "v3"
    with pytest.raises(LauncherError, match="model_runner.default"):
        validate_release_facts(facts, "0.33.0")


def test_the_cli_says_one_line_and_exits_2_on_a_broken_file(tmp_path: Path) -> None:
    """The same refusal through `launcher check`, with the package's data replaced by a broken copy."""
    package = tmp_path / "launcher"
    subprocess.run(["cp", "-r", str(ROOT / "server" / "launcher"), str(package)], check=True)
    broken = committed("0.26.0")
    del broken["parser"]["actions"][0]["option_strings"]
    (package / "data" / "vllm" / "0.26.0.json").write_text(json.dumps(broken))
    model = ROOT / "tests" / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct"
    check = "-m launcher.cli check --target cuda:h100 --vllm-version 0.26.0 --format json -- --model".split()
    done = subprocess.run(
        [sys.executable, *check, str(model)],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    verdict = json.loads(done.stdout)  # the contract: JSON on stdout for every outcome
    assert verdict["accepted"] is False
    assert "parser.actions.0.option_strings" in verdict["findings"][0]["message"]
    assert len(done.stderr.strip().splitlines()) == 1
