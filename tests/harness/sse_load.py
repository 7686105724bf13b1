"""A bounded asyncio load client for OpenAI SSE endpoints, cheap per event (raw protocol, no HTTP library).

Holds C keep-alive connections, each sending streaming /v1/completions back to back, for a fixed time
or a fixed number of requests. Counts SSE events (`\\n\\n`, less the closing [DONE]), and per request
the time to the first event and the total latency. When the upstream stamps its events (`"t"`: CLOCK_MONOTONIC
nanoseconds at write, as bench/fake_upstream.py does when paced), also each event's delay from write to arrival,
and how many events arrive per read (1.0 = one event per chunk). Loopback only.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    events: int = 0
    seconds: float = 0.0
    ttfe: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    event_delay: list[float] = field(default_factory=list)
    reads: int = 0

    def summary(self) -> dict[str, float]:
        def pct(values: list[float], q: float) -> float:
            if not values:
                return float("nan")
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        delays = {}
        if self.event_delay:
            delays = {
                "event_delay_p50_ms": round(pct(self.event_delay, 0.5), 3),
                "event_delay_p99_ms": round(pct(self.event_delay, 0.99), 3),
                "events_per_read": round(self.events / self.reads, 2) if self.reads else float("nan"),
            }
        return {
            "requests": self.requests,
            "errors": self.errors,
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_s": round(self.events / self.seconds, 1) if self.seconds else 0.0,
            "requests_per_s": round(self.requests / self.seconds, 2) if self.seconds else 0.0,
            "ttfe_p50_ms": round(pct(self.ttfe, 0.5), 2),
            "ttfe_p99_ms": round(pct(self.ttfe, 0.99), 2),
            "latency_p50_ms": round(pct(self.latency, 0.5), 2),
            "latency_p99_ms": round(pct(self.latency, 0.99), 2),
            "latency_mean_ms": round(statistics.fmean(self.latency) * 1000, 2) if self.latency else float("nan"),
            **delays,
        }


@dataclass
class _Window:
    """Events are counted as they arrive inside [start, stop), whichever request they belong to."""

    start: float
    stop: float
    events: int = 0
    reads: int = 0
    delays: list[float] = field(default_factory=list)


_STAMP = re.compile(rb'"t":(\d+)')


class _Stream(asyncio.Protocol):
    """One keep-alive connection; a chunked SSE response ends with `data: [DONE]` then the 0-length chunk."""

    def __init__(self, window: _Window) -> None:
        self.window = window
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.done: asyncio.Future[None] | None = None
        self.first: float = 0.0
        self.events = 0
        self.status = 0
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.first and b"data:" in data:
            self.first = now
        if not self.status and data.startswith(b"HTTP/1.1 "):
            self.status = int(data[9:12])
        count = data.count(b"\n\n")
        self.events += count
        if self.window.start <= now < self.window.stop:
            self.window.events += count
            self.window.reads += 1
            if b'"t":' in data:
                arrived = time.monotonic_ns()
                self.window.delays.extend((arrived - int(stamp)) / 1e9 for stamp in _STAMP.findall(data))
        self.buffer += data
        if self.buffer.endswith(b"0\r\n\r\n") or (self.status and self.status != 200 and b"\r\n\r\n" in data):
            self.buffer.clear()
            if self.done and not self.done.done():
                self.done.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.done and not self.done.done():
            self.done.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)


def _request(host: str, port: int, path: str, body: dict, api_key: str | None) -> bytes:
    payload = json.dumps(body).encode()
    auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
    return (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload


async def run_load(
    host: str,
    port: int,
    body: dict,
    concurrency: int,
    *,
    total_requests: int | None = None,
    duration: float | None = None,
    warmup: float = 0.0,
    path: str = "/v1/completions",
    api_key: str | None = None,
    timeout: float = 120.0,
    stagger: float = 0.0,
) -> LoadResult:
    """Either `total_requests` spread over `concurrency` connections, or `duration` seconds after `warmup`.

    `stagger`: connection i starts i/concurrency of that many seconds late. Streams of equal length that start
    together stay in lock-step and send their next requests in waves; staggering them over one request's duration
    gives the steady arrival a real server sees (keep `warmup` longer than `stagger`).
    """
    loop = asyncio.get_running_loop()
    raw = _request(host, port, path, {**body, "stream": True}, api_key)
    result = LoadResult()
    issued = 0
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration if duration else None
    window = _Window(measure_from, stop_at or float("inf"))

    async def worker(index: int) -> None:
        nonlocal issued
        if stagger:
            await asyncio.sleep(stagger * index / concurrency)
        transport, proto = await loop.create_connection(lambda: _Stream(window), host, port)
        try:
            while True:
                if total_requests is not None:
                    if issued >= total_requests:
                        return
                    issued += 1
                elif time.perf_counter() >= stop_at:  # type: ignore[operator]
                    return
                proto.done, proto.first, proto.events, proto.status = loop.create_future(), 0.0, 0, 0
                sent = time.perf_counter()
                transport.write(raw)
                try:
                    await asyncio.wait_for(proto.done, timeout)
                except (TimeoutError, ConnectionError):
                    result.errors += 1
                    return
                finished = time.perf_counter()
                if proto.status != 200:
                    result.errors += 1
                    continue
                counted = total_requests is not None or (sent >= measure_from and finished <= stop_at)  # type: ignore[operator]
                if total_requests is not None:
                    result.events += max(proto.events - 1, 0)  # the closing `data: [DONE]` is no token
                if counted:
                    result.requests += 1
                    result.ttfe.append(proto.first - sent)
                    result.latency.append(finished - sent)
        finally:
            transport.close()

    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    if total_requests is not None:
        result.seconds = time.perf_counter() - start
    else:  # every event that arrived inside the window ([DONE] included: one per request, under 1% here)
        result.seconds, result.events = float(duration or 0), window.events
    result.reads, result.event_delay = window.reads, window.delays
    return result
