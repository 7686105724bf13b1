"""Faults real vLLM will not produce on demand, against the real launcher with a stand-in vLLM
(tests/harness/fake_vllm.py).

Slow start, an engine that dies, a port already taken, a burst of streams cut by SIGTERM, a slowloris body.
Each test runs its own `launcher serve`; the stand-in answers in milliseconds, so these are fast.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.harness.common import LOCAL_MODEL, ROOT
from tests.harness.launcher_process import LauncherProcess, http

# The check still runs on a real config; the stand-in only replaces vLLM's server.
SMALL_MODEL = ROOT / "tests" / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct"


def fake(
    tmp_path: Path,
    behaviour: str = "",
    serve_options: list[str] | None = None,
    env: dict[str, str] | None = None,
    model: Path = SMALL_MODEL,
) -> LauncherProcess:
    environment = {
        "LAUNCHER_VLLM_ENTRYPOINT": "tests.harness.fake_vllm",
        "FAKE_VLLM": behaviour,
        "PYTHONPATH": f"{ROOT}:{ROOT / 'server'}",
        **(env or {}),
    }
    return LauncherProcess(model, tmp_path / "launcher.log", serve_options=serve_options or [], env=environment)


@pytest.fixture
def launcher_factory() -> Iterator[list[LauncherProcess]]:
    started: list[LauncherProcess] = []
    yield started
    for launcher in started:
        launcher.stop()


def until(predicate, timeout: float, step: float = 0.1) -> float:  # noqa: ANN001
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        time.sleep(step)
    raise AssertionError(f"condition not met within {timeout} s")


def test_slow_start_is_alive_but_not_ready(tmp_path: Path, launcher_factory: list[LauncherProcess]) -> None:
    launcher = fake(tmp_path, "start-delay=6").start()
    launcher_factory.append(launcher)
    until(lambda: _status(launcher.url, "/health") == 200, 20)
    assert _status(launcher.url, "/ready") == 503
    status, _, body = http("POST", f"{launcher.url}/v1/completions", {"model": "fake", "prompt": "x"})
    assert status == 503 and "loading" in json.loads(body)["error"]["message"]
    launcher.wait_ready(30)
    assert http("POST", f"{launcher.url}/v1/completions", {"model": "fake", "prompt": "x"})[0] == 200


def test_engine_death_exits_nonzero_with_last_lines(tmp_path: Path, launcher_factory: list[LauncherProcess]) -> None:
    launcher = fake(tmp_path, "exit-after=3,exit-code=0").start()
    launcher_factory.append(launcher)
    launcher.wait_ready(30)
    assert until(lambda: _status(launcher.url, "/ready") != 200, 10) < 5
    assert launcher.wait(30) == 3  # vLLM's own exit code was 0: the launcher still says it failed
    log = launcher.log_path.read_text()
    assert "vLLM exited with code 0" in log and "fake vLLM: engine died" in log


def test_port_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        launcher = fake(tmp_path)
        launcher.port = taken.getsockname()[1]
        launcher.start()
        try:
            assert launcher.wait(30) == 2
            assert "already in use" in launcher.log_path.read_text()
            assert "Traceback" not in launcher.log_path.read_text()
        finally:
            launcher.stop()


def test_burst_of_streams_drains_on_sigterm(tmp_path: Path, launcher_factory: list[LauncherProcess]) -> None:
    launcher = fake(tmp_path, "token-ms=20", serve_options=["--drain-timeout", "30"]).start()
    launcher_factory.append(launcher)
    launcher.wait_ready(30)
    results: list[tuple[int, str]] = []

    def stream() -> None:
        status, _, raw = http(
            "POST",
            f"{launcher.url}/v1/completions",
            {"model": "fake", "prompt": "x", "max_tokens": 100, "stream": True},
            timeout=60,
        )
        results.append((status, raw.decode()))

    threads = [threading.Thread(target=stream) for _ in range(24)]
    for thread in threads:
        thread.start()
    until(lambda: launcher.status()["in_flight"] == 24, 10)
    launcher.signal(signal.SIGTERM)
    time.sleep(0.3)
    status, headers, _ = http("POST", f"{launcher.url}/v1/completions", {"model": "fake", "prompt": "late"})
    assert status == 503 and headers.get("retry-after") == "5"
    for thread in threads:
        thread.join(60)
    assert len(results) == 24
    for status, raw in results:
        events = [line for line in raw.splitlines() if line.startswith("data: ")]
        assert status == 200 and len(events) == 101 and events[-1] == "data: [DONE]"
    assert launcher.wait(30) == 0
    assert launcher.vllm_pid is not None and not _running(launcher.vllm_pid)


def test_slowloris_body_gets_408_and_others_still_served(
    tmp_path: Path, launcher_factory: list[LauncherProcess]
) -> None:
    launcher = fake(tmp_path, env={"LAUNCHER_BODY_TIMEOUT": "2"}).start()
    launcher_factory.append(launcher)
    launcher.wait_ready(30)
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=10) as slow:
        slow.sendall(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"model":'
        )
        assert http("POST", f"{launcher.url}/v1/completions", {"model": "fake", "prompt": "x"})[0] == 200
        assert slow.recv(200).startswith(b"HTTP/1.1 408")


def _status(url: str, path: str) -> int:
    try:
        return http("GET", f"{url}{path}", timeout=3)[0]
    except OSError:
        return 0


def _running(pid: int) -> bool:
    return psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE


@pytest.mark.skipif(not (LOCAL_MODEL / "config.json").is_file(), reason="run `make model` first")
def test_serve_auto_starts_the_chosen_profile(tmp_path: Path, launcher_factory: list[LauncherProcess]) -> None:
    # An 8B model in BF16 does not fit 0.3 of a CPU node; SmolLM2's config does, and BF16 is the most accurate.
    launcher = fake(tmp_path, serve_options=["--auto"], model=LOCAL_MODEL).start()
    launcher_factory.append(launcher)
    launcher.wait_ready(60)
    log = launcher.log_path.read_text()
    assert "--auto: starting -tp 1" in log and "BF16 weights, BF16 KV" in log
    assert "--model" in launcher.status()["effective_args"]
