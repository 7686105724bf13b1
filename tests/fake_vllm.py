"""A stand-in for `python -m vllm.entrypoints.openai.api_server`, for faults real vLLM won't produce on demand.

The launcher runs it when LAUNCHER_VLLM_ENTRYPOINT=fake_vllm (with tests/ on PYTHONPATH). It takes vLLM's
arguments, serves /v1/models, /v1/completions (streaming or not), /health and /metrics on --port, and
misbehaves as FAKE_VLLM tells it, a comma-separated list:
  start-delay=S    listen only after S seconds (a model that loads slowly)
  exit-after=S     exit with code 1 S seconds after it started listening (an engine that dies)
  exit-code=N      the code for exit-after (default 1)
  token-ms=MS      milliseconds between streamed tokens (default 5)
FAKE_VLLM_LOG=PATH replays a real vLLM log on stdout before it listens (what the launcher reads of a start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

from aiohttp import web


def behaviour() -> dict[str, float]:
    items = [item.split("=", 1) for item in os.environ.get("FAKE_VLLM", "").split(",") if "=" in item]
    return {key: float(value) for key, value in items}


async def completions(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    tokens = int(body.get("max_tokens", 16))
    if tokens < 1:
        return web.json_response({"error": {"message": f"max_tokens must be at least 1, got {tokens}.",
                                            "type": "BadRequestError", "param": "max_tokens", "code": 400}},
                                 status=400)
    if not body.get("stream"):
        return web.json_response({"object": "text_completion", "model": body.get("model"),
                                  "choices": [{"index": 0, "text": " tok" * tokens, "finish_reason": "length"}],
                                  "usage": {"completion_tokens": tokens}})
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    pause = request.app["token_ms"] / 1000
    for index in range(tokens):
        await asyncio.sleep(pause)
        finish = "length" if index == tokens - 1 else None
        event = {"object": "text_completion", "choices": [{"index": 0, "text": " tok", "finish_reason": finish}]}
        await response.write(f"data: {json.dumps(event)}\n\n".encode())
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def models(_request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="")


async def metrics(_request: web.Request) -> web.Response:
    return web.Response(text="vllm:num_requests_running 0.0\n")


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
    app = web.Application()
    app["token_ms"] = settings.get("token-ms", 5)
    app.add_routes([web.post("/v1/completions", completions), web.get("/v1/models", models),
                    web.get("/health", health), web.get("/metrics", metrics)])
    runner = web.AppRunner(app)
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
