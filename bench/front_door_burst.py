"""What the front door adds when requests arrive together: its own account (launcher_added_latency_seconds) per
burst size.

Why: on the H200 (bench/results/h200-front-door.json, 2026-12-02 17:41) the front door's own p50 was 0.20 ms at
both concurrencies while its p99 was 4 ms at c64 and 20-78 ms at c256. Fixed 512 / 256 lengths with --ignore-eos
make a run's requests end together and the clients send the next ones together; one event loop takes a burst's
requests one after another, so the last of a burst of N waits for the N - 1 before it. This starts `launcher serve`
before the stand-in vLLM (tests/harness/fake_vllm.py), sends bursts of N simultaneous streamed generations
(--repeats per size, over connections opened beforehand) and records the front door's own p50 / p99 per stage for
each N. On one host the client, the front door and the stand-in share the CPUs, so the figures are larger than on a
machine where they do not; the growth with N is what this shows.

    .venv/bin/python -m bench.front_door_burst [--bursts 1 16 64 256] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.gpu import front_door, machine
from bench.gpu.ground_truth import HARNESS_ENV, free_port

RESULT = machine.RESULTS_DIR / "front-door-burst-cpu.json"


async def _generation(session: aiohttp.ClientSession, url: str, model: str) -> None:
    body = {"model": model, "prompt": "hello " * 50, "max_tokens": 8, "stream": True}
    async with session.post(f"{url}/v1/completions", json=body) as response:
        response.raise_for_status()
        async for _ in response.content.iter_any():
            pass


async def _bursts(port: int, model: str, size: int, repeats: int) -> dict[str, Any]:
    """`repeats` bursts of `size` generations at once: the front door's own account over them."""
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(_generation(session, url, model) for _ in range(size)))  # the connections, opened
        before = front_door.own_histograms(port)
        for _ in range(repeats):
            await asyncio.gather(*(_generation(session, url, model) for _ in range(size)))
        return front_door.own_latency(before, front_door.own_histograms(port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bursts", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULT)
    options = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="front-door-burst-"))
    extra = {**HARNESS_ENV, "LAUNCHER_VLLM_ENTRYPOINT": front_door.FAKE_ENTRYPOINT, "FAKE_VLLM": "token-ms=2"}
    env = machine.child_env(environ={**os.environ, **extra})
    model = front_door.model_dir(scratch)
    port = free_port()
    process = front_door.start_launcher(model, port, [], env, scratch / "launcher.log", dry_run=True)
    try:
        if not front_door.wait_ready(port, process, time.monotonic() + 120):
            print(f"front_door_burst: the launcher did not become ready (log: {scratch / 'launcher.log'})")
            return 1
        rows = []
        for size in options.bursts:
            own = asyncio.run(_bursts(port, str(model), size, options.repeats))
            rows.append({"burst": size, "repeats": options.repeats, **own})
            figures = {key: f"{value['p50_ms']:.2f} / {value['p99_ms']:.2f}" for key, value in own.items()}
            print(f"burst {size:>4}: p50 / p99 ms {figures}", flush=True)
    finally:
        front_door.stop_group(process.pid)
    body = {
        "what": "the front door's own account (launcher_added_latency_seconds, launcher_event_loop_lag_seconds) per "
        "burst of simultaneous streamed generations, before tests/harness/fake_vllm.py (token-ms=2)",
        "cpus": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows,
    }
    options.out.write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
