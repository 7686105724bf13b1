"""Shared test helpers: the fixtures' model directories and a one-call check."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher.check.verdict import Verdict, check
from launcher_process import LauncherProcess

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "tests" / "fixtures" / "models"
LOCAL_MODEL = Path(os.environ.get("LAUNCHER_TEST_MODEL", ROOT / "models" / "SmolLM2-135M-Instruct"))
API_KEY = "test-key-not-secret"


def model_dir(name: str) -> str:
    path = MODELS / name
    assert (path / "config.json").is_file(), f"fixture {name} is missing"
    return str(path)


def run_check(model: str, *args: str, target: str = "cuda:h100", version: str = "0.26.0") -> Verdict:
    return check(["--model", model_dir(model), *args], target=target, vllm_version=version)


def rule_ids(verdict: Verdict) -> set[str]:
    return {finding.rule for finding in verdict.findings}


@pytest.fixture(autouse=True)
def _no_vllm_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rules read VLLM_* variables; tests start from none unless they set one."""
    for key in list(os.environ):
        if key.startswith("VLLM_") or key == "LAUNCHER_TARGET":
            monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def front_door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LauncherProcess]:
    """One real `launcher serve` (API key set) with a real CPU vLLM behind it, shared by the session's tests."""
    if not (LOCAL_MODEL / "config.json").is_file():
        pytest.skip("run `make model` first")
    log = tmp_path_factory.mktemp("shared") / "launcher.log"
    launcher = LauncherProcess(LOCAL_MODEL, log, extra_args=["--api-key", API_KEY],
                               env={"LAUNCHER_BODY_TIMEOUT": "3"}).start()
    try:
        launcher.wait_ready()
        yield launcher
    finally:
        launcher.stop()
