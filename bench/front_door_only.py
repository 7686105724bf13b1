"""Run the launcher's front door (the real app, no vLLM child) in front of any upstream URL.

For measuring the front door alone: python bench/front_door_only.py --upstream http://127.0.0.1:9001 --port 9002
It is marked ready at once; everything else (proxy, metrics, keys) is the code `launcher serve` runs.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import aiohttp
import uvicorn

from launcher.serve.front_door import FrontDoorState, create_app


def build(upstream: str, api_key: str | None = None):  # noqa: ANN201 - a FastAPI app
    state = FrontDoorState(upstream=upstream, api_key=api_key, ready=True, ready_reason="bench")

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        state.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
                                              timeout=aiohttp.ClientTimeout(total=None, sock_connect=5))
        yield
        await state.session.close()

    return create_app(state, lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    uvicorn.run(build(options.upstream), host="127.0.0.1", port=options.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
