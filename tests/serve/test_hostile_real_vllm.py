"""The attacks where real vLLM's behaviour matters, against the shared real CPU vLLM behind the launcher.

vLLM 0.32 serves utility and control routes on the same port as inference (/version and /tokenize by default;
/pause, /collective_rpc, /sleep, ... with the flags that enable them) and its FastAPI app redirects a trailing
slash with a Location built from the Host header: the allowlist is what keeps both away from clients.
tests/serve/test_hostile_clients.py covers the classes against a stand-in.
"""

from __future__ import annotations

import socket

import pytest

from tests.harness.common import API_KEY
from tests.harness.launcher_process import LauncherProcess, http

pytestmark = pytest.mark.slow

AUTH = {"authorization": f"Bearer {API_KEY}"}


def raw_get(port: int, target: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_KEY}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_vllm_itself_serves_control_routes_and_slash_redirects(front_door: LauncherProcess) -> None:
    """The premise: what the front door refuses really exists behind it."""
    vllm = front_door.status()["vllm_port"]
    assert http("GET", f"http://127.0.0.1:{vllm}/version")[0] == 200
    assert http("POST", f"http://127.0.0.1:{vllm}/tokenize", {"model": "smollm2", "prompt": "hi"})[0] == 200
    # vLLM builds the Location from the Host header: a proxy that sets Host to vLLM's address would pass that on.
    redirect = raw_get(vllm, "/v1/models/")
    assert redirect.startswith(b"HTTP/1.1 307") and b"location: http://x/v1/models" in redirect.lower()


@pytest.mark.parametrize(
    "target",
    [
        "/v1/../version",
        "/v1/%2e%2e/is_paused",
        "/v1/..%2Fversion",
        "/v1/%2E%2E/server_info",
        "/v1//version",
        "/v1/../tokenize",
    ],
)
def test_traversal_to_real_control_routes_is_refused(front_door: LauncherProcess, target: str) -> None:
    response = raw_get(front_door.port, target)
    assert response.startswith(b"HTTP/1.1 400"), response[:200]


@pytest.mark.parametrize("target", ["/v1/models/", "/v1/completions/", "/version", "/is_paused"])
def test_no_redirect_or_control_route_through_the_front_door(front_door: LauncherProcess, target: str) -> None:
    response = raw_get(front_door.port, target)
    assert response.startswith(b"HTTP/1.1 404") and b"location:" not in response.lower(), response[:200]


def test_real_models_route_still_answers(front_door: LauncherProcess) -> None:
    status, _, body = http("GET", f"{front_door.url}/v1/models", headers=AUTH)
    assert status == 200 and b"smollm2" in body
