"""Front door vs direct, side by side in one run.

1. Real vLLM (CPU, SmolLM2): `launcher serve` starts it; the same load (64 streaming requests,
   concurrency 16) goes straight to vLLM's loopback port and through the front door, alternating
   (ABBA). Prints throughput ratio and added p50/p99 latency and time to first token.
2. Ceiling: a fake upstream that streams SSE (one event per chunk); the front door alone, pinned to one
   core, against the same client straight to the fake upstream. Burst cells (the upstream writes as fast
   as it can) give the throughput ceiling; paced cells (64 streams x one event every 2.5 ms = 25,600
   events/s offered, like 3x an H100's FP8 output rate) give the latency the front door adds to each
   event: the upstream stamps every event with the monotonic clock and the client subtracts it on arrival,
   so added = (delay through the front door) - (delay direct), at p50 and p99.

Writes bench/results/front-door-cpu.json. Loopback only; every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from launcher.serve.vllm_process import free_port  # noqa: E402
from tests.harness.launcher_process import LauncherProcess  # noqa: E402
from tests.harness.sse_load import run_load  # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"
RESULTS = ROOT / "bench" / "results" / "front-door-cpu.json"
MAX_TOKENS = 256  # events per ceiling request


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(command: list[str], core: int | None) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", str(core)] if core is not None and os.cpu_count() and os.cpu_count() > 1 else []
    return subprocess.Popen([*prefix, *command], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT / "server")})


def wait_port(port: int, timeout: float = 30) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def ceiling(duration: float, cells: list[tuple[int, float]]) -> dict:
    upstream_port, door_port = free_port(), free_port()
    upstream = start([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(upstream_port)], core=0)
    door = start([sys.executable, str(ROOT / "bench" / "front_door_only.py"), "--upstream",
                  f"http://127.0.0.1:{upstream_port}", "--port", str(door_port)], core=1)
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})  # the client shares core 0 with the upstream, as in the research runs
    rows = []
    try:
        wait_port(upstream_port)
        wait_port(door_port)
        for concurrency, pace_ms in cells:
            body = {"model": "fake", "prompt": "x", "max_tokens": MAX_TOKENS, "pace_ms": pace_ms}
            # Paced streams are staggered over one request's duration, as requests reach a real server.
            stagger = MAX_TOKENS * pace_ms / 1000
            for target, port in (("direct", upstream_port), ("front door", door_port)):
                before = cpu_seconds(door.pid)
                result = asyncio.run(run_load("127.0.0.1", port, body, concurrency, duration=duration,
                                              warmup=1.0 + stagger, stagger=stagger))
                door_cpu = (cpu_seconds(door.pid) - before) / (duration + 1.0 + stagger)
                rows.append({"concurrency": concurrency, "pace_ms": pace_ms, "target": target, **result.summary(),
                             "front_door_cpu_share": round(door_cpu, 3) if target != "direct" else None})
    finally:
        stop(door)
        stop(upstream)
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    return {"rows": rows, "duration_s": duration, "max_tokens": MAX_TOKENS, "verdict": ceiling_verdict(rows)}


# Issue #8's targets for the front door on one core.
TARGET_EVENTS_PER_S = 20_000
TARGET_ADDED_P50_MS = 2.0
TARGET_ADDED_P99_MS = 5.0


def ceiling_verdict(rows: list[dict]) -> dict:
    """Events/s the front door carried and the per-event delay it added, at 64 paced streams."""
    cell = {row["target"]: row for row in rows if row["concurrency"] == 64 and row["pace_ms"] > 0}
    burst = max((row["events_per_s"] for row in rows if row["target"] == "front door" and row["pace_ms"] == 0),
                default=0.0)
    door, direct = cell.get("front door", {}), cell.get("direct", {})
    if "event_delay_p50_ms" not in door or "event_delay_p50_ms" not in direct:
        return {"complete": False}
    added_p50 = round(door["event_delay_p50_ms"] - direct["event_delay_p50_ms"], 3)
    added_p99 = round(door["event_delay_p99_ms"] - direct["event_delay_p99_ms"], 3)
    return {
        "complete": True,
        "paced_events_per_s": door["events_per_s"],
        "paced_events_per_read": door.get("events_per_read"),
        "paced_front_door_cpu_share": door["front_door_cpu_share"],
        "burst_events_per_s": burst,
        "added_event_delay_p50_ms": added_p50,
        "added_event_delay_p99_ms": added_p99,
        "errors": sum(row["errors"] for row in rows),
        "meets_targets": (door["events_per_s"] >= TARGET_EVENTS_PER_S and added_p50 <= TARGET_ADDED_P50_MS
                          and added_p99 <= TARGET_ADDED_P99_MS),
    }


def real_vllm(requests: int, concurrency: int, max_tokens: int, log_dir: Path) -> dict:
    launcher = LauncherProcess(MODEL, log_dir / "bench-launcher.log").start()
    try:
        launcher.wait_ready()
        vllm_port = launcher.status()["vllm_port"]
        body = {"model": "smollm2", "prompt": "Once upon a time", "max_tokens": max_tokens, "ignore_eos": True}
        asyncio.run(run_load("127.0.0.1", vllm_port, body, concurrency, total_requests=concurrency))  # warm up
        rows = []
        for target in ("direct", "front door", "front door", "direct"):
            port = vllm_port if target == "direct" else launcher.port
            result = asyncio.run(run_load("127.0.0.1", port, body, concurrency, total_requests=requests))
            rows.append({"target": target, **result.summary()})
        return {"rows": rows, "requests": requests, "concurrency": concurrency, "max_tokens": max_tokens}
    finally:
        launcher.stop()


def mean_of(rows: list[dict], target: str, key: str) -> float:
    values = [row[key] for row in rows if row["target"] == target]
    return sum(values) / len(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-vllm", action="store_true")
    parser.add_argument("--skip-ceiling", action="store_true")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per ceiling cell")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=64)
    options = parser.parse_args()
    # Parts skipped this run keep their last recorded figures; the load average says how quiet the machine was.
    report: dict = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    report.update({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(), "cpus": os.cpu_count(),
                   "load_average_before": os.getloadavg()})
    if not options.skip_vllm:
        if not (MODEL / "config.json").is_file():
            sys.exit("error: models/SmolLM2-135M-Instruct is missing; run `make model` first")
        log_dir = ROOT / "bench" / "out"
        log_dir.mkdir(exist_ok=True)
        vllm = real_vllm(options.requests, options.concurrency, options.max_tokens, log_dir)
        direct_tps = mean_of(vllm["rows"], "direct", "events_per_s")
        door_tps = mean_of(vllm["rows"], "front door", "events_per_s")
        vllm["throughput_ratio"] = round(door_tps / direct_tps, 3)
        for key in ("latency_p50_ms", "latency_p99_ms", "ttfe_p50_ms", "ttfe_p99_ms"):
            vllm[f"added_{key}"] = round(mean_of(vllm["rows"], "front door", key) - mean_of(vllm["rows"], "direct",
                                                                                               key), 2)
        report["real_vllm_cpu"] = vllm
        print(f"\nreal vLLM (CPU), {options.requests} streaming requests x {options.max_tokens} tokens, "
              f"concurrency {options.concurrency}")
        print(f"{'target':<12}{'tok/s':>10}{'req/s':>8}{'TTFT p50':>10}{'TTFT p99':>10}{'lat p50':>10}{'lat p99':>10}")
        for row in vllm["rows"]:
            print(f"{row['target']:<12}{row['events_per_s']:>10}{row['requests_per_s']:>8}{row['ttfe_p50_ms']:>10}"
                  f"{row['ttfe_p99_ms']:>10}{row['latency_p50_ms']:>10}{row['latency_p99_ms']:>10}")
        print(f"throughput ratio front door / direct: {vllm['throughput_ratio']} (target >= 0.97); added p50 "
              f"latency {vllm['added_latency_p50_ms']} ms, p99 {vllm['added_latency_p99_ms']} ms, TTFT p50 "
              f"{vllm['added_ttfe_p50_ms']} ms (target <= 2 ms)")
    if not options.skip_ceiling:
        # Burst: the upstream writes as fast as it can (throughput ceiling). Paced: 2.5 ms between a stream's
        # events, 64 streams = ~25,600 events/s offered, one event per chunk as vLLM sends tokens (added latency).
        result = ceiling(options.duration, [(64, 0), (256, 0), (64, 2.5), (256, 10)])
        report["ceiling_fake_upstream"] = result
        print(f"\nceiling: fake upstream, one event per chunk, {options.duration:.0f} s per cell, "
              "front door on one core")
        print(f"{'C':>4}{'pace ms':>8} {'target':<12}{'events/s':>12}{'errors':>7}{'TTFE p50':>10}{'TTFE p99':>10}"
              f"{'delay p50':>10}{'delay p99':>10}{'ev/read':>8}{'door CPU':>10}")
        for row in result["rows"]:
            cpu = "" if row["front_door_cpu_share"] is None else f"{row['front_door_cpu_share']:.0%}"
            print(f"{row['concurrency']:>4}{row['pace_ms']:>8} {row['target']:<12}{row['events_per_s']:>12}"
                  f"{row['errors']:>7}{row['ttfe_p50_ms']:>10}{row['ttfe_p99_ms']:>10}"
                  f"{row.get('event_delay_p50_ms', ''):>10}{row.get('event_delay_p99_ms', ''):>10}"
                  f"{row.get('events_per_read', ''):>8}{cpu:>10}")
        verdict = result["verdict"]
        if verdict["complete"]:
            print(f"front door at 64 paced streams: {verdict['paced_events_per_s']:,.0f} events/s "
                  f"(target >= {TARGET_EVENTS_PER_S:,}), added per-event delay p50 "
                  f"{verdict['added_event_delay_p50_ms']} ms (target <= {TARGET_ADDED_P50_MS}), p99 "
                  f"{verdict['added_event_delay_p99_ms']} ms (target <= {TARGET_ADDED_P99_MS}); burst ceiling "
                  f"{verdict['burst_events_per_s']:,.0f} events/s; errors {verdict['errors']}; "
                  f"{'meets' if verdict['meets_targets'] else 'MISSES'} the targets")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
