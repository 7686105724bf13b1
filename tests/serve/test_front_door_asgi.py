"""The front door in-process: its ASGI app (create_app) before a small aiohttp upstream in the same event loop.

No launcher process and no sockets to the client: httpx's ASGI transport calls the app directly, so these run in
milliseconds and show each behaviour on its own. The same behaviours through real sockets and a real server are in
test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from aiohttp import web

from launcher.redact import Redactor
from launcher.serve import metrics
from launcher.serve.front_door import FrontDoorState, create_app
from launcher.serve.limits import FrontDoorLimits
from launcher.serve.supervisor import sample_loop_lag, upstream_session

KEY = "sk-asgi-test-0123"
AUTH = {"authorization": f"Bearer {KEY}"}
FIRST_CHUNK_DELAY = 0.05  # the stand-in's "prefill": a streamed generation's first chunk comes this late


async def _upstream(seen: list[dict[str, Any]]) -> tuple[web.AppRunner, int]:
    async def echo(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen.append({"path": request.raw_path, "headers": dict(request.headers), "body": body, "at": time.monotonic()})
        if not (body.startswith(b"{") and json.loads(body).get("stream")):
            return web.json_response({"ok": True}, headers={"Connection": "X-Hop", "X-Hop": "1", "X-Kept": "yes"})
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await stream.prepare(request)
        await asyncio.sleep(FIRST_CHUNK_DELAY)
        for token in ("a", "b"):
            await stream.write(f"data: {token}\n\n".encode())
        await stream.write_eof()
        return stream

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


def _added() -> dict[str, tuple[float, float]]:
    """metrics.ADDED_SECONDS per stage: (count, sum)."""
    name = "launcher_added_latency_seconds"
    return {
        stage: (
            metrics.REGISTRY.get_sample_value(f"{name}_count", {"stage": stage}) or 0.0,
            metrics.REGISTRY.get_sample_value(f"{name}_sum", {"stage": stage}) or 0.0,
        )
        for stage in ("to_upstream", "to_client", "total")
    }


def test_a_generation_records_the_front_doors_share_of_its_first_chunk_and_none_of_vllms() -> None:
    async def scenario(client: httpx.AsyncClient, seen: list[dict[str, Any]], _state: FrontDoorState) -> None:
        before, asked = _added(), time.monotonic()
        async with client.stream("POST", "/v1/completions", json={"stream": True}, headers=AUTH) as response:
            assert [chunk async for chunk in response.aiter_raw()]
        answered = time.monotonic()
        after = _added()
        count = {stage: after[stage][0] - before[stage][0] for stage in after}
        added = {stage: after[stage][1] - before[stage][1] for stage in after}
        assert count == {"to_upstream": 1, "to_client": 1, "total": 1}
        assert 0 < added["to_upstream"] <= seen[-1]["at"] - asked  # written before the upstream read it
        assert 0 < added["to_client"] < FIRST_CHUNK_DELAY  # vLLM's time to its first chunk is not the front door's
        assert added["total"] == added["to_upstream"] + added["to_client"]
        assert added["total"] < answered - asked - FIRST_CHUNK_DELAY
        assert (await client.get("/v1/models", headers=AUTH)).status_code == 200  # not a generation
        assert (await client.post("/v1/completions", json={})).status_code == 401  # never reached vLLM
        assert _added() == after

    run(scenario)


def test_loop_lag_is_the_wait_behind_work_already_due() -> None:
    async def main() -> float:
        observed = metrics.REGISTRY.get_sample_value("launcher_event_loop_lag_seconds_sum") or 0.0
        loop = asyncio.get_running_loop()
        loop.call_soon(time.sleep, 0.03)  # a callback already due that holds the loop for 30 ms
        sample_loop_lag()
        await asyncio.sleep(0.01)
        return (metrics.REGISTRY.get_sample_value("launcher_event_loop_lag_seconds_sum") or 0.0) - observed

    assert 0.03 <= asyncio.run(main()) < 0.5
