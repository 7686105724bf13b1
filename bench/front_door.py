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

3. With --baseline DIR (another checkout, e.g. `git worktree add /tmp/base <commit>`): the same ceiling cells
   through this checkout's front door and the baseline's, interleaved A-B-B-A for --rounds rounds, so a change's
   cost (the hardening's limits, say) shows as per-round ratios with their spread, not as one run against another.

Writes bench/results/front-door-cpu.json. Loopback only; every process it starts is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


def start(command: list[str], core: int | None, root: Path = ROOT) -> subprocess.Popen[bytes]:
    prefix = ["taskset", "-c", str(core)] if core is not None and os.cpu_count() and os.cpu_count() > 1 else []
    return subprocess.Popen(
        [*prefix, *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(root / "server")},
    )


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


def start_door(root: Path, upstream_port: int) -> tuple[subprocess.Popen[bytes], int]:
    """A checkout's front door alone (bench/front_door_only.py), pinned to core 1."""
    port = free_port()
    door = start(
        [
            sys.executable,
            str(root / "bench" / "front_door_only.py"),
            "--upstream",
            f"http://127.0.0.1:{upstream_port}",
            "--port",
            str(port),
        ],
        core=1,
        root=root,
    )
    return door, port


def spread(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "median": round(
            ordered[len(ordered) // 2]
            if len(ordered) % 2
            else (ordered[len(ordered) // 2 - 1] + ordered[len(ordered) // 2]) / 2,
            4,
        ),
        "min": round(ordered[0], 4),
        "max": round(ordered[-1], 4),
        "rounds": [round(v, 4) for v in values],
    }


def ceiling(duration: float, cells: list[tuple[int, float]], baseline: Path | None = None, rounds: int = 2) -> dict:
    upstream_port = free_port()
    upstream = start([sys.executable, str(ROOT / "bench" / "fake_upstream.py"), str(upstream_port)], core=0)
    door, door_port = start_door(ROOT, upstream_port)
    base, base_port = start_door(baseline, upstream_port) if baseline else (None, 0)
    if os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})  # the client shares core 0 with the upstream, as in the research runs
    rows, versus = [], []
    try:
        wait_port(upstream_port)
        wait_port(door_port)
        if base is not None:
            wait_port(base_port)
        for concurrency, pace_ms in cells:
            body = {"model": "fake", "prompt": "x", "max_tokens": MAX_TOKENS, "pace_ms": pace_ms}
            # Paced streams are staggered over one request's duration, as requests reach a real server.
            stagger = MAX_TOKENS * pace_ms / 1000

            run = functools.partial(
                measure, body=body, concurrency=concurrency, pace_ms=pace_ms, duration=duration, stagger=stagger
            )
            rows.append(run("direct", upstream_port, None))
            rows.append(run("front door", door_port, door.pid))
            if base is not None:
                versus.append(abba(run, door, door_port, base, base_port, rounds, concurrency, pace_ms))
    finally:
        for process in (door, base, upstream):
            if process is not None:
                stop(process)
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    report = {"rows": rows, "duration_s": duration, "max_tokens": MAX_TOKENS, "verdict": ceiling_verdict(rows)}
    if base is not None:
        report["versus_baseline"] = {
            "baseline": str(baseline),
            "order": "A-B-B-A per round (A = this checkout)",
            "cells": versus,
        }
    return report


def measure(
    target: str,
    port: int,
    pid: int | None,
    *,
    body: dict,
    concurrency: int,
    pace_ms: float,
    duration: float,
    stagger: float,
) -> dict:
    """One load run against one port, with the CPU share of the process `pid` (a front door) meanwhile."""
    before = cpu_seconds(pid) if pid else 0.0
    result = asyncio.run(
        run_load("127.0.0.1", port, body, concurrency, duration=duration, warmup=1.0 + stagger, stagger=stagger)
    )
    cpu = (cpu_seconds(pid) - before) / (duration + 1.0 + stagger) if pid else None
    return {
        "concurrency": concurrency,
        "pace_ms": pace_ms,
        "target": target,
        **result.summary(),
        "front_door_cpu_share": round(cpu, 3) if cpu is not None else None,
    }


def abba(
    run: Any,
    door: subprocess.Popen[bytes],
    door_port: int,
    base: subprocess.Popen[bytes],
    base_port: int,
    rounds: int,
    concurrency: int,
    pace_ms: float,
) -> dict:
    """This checkout's front door (A) against the baseline's (B), A-B-B-A per round: ratios A/B per round."""
    events, cpu, delay_p50, delay_p99, errors = [], [], [], [], 0
    for _ in range(rounds):
        a1 = run("this checkout", door_port, door.pid)
        b1 = run("baseline", base_port, base.pid)
        b2 = run("baseline", base_port, base.pid)
        a2 = run("this checkout", door_port, door.pid)
        pair_a, pair_b = (a1, a2), (b1, b2)
        errors += sum(row["errors"] for row in (*pair_a, *pair_b))

        def mean(pair: tuple[dict, dict], key: str) -> float:
            return sum(row.get(key) or 0.0 for row in pair) / 2

        events.append(mean(pair_a, "events_per_s") / max(mean(pair_b, "events_per_s"), 1e-9))
        cpu.append(mean(pair_a, "front_door_cpu_share") / max(mean(pair_b, "front_door_cpu_share"), 1e-9))
        if "event_delay_p50_ms" in a1:
            delay_p50.append(mean(pair_a, "event_delay_p50_ms") - mean(pair_b, "event_delay_p50_ms"))
            delay_p99.append(mean(pair_a, "event_delay_p99_ms") - mean(pair_b, "event_delay_p99_ms"))
    cell = {
        "concurrency": concurrency,
        "pace_ms": pace_ms,
        "events_per_s_ratio": spread(events),
        "cpu_share_ratio": spread(cpu),
        "errors": errors,
    }
    if delay_p50:
        cell["event_delay_p50_ms_difference"] = spread(delay_p50)
        cell["event_delay_p99_ms_difference"] = spread(delay_p99)
    return cell


CELLS = [(64, 0.0), (256, 0.0), (64, 2.5), (256, 10.0)]


def _cells(text: str) -> list[tuple[int, float]]:
    try:
        return [(int(streams), float(pace)) for streams, pace in (cell.split(":") for cell in text.split(","))]
    except ValueError:
        raise argparse.ArgumentTypeError(f"cells are STREAMS:PACE_MS separated by commas, not {text!r}") from None


# Issue #8's targets for the front door on one core.
TARGET_EVENTS_PER_S = 20_000
TARGET_ADDED_P50_MS = 2.0
TARGET_ADDED_P99_MS = 5.0


def ceiling_verdict(rows: list[dict]) -> dict:
    """Events/s the front door carried and the per-event delay it added, at 64 paced streams."""
    cell = {row["target"]: row for row in rows if row["concurrency"] == 64 and row["pace_ms"] > 0}
    burst = max(
        (row["events_per_s"] for row in rows if row["target"] == "front door" and row["pace_ms"] == 0), default=0.0
    )
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
        "meets_targets": (
            door["events_per_s"] >= TARGET_EVENTS_PER_S
            and added_p50 <= TARGET_ADDED_P50_MS
            and added_p99 <= TARGET_ADDED_P99_MS
        ),
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
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout's root: its front door against this one's, A-B-B-A in each ceiling cell",
    )
    parser.add_argument("--rounds", type=int, default=3, help="A-B-B-A rounds per cell with --baseline")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"results JSON (default {RESULTS.name})")
    parser.add_argument(
        "--cells",
        type=_cells,
        default=CELLS,
        help="ceiling cells as STREAMS:PACE_MS,... (default 64:0,256:0,64:2.5,256:10; pace 0 = burst)",
    )
    options = parser.parse_args()
    # Parts skipped this run keep their last recorded figures; the load average says how quiet the machine was.
    report: dict = json.loads(options.output.read_text()) if options.output.is_file() else {}
    report.update(
        {
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "host": platform.node(),
            "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg(),
        }
    )
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
            vllm[f"added_{key}"] = round(
                mean_of(vllm["rows"], "front door", key) - mean_of(vllm["rows"], "direct", key), 2
            )
        report["real_vllm_cpu"] = vllm
        print(
            f"\nreal vLLM (CPU), {options.requests} streaming requests x {options.max_tokens} tokens, "
            f"concurrency {options.concurrency}"
        )
        print(f"{'target':<12}{'tok/s':>10}{'req/s':>8}{'TTFT p50':>10}{'TTFT p99':>10}{'lat p50':>10}{'lat p99':>10}")
        for row in vllm["rows"]:
            print(
                f"{row['target']:<12}{row['events_per_s']:>10}{row['requests_per_s']:>8}{row['ttfe_p50_ms']:>10}"
                f"{row['ttfe_p99_ms']:>10}{row['latency_p50_ms']:>10}{row['latency_p99_ms']:>10}"
            )
        print(
            f"throughput ratio front door / direct: {vllm['throughput_ratio']} (target >= 0.97); added p50 "
            f"latency {vllm['added_latency_p50_ms']} ms, p99 {vllm['added_latency_p99_ms']} ms, TTFT p50 "
            f"{vllm['added_ttfe_p50_ms']} ms (target <= 2 ms)"
        )
    if not options.skip_ceiling:
        # Burst: the upstream writes as fast as it can (throughput ceiling). Paced: 2.5 ms between a stream's
        # events, 64 streams = ~25,600 events/s offered, one event per chunk as vLLM sends tokens (added latency).
        result = ceiling(options.duration, options.cells, options.baseline, options.rounds)
        report["ceiling_fake_upstream"] = result
        print(
            f"\nceiling: fake upstream, one event per chunk, {options.duration:.0f} s per cell, front door on one core"
        )
        print(
            f"{'C':>4}{'pace ms':>8} {'target':<12}{'events/s':>12}{'errors':>7}{'TTFE p50':>10}{'TTFE p99':>10}"
            f"{'delay p50':>10}{'delay p99':>10}{'ev/read':>8}{'door CPU':>10}"
        )
        for row in result["rows"]:
            cpu = "" if row["front_door_cpu_share"] is None else f"{row['front_door_cpu_share']:.0%}"
            print(
                f"{row['concurrency']:>4}{row['pace_ms']:>8} {row['target']:<12}{row['events_per_s']:>12}"
                f"{row['errors']:>7}{row['ttfe_p50_ms']:>10}{row['ttfe_p99_ms']:>10}"
                f"{row.get('event_delay_p50_ms', ''):>10}{row.get('event_delay_p99_ms', ''):>10}"
                f"{row.get('events_per_read', ''):>8}{cpu:>10}"
            )
        verdict = result["verdict"]
        if verdict["complete"]:
            print(
                f"front door at 64 paced streams: {verdict['paced_events_per_s']:,.0f} events/s "
                f"(target >= {TARGET_EVENTS_PER_S:,}), added per-event delay p50 "
                f"{verdict['added_event_delay_p50_ms']} ms (target <= {TARGET_ADDED_P50_MS}), p99 "
                f"{verdict['added_event_delay_p99_ms']} ms (target <= {TARGET_ADDED_P99_MS}); burst ceiling "
                f"{verdict['burst_events_per_s']:,.0f} events/s; errors {verdict['errors']}; "
                f"{'meets' if verdict['meets_targets'] else 'MISSES'} the targets"
            )
        for cell in result.get("versus_baseline", {}).get("cells", []):
            ratio, cpu = cell["events_per_s_ratio"], cell["cpu_share_ratio"]
            line = (
                f"vs baseline, {cell['concurrency']} streams, pace {cell['pace_ms']} ms: events/s ratio "
                f"{ratio['median']} ({ratio['min']}-{ratio['max']}), CPU ratio {cpu['median']} "
                f"({cpu['min']}-{cpu['max']})"
            )
            if "event_delay_p50_ms_difference" in cell:
                p50 = cell["event_delay_p50_ms_difference"]
                line += f", per-event delay p50 difference {p50['median']} ms ({p50['min']} to {p50['max']})"
            print(line + f", errors {cell['errors']}")
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
