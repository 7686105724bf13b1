"""Time-to-verdict of `launcher check` against raw vLLM's time-to-failure, on the same refused combinations.

For each case, in one run on this machine:
  launcher check  the console script in a new process, as a user runs it: wall time from start to exit
                  (median of --check-runs runs; exit code 2 and the expected rule id are checked);
  raw vLLM        the same serve arguments to `python -m vllm.entrypoints.openai.api_server`: wall time
                  from start to its non-zero exit, or, for a model that loads and then crashes, to the
                  failed answer of the first request.
Cases run one after the other, so each vLLM has the CPU to itself. Every process has a time limit and
is killed with its process group. Results: bench/results/verdict-vs-vllm-cpu.json (--output).

    .venv/bin/python -m bench.verdict_vs_vllm [--cases fp8,head16,default-memory] [--check-runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from launcher.check.platforms import read_cpu_flags, read_numa_node0_gib  # noqa: E402
from launcher.check.versions import installed_vllm_version  # noqa: E402
from tests.harness.raw_vllm import FAILS_WITHIN, READY_WITHIN, SMOLLM2, RawVllm, build_head16_checkpoint, cpu_cases  # noqa: E402

CHECK_WITHIN = 60.0
TARGET_RATIO = 100.0
CASES = ("fp8", "head16", "default-memory")  # the refused ones of raw_vllm.cpu_cases


def launcher_script() -> str:
    script = Path(sys.executable).parent / "launcher"
    return str(script) if script.is_file() else "launcher"


def time_check(argv: list[str], rule: str, runs: int) -> dict[str, Any]:
    seconds, refused = [], True
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLLM_")}  # as raw vLLM gets it
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [launcher_script(), "check", "--", *argv], capture_output=True, text=True, timeout=CHECK_WITHIN, env=env
        )
        seconds.append(round(time.perf_counter() - start, 4))
        refused = refused and done.returncode == 2 and f"[{rule}]" in done.stdout
    return {
        "exit_code": done.returncode,
        "refused_by_rule": refused,
        "first_line": done.stdout.splitlines()[0],
        "seconds": seconds,
        "median_s": statistics.median(seconds),
        "first_s": seconds[0],
    }


def short(arg: str, scratch: str) -> str:
    return arg.replace(str(ROOT) + "/", "").replace(scratch, "$TMPDIR")


def time_vllm(argv: list[str], fails: str) -> dict[str, Any]:
    with RawVllm(argv) as vllm:
        outcome = vllm.wait(READY_WITHIN if fails == "first-request" else FAILS_WITHIN)
        ready = vllm.ready_seconds and round(vllm.ready_seconds, 2)
        result: dict[str, Any] = {"outcome": outcome, "ready_s": ready, "failed_s": None}
        if outcome == "ready":
            reply = vllm.complete("Hello")
            result["first_request"] = {
                "status": reply.status,
                "seconds": round(reply.seconds, 2),
                "body": reply.detail[:300],
            }
            if reply.status is None or reply.status >= 500:
                result["failed_s"] = round(reply.seconds, 2)
            vllm.wait_exit(30)
        elif outcome == "exited" and vllm.returncode() != 0:
            result["failed_s"] = round(vllm.exit_seconds or vllm.seconds(), 2)
        result["exit_code"] = vllm.returncode()
        result["exit_s"] = vllm.exit_seconds and round(vllm.exit_seconds, 2)
        result["root_cause"] = vllm.exception_lines()[:2]
        result["last_lines"] = vllm.tail(5)
    return result


def other_vllm_processes() -> int:
    """vLLM API servers running beside this bench (they share the two cores and slow vLLM down)."""
    count = 0
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            count += b"vllm.entrypoints.openai.api_server" in cmdline.read_bytes()
        except OSError:
            pass
    return count


def host() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    field = dict(line.split(":", 1) for line in cpuinfo.splitlines() if ":" in line)
    field = {k.strip(): v.strip() for k, v in field.items()}
    total, available = read_numa_node0_gib()
    return {
        "cpu": field.get("model name"),
        "cores": os.cpu_count(),
        "isa": read_cpu_flags(),
        "flags": field.get("flags"),
        "numa_node0_total_gib": round(total, 2),
        "numa_node0_available_gib": round(available, 2),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "other_vllm_servers": other_vllm_processes(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'case':<15} {'rule':<24} {'launcher check':>15} {'vLLM fails after':>17} {'ratio':>8}  how vLLM failed",
        "-" * 120,
    ]
    for row in rows:
        vllm, check = row["vllm"], row["check"]
        failed = f"{vllm['failed_s']:.1f} s" if vllm["failed_s"] else vllm["outcome"]
        ratio = f"{row['ratio']:.0f}x" if row["ratio"] else "-"
        cause = (vllm["root_cause"] or vllm["last_lines"] or ["-"])[0][:70]
        verdict = f"{check['median_s']:.3f} s"
        lines.append(f"{row['case']:<15} {row['rule']:<24} {verdict:>15} {failed:>17} {ratio:>8}  {cause}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated, from: " + ", ".join(CASES))
    parser.add_argument("--check-runs", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "verdict-vs-vllm-cpu.json")
    options = parser.parse_args()
    if not (SMOLLM2 / "config.json").is_file():
        sys.exit(f"error: {SMOLLM2} is missing; run `make model`")
    started = time.monotonic()
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "vllm_version": installed_vllm_version(),
        "host_before": host(),
        "check_runs": options.check_runs,
        "target_ratio": TARGET_RATIO,
        "cases": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-head16-") as scratch:
        cases = cpu_cases(build_head16_checkpoint(Path(scratch) / "tiny-llama-head16"))
        for name in options.cases.split(","):
            argv, rule, fails = cases[name].argv, cases[name].rule, cases[name].fails
            assert rule and fails, f"{name} is not a refused case"
            print(f"{name}: launcher check x{options.check_runs} ...", file=sys.stderr, flush=True)
            check = time_check(argv, rule, options.check_runs)
            row: dict[str, Any] = {
                "case": name,
                "rule": rule,
                "argv": [short(a, scratch) for a in argv],
                "vllm_fails_on": fails,
                "check": check,
                "vllm": None,
                "ratio": None,
            }
            if not check["refused_by_rule"]:
                row["vllm"] = {
                    "outcome": "not run: launcher check did not refuse it here now",
                    "failed_s": None,
                    "root_cause": [],
                    "last_lines": [],
                }
            else:
                print(f"{name}: raw vLLM ...", file=sys.stderr, flush=True)
                row["vllm"] = time_vllm(argv, fails)
                if row["vllm"]["failed_s"]:
                    row["ratio"] = round(row["vllm"]["failed_s"] / check["median_s"], 1)
            result["cases"].append(row)
    ratios = [row["ratio"] for row in result["cases"] if row["ratio"]]
    result["min_ratio"] = min(ratios, default=None)
    result["target_met"] = bool(ratios) and min(ratios) >= TARGET_RATIO
    result["host_after"] = {k: v for k, v in host().items() if k in ("load_average", "other_vllm_servers")}
    result["bench_seconds"] = round(time.monotonic() - started, 1)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result["cases"]))
    print(
        f"\nlowest ratio {result['min_ratio']}x (target {TARGET_RATIO:.0f}x: "
        f"{'met' if result['target_met'] else 'NOT met'}); vLLM {result['vllm_version']}, "
        f"{result['host_before']['cpu']}, {result['host_before']['cores']} cores; wrote {options.output}"
    )
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
