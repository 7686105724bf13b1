"""`launcher serve` end to end: real CPU vLLM behind the front door, talked to over HTTP.

One launcher (with an API key: the `front_door` fixture in conftest.py) is shared by the non-destructive
tests of this session; the drain, freeze and kill tests each need a launcher of their own, since they end it.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.harness.common import API_KEY, LOCAL_MODEL
from tests.harness.launcher_process import LauncherProcess, http

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (LOCAL_MODEL / "config.json").is_file(), reason="run `make model` first"),
]

AUTH = {"authorization": f"Bearer {API_KEY}"}


def completion(url: str, headers: dict[str, str] | None = None, **body: object) -> tuple[int, dict]:
    status, _, raw = http(
        "POST",
        f"{url}/v1/completions",
        {"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 8, **body},
        headers,
    )
    return status, json.loads(raw)


def test_ready_was_503_while_loading_then_200(front_door: LauncherProcess) -> None:
    assert front_door.ready_states[0] in (0, 503)
    assert 503 in front_door.ready_states and front_door.ready_states[-1] == 200
    assert http("GET", f"{front_door.url}/health")[0] == 200


def test_completion_answers_with_text(front_door: LauncherProcess) -> None:
    status, body = completion(front_door.url, AUTH)
    assert status == 200
    assert body["choices"][0]["text"].strip()
    assert body["usage"]["completion_tokens"] == 8


def test_chat_completion(front_door: LauncherProcess) -> None:
    status, _, raw = http(
        "POST",
        f"{front_door.url}/v1/chat/completions",
        {"model": "smollm2", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8},
        AUTH,
    )
    assert status == 200
    assert json.loads(raw)["choices"][0]["message"]["content"]


def test_streaming_passes_each_event(front_door: LauncherProcess) -> None:
    status, headers, raw = http(
        "POST",
        f"{front_door.url}/v1/completions",
        {"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 12, "stream": True, "ignore_eos": True},
        AUTH,
    )
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in raw.decode().splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) == 12
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


def test_vllm_400_passes_through_intact(front_door: LauncherProcess) -> None:
    bad = {"model": "smollm2", "prompt": "x", "max_tokens": -1}
    through = http("POST", f"{front_door.url}/v1/completions", bad, AUTH)
    direct = http("POST", f"http://127.0.0.1:{front_door.status()['vllm_port']}/v1/completions", bad)
    assert through[0] == direct[0] == 400
    assert through[2] == direct[2]
    assert json.loads(through[2])["error"]["param"] == "max_tokens"


def test_api_key_guards_v1_only(front_door: LauncherProcess) -> None:
    assert completion(front_door.url)[0] == 401
    status, body = completion(front_door.url, {"authorization": "Bearer wrong"})
    assert status == 401 and body["error"]["type"] == "authentication_error"
    for open_route in ("/health", "/ready", "/metrics"):
        assert http("GET", f"{front_door.url}{open_route}")[0] == 200, open_route
    assert http("GET", f"{front_door.url}/status")[0] == 401  # it names the model, args and vLLM's port
    assert API_KEY not in front_door.log_path.read_text()


def test_only_v1_routes_are_exposed(front_door: LauncherProcess) -> None:
    for route in ("/invocations", "/pause", "/update_weights", "/tokenize", "/inference/v1/generate"):
        assert http("POST", f"{front_door.url}{route}", {}, AUTH)[0] == 404, route


def test_metrics_have_ours_and_vllms(front_door: LauncherProcess) -> None:
    completion(front_door.url, AUTH)
    text = http("GET", f"{front_door.url}/metrics")[2].decode()
    assert 'launcher_requests_total{route="/v1/completions",status="200"}' in text
    assert "launcher_startup_seconds" in text and "launcher_ready 1.0" in text
    assert "vllm:num_requests_running" in text


def test_status_reports_verdict_and_platform(front_door: LauncherProcess) -> None:
    status = front_door.status()
    assert status["accepted"] is True and status["platform"].startswith("CPU")
    assert status["vllm_version"] and "--max-model-len" in status["effective_args"]


def test_status_has_the_plan_beside_what_vllm_measured(front_door: LauncherProcess) -> None:
    """The start report on a real CPU vLLM. The tests set VLLM_CPU_KVCACHE_SPACE=2 (launcher_process.py), so
    both sides size the same 2 GiB and the layer groups must give vLLM's own token count."""
    status = front_door.status()
    observed, error = status["observed"], status["error"]
    assert observed["vllm_version"] and observed["kv_tokens"] > 0 and observed["max_model_len"] == 2048
    assert observed["kv_cache_gib"] == 2.0 and status["predicted"]["kv_cache_gib"] == 2.0
    assert status["ignored_flags"] == [] and error["max_model_len"] == 0
    assert abs(error["kv_tokens"]) < 0.005, (status["predicted"], observed)
    _, _, metrics_text = http("GET", f"{front_door.url}/metrics", headers=AUTH)
    assert 'launcher_prediction_error_ratio{quantity="kv_tokens"}' in metrics_text.decode()


