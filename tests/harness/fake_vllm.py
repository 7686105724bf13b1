"""A stand-in for `python -m vllm.entrypoints.openai.api_server`, for faults real vLLM won't produce on demand.

The launcher runs it when LAUNCHER_VLLM_ENTRYPOINT=tests.harness.fake_vllm (the repository on PYTHONPATH). It
takes vLLM's arguments, serves /v1/models, /v1/completions and /v1/chat/completions (streaming or not), /health,
/metrics and vLLM's control routes (/pause, /collective_rpc, /v1/load_lora_adapter, ... as vLLM 0.32 registers
them; any other path answers too), so a test can see what got past the front door. FAKE_VLLM_RECORD=PATH appends
one JSON line per request that reached it (method, raw path, headers) and one per generation a client abandoned.

FAKE_VLLM, a comma-separated list, sets the process's behaviour:
  start-delay=S    listen only after S seconds (a model that loads slowly)
  exit-after=S     exit with code 1 S seconds after it started listening (an engine that dies)
  exit-code=N      the code for exit-after (default 1)
  token-ms=MS      milliseconds between streamed tokens (default 5)
FAKE_VLLM_LOG=PATH replays a real vLLM log on stdout before it listens (what the launcher reads of a start).
The `x-fake` request header sets one request's behaviour (the front door forwards it):
  slow             a non-streaming completion that takes 60 s (abandoned-request tests)
  weird-header     the answer carries a header whose value is not latin-1
  hop              the answer carries hop-by-hop headers, one of them named in Connection
  redirect         307 to /pause
  cors             the answer carries vLLM-style CORS headers
  drop-next        the next request on the same connection is dropped unanswered (a stale pooled connection)
POST /fake/freeze and /fake/thaw (on the stand-in's own port) freeze and thaw generation: requests hang while
/v1/models still answers, as a frozen engine behind a live API server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from aiohttp import web

# vLLM 0.32's control and utility routes (entrypoints/serve/*, entrypoints/openai/*): none may be reachable
# through the front door. Each answers 200 here, so a test that reaches one sees it.
CONTROL_ROUTES = (
    "/pause",
    "/resume",
    "/is_paused",
    "/invocations",
    "/reset_prefix_cache",
    "/reset_mm_cache",
    "/sleep",
    "/wake_up",
    "/is_sleeping",
    "/collective_rpc",
    "/tokenize",
    "/detokenize",
    "/update_weights",
    "/start_profile",
    "/stop_profile",
    "/server_info",
    "/abort_requests",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
    "/scale_elastic_ep",
    "/version",
)
RECORD = os.environ.get("FAKE_VLLM_RECORD")
DROP_NEXT: set[int] = set()  # connections (by id of their transport) whose next request is dropped


def behaviour() -> dict[str, float]:
    items = [item.split("=", 1) for item in os.environ.get("FAKE_VLLM", "").split(",") if "=" in item]
    return {key: float(value) for key, value in items}


def record(entry: dict[str, Any]) -> None:
    if RECORD:
        with open(RECORD, "a") as handle:
            handle.write(json.dumps(entry) + "\n")


@web.middleware
async def recorder(request: web.Request, handler: Any) -> web.StreamResponse:
    connection = id(request.transport)
    if connection in DROP_NEXT:
        DROP_NEXT.discard(connection)
        record({"event": "dropped", "path": request.raw_path})
        assert request.transport is not None
        request.transport.abort()
        raise asyncio.CancelledError
    if not request.path.startswith("/fake/"):
        record(
            {
                "event": "request",
                "method": request.method,
                "path": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
            }
        )
    mode = request.headers.get("x-fake", "")
    if mode == "drop-next":
        DROP_NEXT.add(connection)
    if mode == "redirect":
        return web.Response(status=307, headers={"Location": "/pause"})
    response = await handler(request)
    if mode == "weird-header":
        response.headers["X-Model-Note"] = "名前 ✓"
    elif mode == "hop":
        response.headers.update(
            {
                "Connection": "keep-alive, X-Private",
                "X-Private": "hop-secret",
                "Keep-Alive": "timeout=99",
                "Proxy-Connection": "keep-alive",
            }
        )
    elif mode == "cors":
        response.headers.update({"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Credentials": "true"})
    return response


async def generation_allowed(request: web.Request) -> None:
    await request.app["thawed"].wait()


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    await generation_allowed(request)
    tokens = int(body.get("max_tokens", 16))
    if tokens < 1:
        return web.json_response(
            {
                "error": {
                    "message": f"max_tokens must be at least 1, got {tokens}.",
                    "type": "BadRequestError",
                    "param": "max_tokens",
                    "code": 400,
                }
            },
            status=400,
        )
    if not body.get("stream"):
        if request.headers.get("x-fake") == "slow":
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                record({"event": "cancelled", "path": request.raw_path})
                raise
        request.app["counters"]["generated"] += tokens
        return web.json_response(
            {
                "object": "text_completion",
                "model": body.get("model"),
                "choices": [{"index": 0, "text": " tok" * tokens, "finish_reason": "length"}],
                "usage": {"completion_tokens": tokens},
            }
        )
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    pause = request.app["token_ms"] / 1000
    for index in range(tokens):
        await asyncio.sleep(pause)
        finish = "length" if index == tokens - 1 else None
        event = {"object": "text_completion", "choices": [{"index": 0, "text": " tok", "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
        request.app["counters"]["generated"] += 1
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def chat(request: web.Request) -> web.Response:
    await request.json()
    await generation_allowed(request)
    return web.json_response(
        {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        }
    )


async def models(_request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="")


async def metrics(request: web.Request) -> web.Response:
    """vLLM's gauge and its generation-token counter (what bench/gpu/front_door.py counts on the server side)."""
    generated = request.app["counters"]["generated"]
    return web.Response(
        text=f'vllm:num_requests_running 0.0\nvllm:generation_tokens_total{{model_name="fake"}} {generated:.1f}\n'
    )


