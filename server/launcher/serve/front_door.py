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
from fastapi import FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import generate_latest
from starlette.types import Receive, Scope, Send

from .. import settings
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
# A request body larger than this is refused (413) before it reaches vLLM; one that trickles in slower than
# BODY_TIMEOUT_SECONDS in all (slowloris) is refused with 408.
MAX_BODY_BYTES = settings.get("LAUNCHER_MAX_BODY_BYTES")
BODY_TIMEOUT_SECONDS = settings.get("LAUNCHER_BODY_TIMEOUT")


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


class V1Proxy:
    """Raw ASGI for `/v1/*` (no routing or middleware per chunk); everything else goes to the FastAPI app.

    Measured (../shared/research/proxy-ceiling.md): a raw ASGI + aiohttp hop costs less event-loop time
    per request and per chunk than a FastAPI route, which shows as time-to-first-token under load.
    """

    def __init__(self, app: FastAPI, state: FrontDoorState):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        state, path = self.state, scope["path"]
        route = path if path in KNOWN_ROUTES else "/v1/*"
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            _record(route, refusal.status_code, started, scope)
            return
        assert state.session is not None
        try:
            body = await asyncio.wait_for(_read_body(receive, _content_length(scope)), BODY_TIMEOUT_SECONDS)
        except _BodyRefused as refused:
            await openai_error(refused.status, refused.message, "invalid_request_error")(scope, receive, send)
            _record(route, refused.status, started, scope)
            return
        except TimeoutError:
            message = f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:.0f} s"
            await openai_error(408, message, "invalid_request_error")(scope, receive, send)
            _record(route, 408, started, scope)
            return
        if body is None:
            _record(route, "client-gone", started, scope)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]
                   if k.decode("latin-1").lower() not in NOT_FORWARDED}
        query = scope.get("query_string", b"").decode("latin-1")
        url = f"{state.upstream}{path}" + (f"?{query}" if query else "")
        state.in_flight += 1
        metrics.IN_FLIGHT.inc()
        try:
            await self._forward(scope, receive, send, url, body, headers, route, started)
        finally:
            state.in_flight -= 1
            metrics.IN_FLIGHT.dec()

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        state = self.state
        if state.api_key is not None and not _authorized(scope, state.api_key):
            return openai_error(401, "missing or wrong API key: send Authorization: Bearer <key>",
                                "authentication_error")
        if state.draining:
            return openai_error(503, "the server is shutting down; retry on another replica", "service_unavailable",
                                {"Retry-After": RETRY_AFTER_SECONDS})
        if not state.child_alive:
            return openai_error(503, "vLLM is not running", "service_unavailable",
                                {"Retry-After": RETRY_AFTER_SECONDS})
        return None

    async def _forward(self, scope: Scope, receive: Receive, send: Send, url: str, body: bytes,
                       headers: dict[str, str], route: str, started: float) -> None:
        state = self.state
        try:
            upstream = await state.session.request(scope["method"], url, data=body, headers=headers)  # type: ignore[union-attr]
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            metrics.UPSTREAM_ERRORS.inc()
            message = "the model is still loading" if not state.ready else "vLLM did not answer"
            await openai_error(503, message, "service_unavailable", {"Retry-After": RETRY_AFTER_SECONDS})(
                scope, receive, send)
            _record(route, 503, started, scope)
            return
        response_headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in upstream.headers.items()
                            if k.lower() not in NOT_FORWARDED]
        disconnected = asyncio.create_task(_wait_for_disconnect(receive, upstream))
        complete = False
        try:
            await send({"type": "http.response.start", "status": upstream.status, "headers": response_headers})
            async for chunk in upstream.content.iter_any():
                state.last_upstream_bytes = time.monotonic()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            complete = True
        except (TimeoutError, aiohttp.ClientError, ConnectionError) as exc:
            if not disconnected.done():
                log.warning("upstream stream broke on %s: %s", route, type(exc).__name__)
                metrics.UPSTREAM_ERRORS.inc()
        finally:
            disconnected.cancel()
            upstream.release()
            outcome = upstream.status if complete else ("client-gone" if disconnected.done() else "broken")
            _record(route, outcome, started, scope)


async def _wait_for_disconnect(receive: Receive, upstream: aiohttp.ClientResponse) -> None:
    """Close the upstream connection when the client goes away, so vLLM aborts the generation."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            upstream.close()
            return


class _BodyRefused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                raise _BodyRefused(400, "Content-Length is not a number") from None
    return None


async def _read_body(receive: Receive, declared: int | None) -> bytes | None:
    """The whole request body (at most MAX_BODY_BYTES), or None when the client went away before sending it."""
    too_large = f"the request body is larger than {MAX_BODY_BYTES} bytes (LAUNCHER_MAX_BODY_BYTES)"
    if declared is not None and declared > MAX_BODY_BYTES:
        raise _BodyRefused(413, too_large)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _BodyRefused(413, too_large)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _record(route: str, status: int | str, started: float, scope: Scope | None = None) -> None:
    seconds = time.monotonic() - started
    metrics.REQUESTS.labels(route, str(status)).inc()
    metrics.REQUEST_SECONDS.labels(route).observe(seconds)
    client = scope.get("client") if scope else None
    log.info("method=%s path=%s status=%s duration_ms=%.1f client=%s",
             scope.get("method", "-") if scope else "-", route, status, seconds * 1000,
             client[0] if client else "-")


def create_app(state: FrontDoorState, lifespan: Any = None) -> V1Proxy:
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

    return V1Proxy(app, state)


def _authorized(scope: Scope, api_key: str) -> bool:
    header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), "")
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
