"""A corpus of bad requests against the front door with real CPU vLLM behind it.

Each gets a 4xx with a message that says what is wrong; none kills or hangs the front door or vLLM,
and a good request succeeds right after each one. Raw sockets, so malformed HTTP can be sent too.
"""

from __future__ import annotations

import json
import socket

import pytest

from tests.harness.common import API_KEY
from tests.harness.launcher_process import LauncherProcess, http

pytestmark = pytest.mark.slow

AUTH = f"Authorization: Bearer {API_KEY}\r\n".encode()


def post(path: str, body: bytes, extra_headers: bytes = b"", content_type: bytes = b"application/json") -> bytes:
    return (
        b"POST "
        + path.encode()
        + b" HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
        + content_type
        + b"\r\n"
        + AUTH
        + extra_headers
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


def json_post(path: str, payload: object) -> bytes:
    return post(path, json.dumps(payload).encode())


def completion(**fields: object) -> bytes:
    return json_post("/v1/completions", {"model": "smollm2", "prompt": "Hello", "max_tokens": 4, **fields})


def chat(**fields: object) -> bytes:
    return json_post(
        "/v1/chat/completions",
        {"model": "smollm2", "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}], **fields},
    )


HUGE = 40 * 1024 * 1024

# (case id, raw request bytes)
CORPUS: list[tuple[str, bytes]] = [
    ("invalid-json", post("/v1/completions", b'{"model": "smollm2", "prompt": ')),
    ("empty-body", post("/v1/completions", b"")),
    ("json-array", json_post("/v1/completions", [1, 2, 3])),
    ("json-string", json_post("/v1/completions", "just a string")),
    ("prompt-wrong-type", completion(prompt={"not": "a prompt"})),
    ("max-tokens-string", completion(max_tokens="ten")),
    ("max-tokens-negative", completion(max_tokens=-5)),
    ("max-tokens-beyond-context", completion(max_tokens=10**9)),
    ("unknown-model", completion(model="gpt-17")),
    ("temperature-negative", completion(temperature=-1)),
    ("top-p-above-one", completion(top_p=5)),
    ("top-k-invalid", completion(top_k=-7)),
    ("n-absurd", completion(n=10**9)),
    ("logprobs-huge", completion(logprobs=10**6)),
    ("stop-wrong-type", completion(stop=123)),
    ("stream-wrong-type", completion(stream="yes please")),
    ("seed-wrong-type", completion(seed="abc")),
    ("missing-prompt", json_post("/v1/completions", {"model": "smollm2", "max_tokens": 4})),
    ("token-ids-negative", completion(prompt=[-5, -6])),
    ("prompt-over-max-model-len", completion(prompt="word " * 5000)),
    ("non-utf8-body", post("/v1/completions", b'{"model": "smollm2", "prompt": "\xff\xfe\xfa", "max_tokens": 2}')),
    ("chat-messages-not-list", chat(messages="hello")),
    ("chat-message-not-object", chat(messages=["Hi"])),
    ("chat-empty-messages", chat(messages=[])),
    ("chat-content-wrong-type", chat(messages=[{"role": "user", "content": 42}])),
    ("chat-missing-messages", json_post("/v1/chat/completions", {"model": "smollm2"})),
    ("wrong-method", b"DELETE /v1/completions HTTP/1.1\r\nHost: localhost\r\n" + AUTH + b"\r\n"),
    ("unknown-v1-route", json_post("/v1/does-not-exist", {})),
    ("path-traversal", json_post("/v1/../../invocations", {})),
    ("control-route", json_post("/invocations", {})),
    (
        "body-too-large",
        post("/v1/completions", b"x" * 64, extra_headers=b"", content_type=b"application/json").replace(
            b"Content-Length: 64", f"Content-Length: {HUGE}".encode()
        ),
    ),
    (
        "bad-content-length",
        b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\n" + AUTH + b"Content-Length: twelve\r\n\r\n{}",
    ),
    ("garbage-request-line", b"BLAH /v1/completions NOTHTTP\r\n\r\n"),
    ("header-without-colon", b"POST /v1/completions HTTP/1.1\r\nHost: localhost\r\nBrokenHeader\r\n\r\n"),
    ("no-api-key", completion().replace(AUTH, b"")),
    ("api-key-injection", completion().replace(AUTH, f"Authorization: Bearer {API_KEY}x\r\n".encode())),
    (
        "slowloris-partial-body",
        post("/v1/completions", b'{"model": "smollm2"}').replace(b"Content-Length: 20", b"Content-Length: 400"),
    ),
]


def send_raw(port: int, raw: bytes, timeout: float = 60) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
        head, _, body = response.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        while length is not None and len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


@pytest.mark.parametrize(("case", "raw"), CORPUS, ids=[case for case, _ in CORPUS])
def test_bad_request_gets_4xx_and_the_next_one_works(front_door: LauncherProcess, case: str, raw: bytes) -> None:
    status, body = send_raw(front_door.port, raw)
    assert 400 <= status < 500, (case, status, body[:300])
    if body.startswith(b"{"):
        message = json.loads(body).get("error", {}).get("message") or json.loads(body).get("detail")
        assert message, (case, body[:300])
    good = http(
        "POST",
        f"{front_door.url}/v1/completions",
        {"model": "smollm2", "prompt": "Hi", "max_tokens": 2},
        {"authorization": f"Bearer {API_KEY}"},
    )
    assert good[0] == 200, (case, good)
    assert front_door.process is not None and front_door.process.poll() is None


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30