async def reached(request: web.Request) -> web.Response:
    """Any other route, the control routes included: answering 200 shows that the request got here."""
    return web.json_response({"reached": request.raw_path})


async def freeze(request: web.Request) -> web.Response:
    request.app["thawed"].clear()
    return web.json_response({"frozen": True})


async def thaw(request: web.Request) -> web.Response:
    request.app["thawed"].set()
    return web.json_response({"frozen": False})


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    _, unknown = parser.parse_known_args()
    print(f"fake vLLM: arguments {' '.join(unknown)}", flush=True)
    options = parser.parse_known_args()[0]
    settings = behaviour()
    await asyncio.sleep(settings.get("start-delay", 0))
    if os.environ.get("FAKE_VLLM_LOG"):
        with open(os.environ["FAKE_VLLM_LOG"]) as replay:
            for line in replay:
                print(line.rstrip("\n"), flush=True)
    app = web.Application(middlewares=[recorder])
    app["token_ms"] = settings.get("token-ms", 5)
    app["counters"] = {"generated": 0}
    app["thawed"] = asyncio.Event()
    app["thawed"].set()
    app.add_routes(
        [
            web.post("/v1/completions", completions),
            web.post("/v1/chat/completions", chat),
            web.get("/v1/models", models),
            web.get("/health", health),
            web.get("/metrics", metrics),
            web.post("/fake/freeze", freeze),
            web.post("/fake/thaw", thaw),
        ]
    )
    app.add_routes([web.route("*", route, reached) for route in CONTROL_ROUTES])
    app.add_routes([web.route("*", "/{tail:.*}", reached)])
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    await web.TCPSite(runner, options.host, options.port).start()
    print(f"fake vLLM: listening on {options.port}", flush=True)
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.1)
        if "exit-after" in settings and time.monotonic() - started >= settings["exit-after"]:
            print("fake vLLM: engine died (exit-after)", flush=True)
            sys.exit(int(settings.get("exit-code", 1)))


if __name__ == "__main__":
    asyncio.run(main())
