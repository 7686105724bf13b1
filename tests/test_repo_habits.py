"""The repository's own habits: `make lint` runs ruff, the format check and mypy; the pre-commit config's hooks
name tools `make install` puts in .venv, each watches files that exist, and the project-specific ones pass."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HOOKS = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
TRACKED = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()


def test_make_lint_runs_ruff_the_format_check_and_mypy() -> None:
    commands = subprocess.run(
        ["make", "-n", "--no-print-directory", "lint", "VENV=.venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    lines = [line for line in commands.splitlines() if line.startswith(".venv/bin/")]
    assert [line.split()[0:3] for line in lines[-3:]] == [
        [".venv/bin/ruff", "check", "server"],
        [".venv/bin/ruff", "format", "--check"],
        [".venv/bin/mypy"],
    ]


def test_every_hook_runs_a_venv_tool_on_files_that_exist() -> None:
    for hook in HOOKS:
        tool = hook["entry"].split()[0]
        assert tool.startswith(".venv/bin/") and tool.split("/")[-1] in {"ruff", "mypy", "python", "launcher"}
        if "files" in hook:
            assert any(re.search(hook["files"], name) for name in TRACKED), hook["id"]


def _hook(hook_id: str) -> list[str]:
    (hook,) = [h for h in HOOKS if h["id"] == hook_id]
    words = hook["entry"].split()
    tool = {"python": [sys.executable], "launcher": [sys.executable, "-m", "launcher.cli"]}[words[0].split("/")[-1]]
    files = [] if hook.get("pass_filenames") is False else [n for n in TRACKED if re.search(hook["files"], n)]
    return [*tool, *words[1:], *files]


def test_the_generated_docs_hook_passes() -> None:
    result = subprocess.run(_hook("generated-docs"), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_the_presets_preflight_hook_passes() -> None:
    result = subprocess.run(_hook("preflight-presets"), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rocm-llama405b-fp8-throughput.yaml" in result.stdout
