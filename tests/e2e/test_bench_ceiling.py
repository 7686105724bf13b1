"""The ceiling benchmark's instruments: stamped events from the fake upstream, measured through the real front door.

Checks that the per-event delay the benchmark reports is measured (not absent or zero), that paced events travel
one per chunk, and that the verdict reads the right cells. Short and loopback only; the figures themselves come
from `bench/front_door.py`.
"""

from __future__ import annotations

import asyncio
import sys

from bench import front_door
from launcher.serve.vllm_process import free_port
from tests.harness.common import ROOT
from tests.harness.sse_load import run_load


def test_paced_events_are_stamped_and_forwarded_one_per_chunk() -> None:
    upstream_port, door_port = free_port(), free_port()
    upstream = front_door.start([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(upstream_port)], None)
    door = front_door.start(
        [
            sys.executable,
            str(ROOT / "bench" / "front_door_only.py"),
            "--upstream",
            f"http://127.0.0.1:{upstream_port}",
            "--port",
            str(door_port),
        ],
        None,
    )
    try:
        front_door.wait_port(upstream_port)
        front_door.wait_port(door_port)
        body = {"model": "fake", "prompt": "x", "max_tokens": 40, "pace_ms": 5}
        results = {
            target: asyncio.run(run_load("127.0.0.1", port, body, 4, duration=1.0, warmup=0.3, stagger=0.2))
            for target, port in (("direct", upstream_port), ("front door", door_port))
        }
    finally:
        front_door.stop(door)
        front_door.stop(upstream)
    for target, result in results.items():
        summary = result.summary()
        assert summary["errors"] == 0, (target, summary)
        assert summary["events_per_s"] > 300, (target, summary)  # 4 streams x 200 events/s offered
        assert 0 < summary["event_delay_p50_ms"] <= summary["event_delay_p99_ms"] < 1000, (target, summary)
        assert summary["events_per_read"] < 1.5, (target, summary)  # paced: one event per chunk, not batched
    rows = [
        {"concurrency": 64, "pace_ms": 2.5, "target": target, "front_door_cpu_share": 0.4, **result.summary()}
        for target, result in results.items()
    ]
    verdict = front_door.ceiling_verdict(rows)
    assert verdict["complete"]
    assert verdict["added_event_delay_p50_ms"] == round(
        rows[1]["event_delay_p50_ms"] - rows[0]["event_delay_p50_ms"], 3
    )
    assert not verdict["meets_targets"]  # about 800 events/s is far from the 20,000 target


def test_verdict_is_incomplete_without_the_paced_cell() -> None:
    rows = [{"concurrency": 64, "pace_ms": 0, "target": "front door", "events_per_s": 1e5, "errors": 0}]
    assert front_door.ceiling_verdict(rows) == {"complete": False}
