"""What an attacker's connections cost the front door: idle floods, half-sent heads and header bombs.

For each front door (this checkout's, and with --baseline DIR also another checkout's, e.g. the commit before the
hardening: `git worktree add /tmp/base <commit>`), in one run, against the recording stand-in vLLM:
1. idle flood: N connections that never send a byte (N = 256 ... 4096), then 20 `/health` probes: answered
   share, p50 and max latency; the largest N at which every probe answered within 1 s;
2. half-sent heads: N connections that each send 4 KiB of a request head and stall, the same probes;
3. header bomb: one connection that sends a header without end (up to 64 MiB) and 200 connections that send
   30 KiB of head each: the launcher's RSS growth, and whether `/health` still answered.
Loopback only; the launcher (and its stand-in) run under `prlimit --nofile=LIMIT` to see what the fd limit does.
Writes bench/results/hostile.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "hostile.json"
MODEL = ROOT / "tests" / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct"
FLOODS = (256, 512, 1024, 2048, 4096)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_launcher(server: Path, port: int, nofile: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LAUNCHER_VLLM_ENTRYPOINT": "tests.harness.fake_vllm",
        "PYTHONPATH": f"{ROOT}:{server}",
        "VLLM_CPU_KVCACHE_SPACE": "2",
    }
    command = [
        "prlimit",
        f"--nofile={nofile}:{nofile}",
        sys.executable,
        "-m",
        "launcher.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--",
        "--model",
        str(MODEL),
        "--max-model-len",
        "2048",
        "--gpu-memory-utilization",
        "0.3",
    ]
    process = subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if probe(port, 1.0)[0] == 200:
            return process
        time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the launcher from {server} did not answer /health; see {log}")


def probe(port: int, timeout: float) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=timeout) as response:
            return response.status, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def probes(port: int, count: int = 20, timeout: float = 3.0) -> dict[str, Any]:
    results = [probe(port, timeout) for _ in range(count)]
    answered = [seconds for status, seconds in results if status == 200]
    return {
        "answered": len(answered) / count,
        "p50_ms": round(statistics.median(answered) * 1000, 1) if answered else None,
        "max_ms": round(max(answered) * 1000, 1) if answered else None,
    }


def open_connections(port: int, count: int, head: bytes) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=2)
            if head:
                sock.sendall(head)
            sockets.append(sock)
        except OSError:
            break
    return sockets


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def flood(port: int, head: bytes) -> list[dict[str, Any]]:
    rows = []
    for count in FLOODS:
        sockets = open_connections(port, count, head)
        time.sleep(0.5)
        rows.append({"connections": count, "opened": len(sockets), **probes(port)})
        for sock in sockets:
            sock.close()
        time.sleep(1.0)
    return rows


def header_bomb(port: int, pid: int) -> dict[str, Any]:
    before = rss_kib(pid)
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        try:
            while sent < 64 << 20:
                sock.sendall(b"b" * 65536)
                sent += 65536
        except OSError:
            pass
    endless = rss_kib(pid)
    heads = open_connections(port, 200, b"GET /v1/models HTTP/1.1\r\nX-Pad: " + b"p" * 30000)
    many = rss_kib(pid)
    health = probes(port, 5)
    for sock in heads:
        sock.close()
    return {
        "endless_header_bytes_sent": sent,
        "rss_growth_endless_mib": round((endless - before) / 1024, 1),
        "rss_growth_200_heads_mib": round((many - before) / 1024, 1),
        "health_during": health,
    }


def measure(server: Path, nofile: int, log_dir: Path, name: str) -> dict[str, Any]:
    port = free_port()
    process = start_launcher(server, port, nofile, log_dir / f"hostile-{name}.log")
    try:
        # The bomb first, on a fresh process: memory the floods grew and freed would hide its growth.
        result = {
            "header_bomb": header_bomb(port, process.pid),
            "idle_flood": flood(port, b""),
            "half_heads": flood(port, b"GET /v1/models HTTP/1.1\r\nX-Pad: " + b"p" * 4096),
        }
    finally:
        os.killpg(process.pid, 9)
        process.wait()
    for kind in ("idle_flood", "half_heads"):
        healthy = [row["connections"] for row in result[kind] if row["answered"] == 1 and (row["max_ms"] or 1e9) < 1000]
        result[f"{kind}_max_connections_with_health_under_1s"] = max(healthy, default=0)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", type=Path, help="another checkout's root, measured in the same run")
    parser.add_argument("--nofile", type=int, default=1024, help="the launcher's file descriptor limit")
    options = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the attacker needs more sockets than the launcher
    log_dir = ROOT / "bench" / "out"
    log_dir.mkdir(exist_ok=True)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "launcher_nofile": options.nofile,
        "load_average_before": os.getloadavg(),
        "servers": {},
    }
    servers = {"this checkout": ROOT / "server"}
    if options.baseline:
        servers["baseline"] = options.baseline / "server"
    for name, server in servers.items():
        print(f"measuring {name} ({server}) at nofile={options.nofile} ...", flush=True)
        report["servers"][name] = {
            "path": str(server),
            **measure(server, options.nofile, log_dir, name.replace(" ", "-")),
        }
    for name, result in report["servers"].items():
        print(f"\n{name}:")
        for kind in ("idle_flood", "half_heads"):
            print(
                f"  {kind}: "
                + "; ".join(
                    f"{row['connections']} conns -> {row['answered']:.0%} answered, max {row['max_ms']} ms"
                    for row in result[kind]
                )
            )
            print(
                f"    largest flood with every /health under 1 s: "
                f"{result[f'{kind}_max_connections_with_health_under_1s']}"
            )
        bomb = result["header_bomb"]
        print(
            f"  header bomb: {bomb['endless_header_bytes_sent'] / 2**20:.1f} MiB of one endless header accepted, "
            f"RSS +{bomb['rss_growth_endless_mib']} MiB; 200 x 30 KiB heads: RSS +{bomb['rss_growth_200_heads_mib']} "
            f"MiB; /health {bomb['health_during']['answered']:.0%} answered"
        )
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
