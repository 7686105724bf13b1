"""`launcher plan`'s KV cache figure against the one vLLM itself logs, on this machine's CPU.

For each --gpu-memory-utilization: the planner's estimate (the launcher's memory model, on this machine's
NUMA node 0 as detected right before the start), then raw CPU vLLM with the same serve arguments (no
launcher), stopped as soon as it has logged

    Auto set (1.75/10.09) GiB for KV cache on node 0, with 3.03 GiB requested memory for the worker.
    1.27 GiB memory was consumed by non-kv usages.
    CPU KV cache size: 81,664 tokens

The H100 figures measured with vLLM 0.26 (/work/shared/gpu/logs, Llama-3-8B shape, dummy weights) are
compared too, without a GPU: the planner's numbers for the same flags against the logged ones.
Results: bench/results/plan-vs-vllm-cpu.json (--output).

    .venv/bin/python -m bench.plan_vs_vllm [--utilization 0.2,0.3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform as host
import re
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from launcher.check.arguments import ServeArgs  # noqa: E402
from launcher.check.memory import estimate  # noqa: E402
from launcher.check.model_facts import load_model  # noqa: E402
from launcher.check.platforms import from_target, probe_cpu  # noqa: E402
from launcher.check.versions import installed_vllm_version  # noqa: E402
from tests.harness.raw_vllm import SMOLLM2, RawVllm  # noqa: E402

LLAMA3_8B_SHAPE = ROOT / "tests" / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct"
# What vLLM 0.26 logged on an H100 80GB (bench throughput: LLM-class batch defaults 16384 tokens, 1024 seqs).
H100_LOGGED = {
    "bf16": {"args": [], "weights_gib": 14.96, "kv_gib": 55.89, "tokens": 457_872},
    "fp8": {"args": ["--quantization", "fp8"], "weights_gib": 8.49, "kv_gib": 62.35, "tokens": 510_736},
    "fp8+fp8 kv": {"args": ["--quantization", "fp8", "--kv-cache-dtype", "fp8"], "tokens": 1_021_488},
}
H100_ARGS = ["--max-model-len", "2048", "--max-num-batched-tokens", "16384", "--max-num-seqs", "1024"]

AUTO_SET = re.compile(r"Auto set \(([\d.]+)/([\d.]+)\) GiB for KV cache on node \d+, with ([\d.]+) GiB requested "
                      r"memory for the worker\. ([\d.]+) GiB memory was consumed by non-kv usages")
KV_TOKENS = re.compile(r"CPU KV cache size: ([\d,]+) tokens")


def error_pct(planned: float, measured: float) -> float:
    return round((planned - measured) / measured * 100, 2)


def run_vllm(argv: list[str], timeout: float, log_path: Path) -> dict[str, Any]:
    """Start raw vLLM, wait for its KV cache lines (or its exit), stop it."""
    vllm = RawVllm(argv, log_path).start()
    found: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not {"kv_gib", "tokens"} <= set(found):
            text = vllm.log_text()
            if match := AUTO_SET.search(text):
                found.update(kv_gib=float(match[1]), node_total_gib=float(match[2]), requested_gib=float(match[3]),
                             non_kv_gib=float(match[4]))
            if match := KV_TOKENS.search(text):
                found["tokens"] = int(match[1].replace(",", ""))
            if not vllm.child.alive():
                break
            time.sleep(0.5)
        found["seconds_to_kv_line"] = round(vllm.seconds(), 1)
        if "tokens" not in found:
            found["error"] = vllm.exception_lines()[:3] or vllm.tail(5)
    finally:
        vllm.stop()
    return found


def cpu_case(utilization: float, timeout: float, logs: Path) -> dict[str, Any]:
    argv = ["--model", str(SMOLLM2), "--max-model-len", "2048", "--gpu-memory-utilization", str(utilization)]
    args = ServeArgs.parse(argv)
    node = probe_cpu()
    plan = estimate(args, load_model(args.model), node)
    measured = run_vllm(argv, timeout, logs / f"plan-vs-vllm-{utilization}.log")
    row: dict[str, Any] = {
        "utilization": utilization,
        "serve_args": argv,
        "planner": {"node_total_gib": plan.device_memory_gib, "budget_gib": plan.budget_gib,
                    "weights_gib": plan.weights_gib, "runtime_gib": plan.non_torch_gib,
                    "kv_gib": plan.kv_cache_gib, "tokens": plan.kv_tokens,
                    "kv_bytes_per_token": plan.kv_bytes_per_token},
        "vllm": measured,
    }
    if "tokens" in measured:
        row["tokens_error_pct"] = error_pct(plan.kv_tokens, measured["tokens"])
        row["kv_gib_error_pct"] = error_pct(plan.kv_cache_gib, measured["kv_gib"])
        # The same model with vLLM's own view of the node, which may have moved between probe and start.
        same_node = estimate(args, load_model(args.model), node, memory_gib=measured["node_total_gib"])
        row["tokens_error_pct_same_node"] = error_pct(same_node.kv_tokens, measured["tokens"])
    return row


def h100_rows() -> list[dict[str, Any]]:
    rows = []
    for name, logged in H100_LOGGED.items():
        args = ServeArgs.parse(["--model", str(LLAMA3_8B_SHAPE), *H100_ARGS, *logged["args"]])
        plan = estimate(args, load_model(args.model), from_target("cuda:h100"))
        row = {"case": name, "flags": [*H100_ARGS, *logged["args"]], "logged": logged,
               "planner": {"weights_gib": plan.weights_gib, "kv_gib": plan.kv_cache_gib, "tokens": plan.kv_tokens},
               "tokens_error_pct": error_pct(plan.kv_tokens, logged["tokens"])}
        if "weights_gib" in logged:
            row["weights_error_pct"] = error_pct(plan.weights_gib, logged["weights_gib"])
        rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utilization", default="0.2,0.3", help="comma-separated --gpu-memory-utilization values")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per vLLM start")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "plan-vs-vllm-cpu.json")
    options = parser.parse_args()
    if not (SMOLLM2 / "config.json").is_file():
        print(f"{SMOLLM2} is missing: run `make model`", file=sys.stderr)
        return 2
    logs = ROOT / "bench" / "out"  # vLLM logs, not committed
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for value in options.utilization.split(","):
        row = cpu_case(float(value), options.timeout, logs)
        print(json.dumps(row), flush=True)
        rows.append(row)
    result = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "host": host.node(),
        "vllm": installed_vllm_version(),
        "model": str(SMOLLM2.relative_to(ROOT)) if SMOLLM2.is_relative_to(ROOT) else str(SMOLLM2),
        "cpu": rows,
        "h100_vllm_0.26_logged": h100_rows(),
        "target_error_pct": 10,
    }
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    errors = [abs(r["tokens_error_pct"]) for r in rows if "tokens_error_pct" in r]
    errors += [abs(r["tokens_error_pct"]) for r in result["h100_vllm_0.26_logged"]]
    print(f"wrote {options.output}; largest token error {max(errors, default=float('nan')):.1f}%")
    return 0 if errors and max(errors) <= 10 and len(errors) == len(rows) + len(H100_LOGGED) else 1


if __name__ == "__main__":
    sys.exit(main())
