"""Run the launcher's front door (the real app, no vLLM child) in front of any upstream URL.

For measuring the front door alone: python bench/front_door_only.py --upstream http://127.0.0.1:9001 --port 9002
It is marked ready at once; everything else (proxy, metrics, keys, limits, the bounded HTTP protocol and the
upstream pool) is the code `launcher serve` runs.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import uvicorn

from launcher.serve.front_door import FrontDoorState, create_app
from launcher.serve.limits import FrontDoorLimits
from launcher.serve.supervisor import server_config, upstream_session


def build(upstream: str, limits: FrontDoorLimits, api_key: str | None = None):  # noqa: ANN201 - an ASGI app
    state = FrontDoorState(
        upstream=upstream, api_keys=(api_key,) if api_key else (), limits=limits, ready=True, ready_reason="bench"
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        state.session = upstream_session(limits)
        yield
        await state.session.close()

    return create_app(state, lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    limits = FrontDoorLimits.from_env()
    uvicorn.Server(server_config(build(options.upstream, limits), "127.0.0.1", options.port, limits)).run()


if __name__ == "__main__":
    main()
