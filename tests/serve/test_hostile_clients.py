"""A hostile client against the real `launcher serve`, in front of a stand-in that exposes vLLM's control routes.

The stand-in (tests/harness/fake_vllm.py) answers 200 on /pause, /collective_rpc, /v1/load_lora_adapter and every other
path, and records each request that reaches it, so every attack asserts two things: what the client got, and that
nothing but vLLM's inference routes reached vLLM. After each attack the launcher must still serve a good request.
Raw sockets throughout, so malformed HTTP goes out as written. The classes: routing (traversal spellings, encodings,
methods), framing and smuggling, header bombs, idle and slow floods at a lowered fd limit, bodies, honest upstream
handling (abandoned requests, stale connections, redirects, hop-by-hop and forwarding headers, non-latin-1 values,
frozen engine), signals mid-body, CORS, secrets in /status, /metrics, logs and error messages, bad settings.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.harness.cli import run_cli
from tests.harness.common import ROOT
from tests.harness.launcher_process import LauncherProcess, http

SMALL_MODEL = ROOT / "tests" / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct"
KEYS = ("first-key-0123456789", "second-key-9876543210")
ARG_SECRET = "hf_argsecret_ABCDEFGH"
ENV_SECRET = "hf_envsecret_QWERTYUI"
SECRETS = (*KEYS, ARG_SECRET, ENV_SECRET)
ALLOWED_UPSTREAM = {"/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics"}
AUTH = f"Authorization: Bearer {KEYS[0]}\r\n".encode()


# -- the launchers ---------------------------------------------------------------------------------------


def stand_in(
    tmp_path: Path, env: dict[str, str] | None = None, extra: list[str] | None = None, prefix: list[str] | None = None
) -> LauncherProcess:
    """`launcher serve` with the recording stand-in as vLLM and two API keys; started, not yet ready."""
    record = tmp_path / "reached.jsonl"
    record.touch()
    environment = {
        "LAUNCHER_VLLM_ENTRYPOINT": "tests.harness.fake_vllm",
        "FAKE_VLLM_RECORD": str(record),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'server'}",
        "HF_TOKEN": ENV_SECRET,
        **(env or {}),
    }
    launcher = LauncherProcess(
        SMALL_MODEL,
        tmp_path / "launcher.log",
        env=environment,
        prefix=prefix or [],
        extra_args=["--api-key", *KEYS, "--hf-token", ARG_SECRET, *(extra or [])],
    )
    launcher.record = record  # type: ignore[attr-defined]
    return launcher.start()


@pytest.fixture(scope="module")
def door(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LauncherProcess]:
    """The shared launcher, with small limits so the attacks hit them quickly."""
    env = {
        "LAUNCHER_HEADER_TIMEOUT": "2",
        "LAUNCHER_UPSTREAM_TIMEOUT": "3",
        "LAUNCHER_BODY_TIMEOUT": "3",
        "LAUNCHER_MAX_BODY_BYTES": "131072",
        "LAUNCHER_MAX_BUFFERED_BYTES": "153600",
    }
    launcher = stand_in(tmp_path_factory.mktemp("door"), env)
    try:
        launcher.wait_ready(60)
        yield launcher
    finally:
        launcher.stop()


@pytest.fixture
def one_off(tmp_path: Path) -> Iterator[Callable[..., LauncherProcess]]:
    """Launchers for attacks that change or end them (signals, fd limits, CORS); each is stopped after."""
    started: list[LauncherProcess] = []

    def start(**kwargs: Any) -> LauncherProcess:
        directory = tmp_path / str(len(started))
        directory.mkdir()
        launcher = stand_in(directory, **kwargs)
        started.append(launcher)
        launcher.wait_ready(60)
        return launcher

    yield start
    for launcher in started:
        launcher.stop()


# -- raw HTTP ----------------------------------------------------------------------------------------------


def read_response(sock: socket.socket, timeout: float = 5) -> bytes:
    """One response (head + Content-Length or chunked body), or what came before the peer closed."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")[1:]
                    if line.lower().startswith(b"content-length:")
                ),
                None,
            )
            if length is not None and len(body) >= length:
                return data
            if b"chunked" in head.lower() and body.endswith(b"0\r\n\r\n"):
                return data
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    return data


