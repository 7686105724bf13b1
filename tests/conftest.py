"""Shared fixtures: no VLLM_* variable leaks into a test; one real front door per session (tests/harness/ holds the
helpers)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.harness.common import API_KEY, LOCAL_MODEL
from tests.harness.launcher_process import LauncherProcess


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
    launcher = LauncherProcess(
        LOCAL_MODEL, log, extra_args=["--api-key", API_KEY], env={"LAUNCHER_BODY_TIMEOUT": "3"}
    ).start()
    try:
        launcher.wait_ready()
        yield launcher
    finally:
        launcher.stop()
