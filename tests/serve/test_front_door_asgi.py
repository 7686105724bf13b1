"""The front door in-process: its ASGI app (create_app) before a small aiohttp upstream in the same event loop.

No launcher process and no sockets to the client: httpx's ASGI transport calls the app directly, so these run in
milliseconds and show each behaviour on its own. The same behaviours through real sockets and a real server are in
test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiohttp import web

from launcher.redact import Redactor
from launcher.serve.front_door import FrontDoorState, create_app
from launcher.serve.limits import FrontDoorLimits
from launcher.serve.supervisor import upstream_session

KEY = "sk-asgi-test-0123"
AUTH = {"authorization": f"Bearer {KEY}"}


async def _upstream(seen: list[dict[str, Any]]) -> tuple[web.AppRunner, int]:
    async def echo(request: web.Request) -> web.Response:
        seen.append({"path": request.raw_path, "headers": dict(request.headers), "body": await request.read()})
        return web.json_response({"ok": True}, headers={"Connection": "X-Hop", "X-Hop": "1", "X-Kept": "yes"})

    app = web.Application()
    app.add_routes([web.route("*", "/{tail:.*}", echo)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def run(
    scenario: Callable[[httpx.AsyncClient, list[dict[str, Any]], FrontDoorState], Awaitable[None]],
    cors: dict[str, Any] | None = None,
) -> None:
    """One front door (ready, key set, redacting a secret) before a fresh upstream; `scenario` talks to it."""

    async def main() -> None:
        seen: list[dict[str, Any]] = []
        runner, port = await _upstream(seen)
        limits = FrontDoorLimits()
        state = FrontDoorState(
            upstream=f"http://127.0.0.1:{port}",
            api_keys=(KEY,),
            limits=limits,
            ready=True,
            redactor=Redactor([KEY, "hf_statussecret"]),
        )
        state.status = {"effective_args": ["--model", "m", "--hf-token", "hf_statussecret"], "vllm_port": port}
        state.session = upstream_session(limits)
        transport = httpx.ASGITransport(app=create_app(state, cors=cors), client=("203.0.113.7", 5000))
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://front") as client:
                await scenario(client, seen, state)
        finally:
            await state.session.close()
            await runner.cleanup()

    asyncio.run(main())


def test_v1_needs_the_key_and_forwards_with_it() -> None:
    async def scenario(client: httpx.AsyncClient, seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        assert (await client.post("/v1/completions", json={})).status_code == 401
        assert (await client.post("/v1/completions", json={"p": 1}, headers=AUTH)).status_code == 200
        assert seen[-1]["path"] == "/v1/completions" and json.loads(seen[-1]["body"]) == {"p": 1}
        assert "Authorization" not in seen[-1]["headers"]

    run(scenario)


def test_routes_are_decided_before_anything_is_forwarded() -> None:
    async def scenario(client: httpx.AsyncClient, seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        assert (await client.post("/v1/load_lora_adapter", json={}, headers=AUTH)).status_code == 404
        wrong = await client.get("/v1/chat/completions", headers=AUTH)
        assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
        assert (await client.get("/v1/models", params={"q": "../pause"}, headers=AUTH)).status_code == 200
        assert [entry["path"] for entry in seen] == ["/v1/models?q=..%2Fpause"]  # the query as sent

    run(scenario)


def test_status_needs_the_key_and_masks_secrets() -> None:
    async def scenario(client: httpx.AsyncClient, _seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        assert (await client.get("/status")).status_code == 401
        shown = await client.get("/status", headers=AUTH)
        assert shown.status_code == 200 and "hf_statussecret" not in shown.text
        assert shown.json()["effective_args"] == ["--model", "m", "--hf-token", "***"]
        assert (await client.get("/health")).status_code == 200  # probes need no key

    run(scenario)


def test_hop_by_hop_dropped_and_forwarding_headers_are_the_front_doors() -> None:
    async def scenario(client: httpx.AsyncClient, seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        response = await client.get(
            "/v1/models", headers={**AUTH, "Connection": "X-Mine", "X-Mine": "1", "X-Forwarded-For": "6.6.6.6"}
        )
        assert response.status_code == 200 and "x-hop" not in response.headers and response.headers["x-kept"]
        sent = {k.lower(): v for k, v in seen[-1]["headers"].items()}
        assert "x-mine" not in sent and sent["x-forwarded-for"] == "203.0.113.7"

    run(scenario)


def test_draining_refuses_new_requests_with_retry_after() -> None:
    async def scenario(client: httpx.AsyncClient, seen: list[dict[str, Any]], state: FrontDoorState) -> None:
        state.start_draining()
        refused = await client.post("/v1/completions", json={}, headers=AUTH)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "5" and seen == []

    run(scenario)


def test_cors_preflight_without_key_only_when_enabled() -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}

    async def enabled(client: httpx.AsyncClient, seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        answer = await client.options("/v1/completions", headers=preflight)
        assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "https://app.example"
        assert seen == []

    async def disabled(client: httpx.AsyncClient, _seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        answer = await client.options("/v1/completions", headers=preflight)
        assert answer.status_code == 401 and "access-control-allow-origin" not in answer.headers

    run(
        enabled,
        cors={
            "allow_origins": ["https://app.example"],
            "allow_methods": ["*"],
            "allow_headers": ["*"],
            "allow_credentials": False,
        },
    )
    run(disabled)
