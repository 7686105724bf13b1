"""The front door: FastAPI in front of vLLM's OpenAI server.

- `/v1/*` is proxied with aiohttp; each upstream chunk is sent on as it arrives (SSE streams pass
  through chunk by chunk), status codes, headers and error bodies untouched, request bodies as sent.
  A client that disconnects closes the upstream connection, which makes vLLM abort the request.
- Only `/v1/*` reaches vLLM: its control routes (/invocations, /pause, /update_weights, ...) are not exposed.
- `--api-key` guards `/v1/*` (constant-time compare); `/health`, `/ready`, `/metrics`, `/status` are open.
- `/health` is liveness (launcher and child alive); `/ready` is readiness (the model answered a real
  generation recently, or tokens are flowing), 503 while loading, draining or frozen.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from starlette.types import Receive, Scope, Send

from . import metrics

log = logging.getLogger("launcher.access")

# Hop-by-hop headers, plus what uvicorn and aiohttp set themselves (date, server, host, length) and the key.
NOT_FORWARDED = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
                           "transfer-encoding", "upgrade", "host", "content-length", "authorization", "date",
                           "server"})
# Metric labels: vLLM's OpenAI routes by name, anything else under one label (bounded cardinality).
KNOWN_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/models", "/v1/embeddings",
                          "/v1/responses", "/v1/audio/transcriptions", "/v1/audio/translations"})
RETRY_AFTER_SECONDS = "5"


@dataclass
class FrontDoorState:
    """What the routes share with the supervisor loop (serve.py) and the readiness probe."""

    upstream: str  # http://127.0.0.1:PORT
    api_key: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    ready: bool = False
    ready_reason: str = "vLLM is starting"
    draining: bool = False
    child_alive: bool = True
    in_flight: int = 0
    last_upstream_bytes: float = 0.0  # monotonic time of the last chunk vLLM sent: tokens flowing = engine alive
    session: aiohttp.ClientSession | None = None


def openai_error(status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": status}}, status_code=status,
                        headers=headers)


class UpstreamResponse(Response):
    """Sends vLLM's response on as it arrives, one send() per chunk read, and notices client disconnects."""

    def __init__(self, upstream: aiohttp.ClientResponse, state: FrontDoorState, route: str, started: float):
        self.upstream = upstream
        self.state = state
        self.route = route
        self.started = started
        self.status_code = upstream.status
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream, state = self.upstream, self.state
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers.items()
                   if k.lower() not in NOT_FORWARDED]
        disconnected = asyncio.create_task(_wait_for_disconnect(receive, upstream))
        complete = False
        try:
            await send({"type": "http.response.start", "status": upstream.status, "headers": headers})
            async for chunk in upstream.content.iter_any():
                state.last_upstream_bytes = time.monotonic()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            complete = True
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            if not disconnected.done():
                log.warning("upstream stream broke on %s: %s", self.route, type(exc).__name__)
                metrics.UPSTREAM_ERRORS.inc()
        finally:
            disconnected.cancel()
            upstream.release()
            state.in_flight -= 1
            metrics.IN_FLIGHT.dec()
            outcome = upstream.status if complete else ("client-gone" if disconnected.done() else "broken")
            _record(self.route, outcome, self.started, scope)