def exchange(port: int, request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_response(sock, timeout)


def status_of(response: bytes) -> int:
    """The status code, or 0 when the connection closed without an answer."""
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else 0


def header(response: bytes, name: bytes) -> bytes | None:
    head = response.partition(b"\r\n\r\n")[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


def request(method: str, target: str, body: bytes = b"", headers: bytes = AUTH, close: bool = True) -> bytes:
    length = f"Content-Length: {len(body)}\r\n".encode() if body or method == "POST" else b""
    return (
        f"{method} {target} HTTP/1.1\r\nHost: localhost\r\n".encode()
        + headers
        + length
        + (b"Connection: close\r\n" if close else b"")
        + b"\r\n"
        + body
    )


def completion_body(**fields: Any) -> bytes:
    return json.dumps({"model": "smollm2", "prompt": "Hi", "max_tokens": 2, **fields}).encode()


# -- what reached vLLM ----------------------------------------------------------------------------------------


def reached(launcher: LauncherProcess) -> list[dict[str, Any]]:
    record: Path = launcher.record  # type: ignore[attr-defined]
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def breaches(launcher: LauncherProcess) -> list[str]:
    """Paths that reached the stand-in although they are not vLLM inference routes as the client spelled them."""
    return [
        entry["path"]
        for entry in reached(launcher)
        if entry["event"] == "request" and entry["path"].partition("?")[0] not in ALLOWED_UPSTREAM
    ]


def still_serves(launcher: LauncherProcess) -> None:
    response = exchange(launcher.port, request("POST", "/v1/completions", completion_body()))
    assert status_of(response) == 200, response[:300]
    assert breaches(launcher) == []


# -- routing: only the inference routes, matched on the raw target -------------------------------------------

TRAVERSALS = [
    "/v1/%2e%2e/pause",
    "/v1/%2E%2E/pause",
    "/v1/../pause",
    "/v1/..%2Fpause",
    "/v1/..%2fpause",
    "/v1/.%2e/pause",
    "/v1/%2e./pause",
    "/v1/./../pause",
    "/v1/models/../../pause",
    "/v1/..\\pause",
    "/v1/%5c..%5cpause",
    "/v1//pause",
    "/v1/chat/completions/../../invocations",
    "/v1/completions%00",
    "/v1/%252e%252e/pause",
    "/v1/completions%2f..%2f..%2freset_prefix_cache",
    "/v1/..",
    "/v1/.",
    "/v1/models/./",
    "/v1/;/../pause",
    "/v1/models;/../../collective_rpc",
    "/v1/%2e%2e/%2e%2e/sleep",
    "/v1/..%2F..%2Ftokenize",
    "/v1/comple%74ions",
    "/v1/\u00e9/../pause",
]
NOT_INFERENCE = [
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
    "/v1/models/",
    "/v1/completions/",
    "/v1/chat/completions/render",
    "/v1/realtime",
    "/v1/collective_rpc",
    "/v1/pause",
]
OUTSIDE_V1 = [
    "/pause",
    "/invocations",
    "/collective_rpc",
    "/tokenize",
    "/reset_prefix_cache",
    "/sleep",
    "/%76%31/%2e%2e/pause",
    "/V1/../pause",
    "//v1/../pause",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_dot_segments_and_encodings_are_refused(door: LauncherProcess, target: str) -> None:
    response = exchange(door.port, request("POST", target, completion_body()))
    assert status_of(response) in (400, 404), response[:300]
    still_serves(door)


@pytest.mark.parametrize("target", NOT_INFERENCE + OUTSIDE_V1)
def test_control_and_unlisted_routes_are_not_found(door: LauncherProcess, target: str) -> None:
    response = exchange(door.port, request("POST", target, b"{}"))
    assert status_of(response) in (400, 404), response[:300]
    assert header(response, b"location") is None  # no redirect that names vLLM's loopback address
    still_serves(door)


@pytest.mark.parametrize(
    ("method", "target", "allow"),
    [("GET", "/v1/completions", b"POST"), ("DELETE", "/v1/chat/completions", b"POST"), ("POST", "/v1/models", b"GET")],
)
def test_wrong_method_is_405_with_allow(door: LauncherProcess, method: str, target: str, allow: bytes) -> None:
    response = exchange(door.port, request(method, target, b"{}" if method != "GET" else b""))
    assert status_of(response) == 405 and header(response, b"allow") == allow
    still_serves(door)


def test_absolute_form_target_is_routed_by_its_path(door: LauncherProcess) -> None:
    for target, expected in ((f"http://127.0.0.1:{door.port}/pause", 404), ("http://localhost/v1/../pause", 400)):
        assert status_of(exchange(door.port, request("POST", target, b"{}"))) == expected, target
    still_serves(door)


def test_query_string_passes_but_never_changes_the_route(door: LauncherProcess) -> None:
    response = exchange(door.port, request("GET", "/v1/models?x=/../pause&y=%2e%2e"))
    assert status_of(response) == 200
    paths = [entry["path"] for entry in reached(door) if entry["event"] == "request"]
    assert "/v1/models?x=/../pause&y=%2e%2e" in paths  # vLLM got the bytes that were checked
    still_serves(door)


def test_access_log_shows_the_real_path_bounded(door: LauncherProcess) -> None:
    exchange(door.port, request("POST", "/v1/%2e%2e/pause", b"{}"))
    exchange(door.port, request("POST", "/v1/" + "a" * 3000, b"{}"))
    lines = [line for line in door.log_path.read_text().splitlines() if "launcher.access" in line]
    assert any("path=/v1/%2e%2e/pause status=400" in line for line in lines)
    assert all(len(line) < 600 for line in lines)


# -- framing and smuggling ------------------------------------------------------------------------------------

SMUGGLING = {
    "cl-and-te": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
    + AUTH
    + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPOST /pause HTTP/1.1\r\n"
    + b"Host: x\r\nContent-Length: 0\r\n\r\n",
    "two-content-lengths": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
    + AUTH
    + b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}",
    "bad-chunk-size": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
    + AUTH
    + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "obfuscated-te": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
    + AUTH
    + b"Transfer-Encoding: xchunked\r\nContent-Length: 2\r\n\r\n{}",
    "nul-in-header": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n" + AUTH + b"\r\n",
    "space-before-colon": b"GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n" + AUTH + b"\r\n",
    "pipelined-traversal": request("GET", "/v1/models", close=False) + request("POST", "/v1/%2e%2e/pause", b"{}"),
    "pipelined-control": request("GET", "/v1/models", close=False) + request("POST", "/pause", b"{}"),
    "content-length-not-a-number": b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
    + AUTH
    + b"Content-Length: abc\r\n\r\n{}",
}


@pytest.mark.parametrize("name", list(SMUGGLING))
def test_framing_attacks_never_reach_a_control_route(door: LauncherProcess, name: str) -> None:
    response = exchange(door.port, SMUGGLING[name])
    assert b" 500 " not in response and b"Traceback" not in response
    if not name.startswith("pipelined"):
        assert status_of(response) in (0, 400, 501), response[:300]
    still_serves(door)


# -- the request head: size, count, pace -------------------------------------------------------------------


def rss(launcher: LauncherProcess) -> int:
    assert launcher.process is not None
    return psutil.Process(launcher.process.pid).memory_info().rss


def test_huge_header_is_431(door: LauncherProcess) -> None:
    response = exchange(door.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Bomb: " + b"a" * (1 << 20) + b"\r\n\r\n")
    assert status_of(response) in (0, 431)  # 431, or the peer reset while we were still sending
    still_serves(door)


def test_too_many_headers_is_431(door: LauncherProcess) -> None:
    many = b"".join(b"X-%d: 1\r\n" % index for index in range(300))
    response = exchange(door.port, b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + many + AUTH + b"\r\n")
    assert status_of(response) == 431
    still_serves(door)


def test_long_request_line_is_414(door: LauncherProcess) -> None:
    response = exchange(door.port, request("GET", "/v1/models?" + "q" * 20000))
    assert status_of(response) == 414
    still_serves(door)


def test_never_ending_header_is_cut_and_memory_stays_flat(door: LauncherProcess) -> None:
    before = rss(door)
    with socket.create_connection(("127.0.0.1", door.port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 64 << 20:
                sock.sendall(b"b" * 16384)
                sent += 16384
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass
        # What the kernel buffers on loopback (a few MiB) is sent before the launcher's close shows here.
        assert sent < 16 << 20, "the launcher kept reading a never-ending header"
    assert rss(door) - before < 20 << 20
    start = time.monotonic()
    assert http("GET", f"{door.url}/health")[0] == 200 and time.monotonic() - start < 1
    still_serves(door)


def test_slow_header_gets_408_after_the_header_timeout(door: LauncherProcess) -> None:
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", door.port), timeout=10) as sock:
        for byte in b"GET /v1/models HTTP/1.1\r\nHost: x\r\n":
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.2)
            if time.monotonic() - start > 4:
                break
        response = read_response(sock, 5)
    assert status_of(response) == 408 and time.monotonic() - start < 6
    still_serves(door)


def test_silent_connection_is_closed_after_the_header_timeout(door: LauncherProcess) -> None:
    with socket.create_connection(("127.0.0.1", door.port), timeout=6) as sock:
        start = time.monotonic()
        assert sock.recv(10) == b"" and 1.5 < time.monotonic() - start < 5


def test_many_half_heads_do_not_grow_memory(door: LauncherProcess) -> None:
    before = rss(door)
    sockets = [socket.create_connection(("127.0.0.1", door.port)) for _ in range(60)]
    for sock in sockets:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nX-Pad: " + b"p" * 30000)
    assert http("GET", f"{door.url}/health")[0] == 200
    time.sleep(2.5)  # the header timeout closes every one of them
    closed = sum(1 for sock in sockets if status_of(read_response(sock, 2)) in (0, 408))
    for sock in sockets:
        sock.close()
    assert closed == len(sockets)
    assert rss(door) - before < 30 << 20
    still_serves(door)


# -- bodies --------------------------------------------------------------------------------------------------


def test_declared_body_over_the_limit_is_413(door: LauncherProcess) -> None:
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 200000\r\n\r\n"
    assert status_of(exchange(door.port, head + b"{")) == 413
    still_serves(door)


def test_bodies_together_are_bounded(door: LauncherProcess) -> None:
    """Two bodies of 100 kB each, both within the per-request limit, together over the shared 150 KiB."""
    body = completion_body(prompt="x" * 100000)
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: %d\r\n\r\n" % len(body)
    first, second = (socket.create_connection(("127.0.0.1", door.port), timeout=5) for _ in range(2))
    with first, second:
        first.sendall(head + body[:80000])
        time.sleep(0.3)
        second.sendall(head + body[:80000])
        refused = read_response(second, 3)
        first.sendall(body[80000:])
        served = read_response(first, 5)
    assert status_of(refused) == 503 and header(refused, b"retry-after")
    assert status_of(served) == 200
    still_serves(door)


def test_slow_body_is_408(door: LauncherProcess) -> None:
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 100\r\n\r\n"
    assert status_of(exchange(door.port, head + b"{", timeout=8)) == 408
    still_serves(door)


# -- honest upstream handling -----------------------------------------------------------------------------------


def test_abandoned_non_streaming_request_is_cancelled_upstream(door: LauncherProcess) -> None:
    with socket.create_connection(("127.0.0.1", door.port)) as sock:
        sock.sendall(request("POST", "/v1/completions", completion_body(), AUTH + b"x-fake: slow\r\n"))
        time.sleep(0.5)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not any(e["event"] == "cancelled" for e in reached(door)):
        time.sleep(0.1)
    assert any(e["event"] == "cancelled" for e in reached(door))
    still_serves(door)


def test_non_streaming_upstream_timeout_is_504(door: LauncherProcess) -> None:
    start = time.monotonic()
    response = exchange(
        door.port, request("POST", "/v1/completions", completion_body(), AUTH + b"x-fake: slow\r\n"), timeout=10
    )
    assert status_of(response) == 504 and b"LAUNCHER_UPSTREAM_TIMEOUT" in response
    assert time.monotonic() - start < 6
    still_serves(door)


def test_non_latin1_upstream_header_passes_as_bytes(door: LauncherProcess) -> None:
    response = exchange(door.port, request("GET", "/v1/models", headers=AUTH + b"x-fake: weird-header\r\n"))
    assert status_of(response) == 200 and header(response, b"x-model-note") == "名前 ✓".encode()
    still_serves(door)


def test_hop_by_hop_headers_are_dropped_downstream(door: LauncherProcess) -> None:
    response = exchange(door.port, request("GET", "/v1/models", headers=AUTH + b"x-fake: hop\r\n"))
    assert status_of(response) == 200
    for name in (b"x-private", b"keep-alive", b"proxy-connection"):
        assert header(response, name) is None, name


def test_hop_by_hop_and_forwarding_headers_are_dropped_upstream(door: LauncherProcess) -> None:
    sent = (
        AUTH + b"Connection: close, X-Client-Private\r\nX-Client-Private: 1\r\nKeep-Alive: 300\r\nTE: trailers"
        b"\r\nProxy-Connection: keep-alive\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n"
        b"X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Marker: hop-test\r\n"
    )
    assert status_of(exchange(door.port, request("GET", "/v1/models", headers=sent, close=False))) == 200
    entry = next(e for e in reversed(reached(door)) if e.get("headers", {}).get("x-marker") == "hop-test")
    headers = entry["headers"]
    for name in ("x-client-private", "keep-alive", "te", "proxy-connection", "forwarded", "x-real-ip", "authorization"):
        assert name not in headers, name
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-proto"] == "http"


def test_upstream_redirect_is_not_followed(door: LauncherProcess) -> None:
    response = exchange(door.port, request("GET", "/v1/models", headers=AUTH + b"x-fake: redirect\r\n"))
    assert status_of(response) == 307
    still_serves(door)  # and /pause was never requested


def test_vllm_cors_headers_do_not_pass_when_cors_is_off(door: LauncherProcess) -> None:
    response = exchange(
        door.port, request("GET", "/v1/models", headers=AUTH + b"x-fake: cors\r\nOrigin: https://evil.example\r\n")
    )
    assert status_of(response) == 200 and header(response, b"access-control-allow-origin") is None
    preflight = exchange(
        door.port,
        request(
            "OPTIONS",
            "/v1/completions",
            headers=b"Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n",
        ),
    )
    assert status_of(preflight) in (401, 405) and header(preflight, b"access-control-allow-origin") is None


def test_stale_pooled_connection_is_retried_once(door: LauncherProcess) -> None:
    """A POST (aiohttp retries only idempotent methods itself) on a pooled connection vLLM has dropped."""
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", door.port), timeout=5) as sock:
            sock.sendall(request("GET", "/v1/models", headers=AUTH + b"x-fake: drop-next\r\n", close=False))
            assert status_of(read_response(sock)) == 200
            sock.sendall(request("POST", "/v1/completions", completion_body(), close=False))
            assert status_of(read_response(sock)) == 200
    assert any(entry["event"] == "dropped" for entry in reached(door))


# -- secrets ---------------------------------------------------------------------------------------------------


def test_status_needs_a_key_and_never_shows_secrets(door: LauncherProcess) -> None:
    assert http("GET", f"{door.url}/status")[0] == 401
    assert http("GET", f"{door.url}/status", headers={"authorization": "Bearer wrong"})[0] == 401
    for key in KEYS:
        status, _, body = http("GET", f"{door.url}/status", headers={"authorization": f"Bearer {key}"})
        assert status == 200 and b"effective_args" in body
        assert not [secret for secret in SECRETS if secret.encode() in body]
        assert b"--hf-token" in body and b"***" in body


def test_every_key_works_and_only_those(door: LauncherProcess) -> None:
    for key in KEYS:
        assert (
            status_of(
                exchange(door.port, request("GET", "/v1/models", headers=f"Authorization: Bearer {key}\r\n".encode()))
            )
            == 200
        )
    for wrong in (KEYS[0] + "x", KEYS[0][:-1], "", f"{KEYS[0]} {KEYS[1]}"):
        response = exchange(
            door.port, request("GET", "/v1/models", headers=f"Authorization: Bearer {wrong}\r\n".encode())
        )
        assert status_of(response) == 401, wrong


def test_metrics_and_logs_carry_no_secret(door: LauncherProcess) -> None:
    metrics = http("GET", f"{door.url}/metrics")[2]
    assert b"launcher_requests_total" in metrics
    log = door.log_path.read_bytes()
    assert b"fake vLLM: arguments" in log  # the stand-in echoes its arguments as vLLM does
    assert not [secret for secret in SECRETS if secret.encode() in metrics + log]


def test_error_messages_and_check_output_carry_no_secret() -> None:
    model = str(SMALL_MODEL)
    twice = run_cli("check", "--", "--model", model, "--hf-token", "hf_first_secret", "--hf-token", "hf_second_secret")
    assert twice.returncode == 2 and "--hf-token" in twice.stderr + twice.stdout
    assert "hf_first_secret" not in twice.stderr + twice.stdout and "hf_second_secret" not in twice.stderr
    shown = run_cli("check", "--format", "json", "--", "--model", model, "--api-key", "sk-shown-nowhere")
    assert json.loads(shown.stdout)["effective_args"] and "sk-shown-nowhere" not in shown.stdout + shown.stderr


# -- the engine freezes while the API server answers ---------------------------------------------------------


def test_frozen_engine_is_not_ready_although_models_answers(door: LauncherProcess) -> None:
    direct = f"http://127.0.0.1:{door.status()['vllm_port']}"
    assert http("POST", f"{direct}/fake/freeze")[0] == 200
    try:
        deadline, ready = time.monotonic() + 20, 200
        while time.monotonic() < deadline and ready == 200:
            assert status_of(exchange(door.port, request("GET", "/v1/models"))) == 200
            ready = http("GET", f"{door.url}/ready")[0]
            time.sleep(0.2)
        assert ready == 503, "polling /v1/models kept a frozen engine ready"
    finally:
        http("POST", f"{direct}/fake/thaw")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and http("GET", f"{door.url}/ready")[0] != 200:
        time.sleep(0.5)
    assert http("GET", f"{door.url}/ready")[0] == 200


# -- floods at a lowered file descriptor limit ------------------------------------------------------------------


def test_idle_flood_at_a_low_fd_limit_leaves_health_answering(one_off: Callable[..., LauncherProcess]) -> None:
    launcher = one_off(prefix=["prlimit", "--nofile=256:256"], env={"LAUNCHER_HEADER_TIMEOUT": "30"})
    idle = []
    try:
        for _ in range(600):  # more than the launcher's whole fd limit, none sends a byte
            idle.append(socket.create_connection(("127.0.0.1", launcher.port), timeout=5))
        for _ in range(3):
            start = time.monotonic()
            assert http("GET", f"{launcher.url}/health", timeout=5)[0] == 200
            assert time.monotonic() - start < 2
        still_serves(launcher)
    finally:
        for sock in idle:
            sock.close()
    assert "connection limit" in launcher.log_path.read_text()


def test_keep_alive_idle_connection_is_closed(one_off: Callable[..., LauncherProcess]) -> None:
    launcher = one_off(env={"LAUNCHER_KEEP_ALIVE_TIMEOUT": "1"})
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=5) as sock:
        sock.sendall(request("GET", "/v1/models", close=False))
        assert status_of(read_response(sock)) == 200
        start = time.monotonic()
        assert sock.recv(10) == b"" and time.monotonic() - start < 3


# -- signals ---------------------------------------------------------------------------------------------------


def test_sigterm_while_a_body_is_arriving_is_503_not_500(one_off: Callable[..., LauncherProcess]) -> None:
    launcher = one_off()
    with socket.create_connection(("127.0.0.1", launcher.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 1000\r\n\r\n{")
        time.sleep(0.3)
        launcher.signal(signal.SIGTERM)
        response = read_response(sock, 8)
    assert status_of(response) == 503 and header(response, b"retry-after")
    assert launcher.wait(30) == 0
    assert "Traceback" not in launcher.log_path.read_text()


def test_sighup_drains_like_sigterm(one_off: Callable[..., LauncherProcess]) -> None:
    launcher = one_off(env={"FAKE_VLLM": "token-ms=50"})
    results: list[bytes] = []
    stream = request("POST", "/v1/completions", completion_body(stream=True, max_tokens=30))
    worker = threading.Thread(target=lambda: results.append(exchange(launcher.port, stream, timeout=15)))
    worker.start()
    time.sleep(0.5)
    launcher.signal(signal.SIGHUP)
    time.sleep(0.3)
    assert http("GET", f"{launcher.url}/ready")[0] == 503
    worker.join(20)
    assert results and results[0].rstrip().endswith(b"0") or b"[DONE]" in results[0]
    assert launcher.wait(30) == 0
    assert "signal 1" in launcher.log_path.read_text()


# -- CORS ---------------------------------------------------------------------------------------------------------


def test_cors_preflight_answered_without_key_when_enabled(one_off: Callable[..., LauncherProcess]) -> None:
    launcher = one_off(extra=["--allowed-origins", '["https://app.example"]'])
    preflight = (
        b"Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
        b"Access-Control-Request-Headers: authorization, content-type\r\n"
    )
    response = exchange(launcher.port, request("OPTIONS", "/v1/chat/completions", headers=preflight))
    assert status_of(response) == 200 and header(response, b"access-control-allow-origin") == b"https://app.example"
    other = exchange(
        launcher.port,
        request("OPTIONS", "/v1/chat/completions", headers=preflight.replace(b"app.example", b"evil.example")),
    )
    assert status_of(other) == 400 and header(other, b"access-control-allow-origin") is None
    origin = b"Origin: https://app.example\r\n"
    assert status_of(exchange(launcher.port, request("GET", "/v1/models", headers=origin))) == 401
    allowed = exchange(launcher.port, request("GET", "/v1/models", headers=AUTH + origin))
    assert status_of(allowed) == 200 and header(allowed, b"access-control-allow-origin") == b"https://app.example"
    assert breaches(launcher) == []


# -- bad settings ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LAUNCHER_MAX_CONNECTIONS", "lots"), ("LAUNCHER_HEADER_TIMEOUT", "-1"), ("LAUNCHER_MAX_HEADER_BYTES", "12")],
)
def test_bad_limit_setting_is_one_line(tmp_path: Path, variable: str, value: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "serve", "--port", "1", "--", "--model", str(SMALL_MODEL)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT / "server"), variable: value},
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and variable in errors[0]