def test_one_log_line_per_request(front_door: LauncherProcess) -> None:
    completion(front_door.url, AUTH, prompt="log line check")
    lines = [line for line in front_door.log_path.read_text().splitlines() if "launcher.access" in line]
    assert any("method=POST path=/v1/completions status=200 duration_ms=" in line for line in lines)


def test_openai_client_unchanged(front_door: LauncherProcess) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{front_door.url}/v1", api_key=API_KEY)
    assert client.completions.create(model="smollm2", prompt="Hello", max_tokens=5).choices[0].text
    chat = client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": "Hi"}], max_tokens=5)
    assert chat.choices[0].message.content
    pieces = [
        c.choices[0].text
        for c in client.completions.create(model="smollm2", prompt="One, two,", max_tokens=6, stream=True)
    ]
    assert len(pieces) >= 6 and "".join(pieces)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{front_door.url}/v1", api_key="wrong").models.list()


def running_requests(url: str) -> float:
    for line in http("GET", f"{url}/metrics")[2].decode().splitlines():
        if line.startswith("vllm:num_requests_running{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("vllm:num_requests_running not found")


def test_client_disconnect_cancels_upstream(front_door: LauncherProcess) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", front_door.port, timeout=30)
    body = json.dumps({"model": "smollm2", "prompt": "Count:", "max_tokens": 1500, "stream": True, "ignore_eos": True})
    connection.request("POST", "/v1/completions", body, {"content-type": "application/json", **AUTH})
    response = connection.getresponse()
    assert response.status == 200
    response.read(200)
    assert running_requests(front_door.url) >= 1
    connection.sock.close()
    connection.close()
    deadline = time.monotonic() + 10
    while running_requests(front_door.url) > 0 and time.monotonic() < deadline:
        time.sleep(0.25)
    assert running_requests(front_door.url) == 0


# -- destructive: each of these ends its own launcher -----------------------------------------------


def engine_processes(vllm_pid: int) -> list[psutil.Process]:
    return psutil.Process(vllm_pid).children(recursive=True)


def wait_for_ready_status(url: str, expected: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if http("GET", f"{url}/ready", timeout=3)[0] == expected:
                return time.monotonic() - start
        except OSError:
            if expected == 503:
                return time.monotonic() - start
        time.sleep(0.25)
    raise AssertionError(f"/ready did not turn {expected} within {timeout} s")


def test_frozen_engine_then_drain_on_sigterm(tmp_path: Path) -> None:
    launcher = LauncherProcess(LOCAL_MODEL, tmp_path / "launcher.log", serve_options=["--drain-timeout", "90"]).start()
    try:
        launcher.wait_ready()
        assert launcher.vllm_pid is not None
        engine = engine_processes(launcher.vllm_pid)
        assert engine, "vLLM's engine process was not found"
        for process in engine:
            process.suspend()
        try:
            assert wait_for_ready_status(launcher.url, 503, 15) <= 15
            assert http("GET", f"{launcher.url}/health")[0] == 200  # alive, not ready
        finally:
            for process in engine:
                process.resume()
        wait_for_ready_status(launcher.url, 200, 30)

        result: dict[str, object] = {}

        def stream() -> None:
            status, _, raw = http(
                "POST",
                f"{launcher.url}/v1/completions",
                {
                    "model": "smollm2",
                    "prompt": "Once upon a time",
                    "max_tokens": 150,
                    "stream": True,
                    "ignore_eos": True,
                    "stream_options": {"include_usage": True},
                },
                timeout=120,
            )
            result["status"], result["raw"] = status, raw.decode()

        streamer = threading.Thread(target=stream)
        streamer.start()
        time.sleep(1.5)
        launcher.signal(signal.SIGTERM)
        time.sleep(0.5)
        status, headers, _ = http(
            "POST", f"{launcher.url}/v1/completions", {"model": "smollm2", "prompt": "late", "max_tokens": 2}
        )
        assert status == 503 and headers.get("retry-after") == "5"
        assert http("GET", f"{launcher.url}/ready")[0] == 503
        streamer.join(120)
        events = [line[6:] for line in str(result["raw"]).splitlines() if line.startswith("data: ")]
        assert result["status"] == 200 and events[-1] == "[DONE]"
        # Whole: all 150 tokens (a loaded vLLM may put two tokens in one event, so count tokens, not events).
        assert json.loads(events[-2])["usage"]["completion_tokens"] == 150
        assert json.loads(events[-3])["choices"][0]["finish_reason"] == "length"
        assert launcher.wait(60) == 0
        assert not psutil.pid_exists(launcher.vllm_pid) or psutil.Process(launcher.vllm_pid).status() == "zombie"
    finally:
        launcher.stop()


def test_killed_child_makes_launcher_exit_nonzero(tmp_path: Path) -> None:
    launcher = LauncherProcess(LOCAL_MODEL, tmp_path / "launcher.log").start()
    try:
        launcher.wait_ready()
        assert launcher.vllm_pid is not None
        psutil.Process(launcher.vllm_pid).kill()
        assert wait_for_ready_status(launcher.url, 503, 5) <= 5
        code = launcher.wait(60)
        assert code != 0
        log = launcher.log_path.read_text()
        assert "vLLM exited with code -9" in log and "its last log lines" in log
    finally:
        launcher.stop()