async def _wait_for_disconnect(receive: Receive, upstream: aiohttp.ClientResponse) -> None:
    """Close the upstream connection when the client goes away, so vLLM aborts the generation."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            upstream.close()
            return


def _record(route: str, status: int | str, started: float, scope: Scope | None = None) -> None:
    seconds = time.monotonic() - started
    metrics.REQUESTS.labels(route, str(status)).inc()
    metrics.REQUEST_SECONDS.labels(route).observe(seconds)
    client = scope.get("client") if scope else None
    log.info("method=%s path=%s status=%s duration_ms=%.1f client=%s",
             scope.get("method", "-") if scope else "-", route, status, seconds * 1000,
             client[0] if client else "-")


def create_app(state: FrontDoorState, lifespan: Any = None) -> FastAPI:
    app = FastAPI(title="vllm-launch front door", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)

    @app.get("/health")
    async def health() -> Response:
        if state.child_alive:
            return JSONResponse({"status": "ok"})
        return openai_error(503, "the vLLM process is not running", "service_unavailable")

    @app.get("/ready")
    async def ready() -> Response:
        if state.ready and not state.draining:
            return JSONResponse({"status": "ready"})
        reason = "draining: the server is shutting down" if state.draining else state.ready_reason
        return openai_error(503, reason, "service_unavailable", {"Retry-After": RETRY_AFTER_SECONDS})

    @app.get("/status")
    async def status() -> Response:
        return JSONResponse({**state.status, "ready": state.ready and not state.draining,
                             "ready_reason": state.ready_reason, "draining": state.draining,
                             "in_flight": state.in_flight})

    @app.get("/metrics")
    async def prometheus() -> Response:
        own = generate_latest(metrics.REGISTRY).decode()
        return PlainTextResponse(own + await _vllm_metrics(state), media_type="text/plain; version=0.0.4")

    @app.api_route("/v1/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def proxy(path: str, request: Request) -> Response:
        started = time.monotonic()
        route = f"/v1/{path}" if f"/v1/{path}" in KNOWN_ROUTES else "/v1/*"
        scope = request.scope
        if state.api_key is not None and not _authorized(request, state.api_key):
            _record(route, 401, started, scope)
            return openai_error(401, "missing or wrong API key: send Authorization: Bearer <key>",
                                "authentication_error")
        if state.draining:
            _record(route, 503, started, scope)
            return openai_error(503, "the server is shutting down; retry on another replica", "service_unavailable",
                                {"Retry-After": RETRY_AFTER_SECONDS})
        if not state.child_alive:
            _record(route, 503, started, scope)
            return openai_error(503, "vLLM is not running", "service_unavailable",
                                {"Retry-After": RETRY_AFTER_SECONDS})
        assert state.session is not None
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED}
        url = f"{state.upstream}/v1/{path}"
        if request.url.query:
            url += f"?{request.url.query}"
        state.in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            upstream = await state.session.request(request.method, url, data=body, headers=headers)
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            state.in_flight -= 1
            metrics.IN_FLIGHT.dec()
            metrics.UPSTREAM_ERRORS.inc()
            _record(route, 503, started, scope)
            message = "the model is still loading" if not state.ready else "vLLM did not answer"
            return openai_error(503, message, "service_unavailable", {"Retry-After": RETRY_AFTER_SECONDS})
        return UpstreamResponse(upstream, state, route, started)

    return app


def _authorized(request: Request, api_key: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())


async def _vllm_metrics(state: FrontDoorState) -> str:
    if state.session is None or not state.child_alive:
        return ""
    try:
        timeout = aiohttp.ClientTimeout(total=2)
        async with state.session.get(f"{state.upstream}/metrics", timeout=timeout) as response:
            if response.status == 200:
                return await response.text()
    except (TimeoutError, aiohttp.ClientError, ConnectionError):
        pass
    return ""


async def probe_generation(state: FrontDoorState, model: str, timeout: float) -> tuple[bool, str]:
    """One real, time-limited generation: vLLM's own /health stays 200 while its engine is frozen."""
    assert state.session is not None
    payload = json.dumps({"model": model, "prompt": "ping", "max_tokens": 1, "temperature": 0})
    try:
        async with state.session.post(f"{state.upstream}/v1/completions", data=payload,
                                      headers={"content-type": "application/json"},
                                      timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            await response.read()
            if response.status == 200:
                return True, "the model answered a generation"
            return False, f"vLLM answered the readiness generation with HTTP {response.status}"
    except TimeoutError:
        return False, f"vLLM did not answer a 1-token generation within {timeout:.0f} s (engine busy or frozen)"
    except (aiohttp.ClientError, ConnectionError):
        return False, "vLLM is starting (its server is not listening yet)"
