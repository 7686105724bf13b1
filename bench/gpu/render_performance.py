"""docs/gpu-performance-<gpu>.md from the GPU harnesses' records: the tables are generated, never typed.

Reads bench/results/<gpu>-front-door.json (front door against direct; -front-door-range.json: the same with the
lengths spread by --range-ratio), <gpu>-front-door-precisions.json (BF16 vs
FP8 vs FP8 + FP8 KV through the front door) and <gpu>-quantize-eval.json (`launcher quantize` + `launcher eval`);
a GPU with none of them gets no page.

    python -m bench.gpu.render_performance          rewrite them
    python -m bench.gpu.render_performance --check  exit 1 when one is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import machine
from . import render as render_ground_truth

ROOT = machine.ROOT
FRONT_DOOR_KINDS = ("front-door", "front-door-range", "front-door-noise-floor", "front-door-noise-floor-range")
KINDS = (*FRONT_DOOR_KINDS, "front-door-precisions", "quantize-eval")


def _records() -> dict[str, dict[str, Path]]:
    """Per GPU slug, the records it has, by kind."""
    found: dict[str, dict[str, Path]] = {}
    for kind in KINDS:
        for path in sorted(machine.RESULTS_DIR.glob(f"*-{kind}.json")):
            gpu = path.name.removesuffix(f"-{kind}.json")
            found.setdefault(gpu, {})[kind] = path
    return found


def _ratio(stat: dict[str, Any], digits: int = 3) -> tuple[str, str, str]:
    """(per round, median, spread) of a summary entry."""
    rounds = ", ".join(f"{r:.{digits}f}" for r in stat["per_round"])
    return rounds, f"{stat['median']:.{digits}f}", f"{stat['spread']:.{digits}f}"


def _runs(series: dict[str, Any], side: str) -> list[dict[str, Any]]:
    return [r[side] for r in series["rounds"] if side in r]


def span(values: list[float], fmt: str = "{:,.0f}") -> str:
    """The smallest and largest value, formatted (one value when they read the same)."""
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}-{high}"


def _steady(runs: list[dict[str, Any]]) -> str:
    """The steady-window seconds and prefix-cache hit rate cells of these runs."""
    hits = [r["prefix_cache_hit_rate"] for r in runs if "prefix_cache_hit_rate" in r]
    seconds = span([r["server_steady_seconds"] for r in runs], "{:.1f}")
    return f"{seconds} | {span(hits, '{:.1%}') if hits else 'not recorded'}"


def _when(date: str) -> str:
    return date[:16].replace("T", " ")


def _setup(record: dict[str, Any]) -> str:
    load = record["throughput"]["load"] if "throughput" in record else record["load"]
    dates = [session["date"] for session in record.get("sessions", [])] or [record["date"]]
    when = " and ".join(_when(date) for date in dates) + (f" UTC ({len(dates)} sessions)" if len(dates) > 1 else " UTC")
    return (
        f"{record['gpu']} (capability {record['capability']}, {record['memory_mib']:,} MiB, driver {record['driver']}),"
        f" vLLM {record['vllm']}, torch {record['torch']}, {when}; load: vLLM's"
        f" `{load['dataset']}` dataset, {load['input_len']} in / {load['output_len']} out, `--ignore-eos`,"
        f" {load['clients']} client workers per run"
    )


def _pairs(summary: dict[str, Any]) -> str:
    """The round pairs' throughput ratios (front_door.pair_ratios) and their median: a drift cancelled."""
    pairs = summary.get("throughput_pair_ratio")
    if not pairs:
        return "(one round)"
    per_pair = ", ".join(f"{r:.3f}" for r in pairs["per_pair"])
    return per_pair if len(pairs["per_pair"]) == 1 else f"{per_pair} (median {pairs['median']:.3f})"


def _drift(summary: dict[str, Any]) -> str:
    drift = summary.get("steady_throughput_drift", {})
    return ", ".join(f"{side} {value:+.1%}" for side, value in drift.items()) or "-"


def _own(summary: dict[str, Any]) -> str:
    """The front door's own account (front_door.own_latency), medians over the rounds: what it added to a
    generation's first chunk (p50 / p99) and its event loop's lag (p99), in ms."""
    keys = ("own_first_chunk_added_p50_ms", "own_first_chunk_added_p99_ms", "own_loop_lag_p99_ms")
    if not all(key in summary for key in keys):
        return "(not recorded)"
    p50, p99, lag = (summary[key]["median"] for key in keys)
    return f"{p50:.2f} / {p99:.2f} (lag p99 {lag:.2f})"


def _cpu(series: dict[str, Any]) -> str:
    """The CPU share (one core = 1) of the front door and of vLLM's API server (its group's leader) over the
    front-door runs."""
    shares = [run["cpu_share"] for run in _runs(series, "front_door") if "cpu_share" in run]
    if not shares:
        return "(not recorded)"
    door = span([share.get("front door", 0.0) for share in shares], "{:.2f}")
    return f"{door} / {span([share.get('vLLM', 0.0) for share in shares], '{:.2f}')}"


def front_door(record: dict[str, Any], source: str) -> list[str]:
    spread = record["load"].get("range_ratio")
    lengths = f", lengths uniform in {1 - spread:g}-{1 + spread:g} x the load's" if spread else ""
    noise_floor = record.get("noise_floor")
    what = "The noise floor: direct against direct" if noise_floor else "Front door against direct"
    ratio = "direct again / direct" if noise_floor else "front door / direct"
    lines = [
        f"## {what}{lengths}",
        "",
        f"`{source}`: {_setup(record)}. {record['model']}. Method: {record['method']}",
        "",
        f"| session | concurrency | rounds | prompts per run | {ratio} per round | median | spread |"
        " round pairs | first to last run | direct tokens/s | steady s | prefix-cache hits |"
        " p50 TTFT added per round, ms | added by its own account, p50 / p99 ms | CPU: front door / vLLM |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for series in record["series"]:
        summary = series["summary"]
        direct = _runs(series, "direct")
        ttft = ", ".join(f"{ms:+.0f}" for ms in summary["p50_ttft_added_ms"]["per_round"])
        session = _when(series.get("session", record["date"]))
        lines.append(
            f"| {session} | {series['concurrency']} | {summary['rounds']} |"
            f" {span([r['prompts'] for r in series['rounds']])} |"
            f" {' | '.join(_ratio(summary['throughput_ratio']))} | {_pairs(summary)} | {_drift(summary)} |"
            f" {span([r['server_steady_output_throughput'] for r in direct])} |"
            f" {_steady(direct + _runs(series, 'front_door'))} | {ttft} | {_own(summary)} | {_cpu(series)} |"
        )
    stopped = [
        f"c{s['concurrency']} ({_when(s.get('session', record['date']))}): {s['stopped']}"
        for s in record["series"]
        if s.get("stopped")
    ]
    stopped += [n for session in record.get("sessions", [record]) for n in session.get("not_started", [])]
    if stopped:
        lines += ["", "Not measured: " + "; ".join(stopped) + "."]
    lines += [
        "",
        "Round pairs: the geometric mean of two consecutive rounds' ratios; the order flips from one round to the next,"
        " so a drift linear over the pair's four runs cancels in it. First to last run: each side's steady throughput"
        " in its last run against its first. Added by its own account: the front door's"
        ' `launcher_added_latency_seconds{stage="total"}` over the run (from a generation\'s ASGI call to its request'
        " written to vLLM, plus from vLLM's first chunk read to it handed to the client's connection), median over the"
        " rounds; the lag is `launcher_event_loop_lag_seconds`, the wait a request or chunk that has just arrived"
        " has, which that account cannot see. CPU: each process's CPU seconds over a front-door run's wall seconds"
        " (one core = 1.00; a share near 1 is a process bound by its Python thread).",
    ]
    return lines


def precisions(record: dict[str, Any], source: str) -> list[str]:
    launchers = record["launchers"]
    base = launchers[0]["name"]
    lines = [
        "## Precisions through the front door",
        "",
        f"`{source}`: {_setup(record)}. {record['model']}. Method: {record['method']}",
        "",
        f"| precision | vLLM arguments | weights GiB | KV tokens (vLLM) | concurrency | tokens/s (vLLM, steady) |"
        f" / {base} per round | median | spread | steady s | prefix-cache hits |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for series in record["series"]:
        summary = series["summary"]
        for launcher in launchers:
            name = launcher["name"]
            observed = launcher["launcher_start"]["observed"]
            runs = _runs(series, name)
            ratio = summary.get(f"{name}_throughput_ratio")
            cells = _ratio(ratio) if ratio else ("(the base)", "", "")
            lines.append(
                f"| {name} | `{' '.join(launcher['vllm_args'])}` | {observed['weights_gib']} |"
                f" {observed['kv_tokens']:,} | {series['concurrency']} |"
                f" {span([r['server_steady_output_throughput'] for r in runs])} | {' | '.join(cells)} |"
                f" {_steady(runs)} |"
            )
    return lines


def quantize_eval(record: dict[str, Any], source: str) -> list[str]:
    report = record["quantize"]["report"]
    evaluation = record["eval"]
    throughput = record["throughput"]
    lines = [
        "## `launcher quantize` and `launcher eval`",
        "",
        f"`{source}`: {_setup(record)}. Method: {record['method']}",
        "",
        f"Quantized `{Path(report['source']).name}` to {report['scheme']} in {record['quantize']['seconds']} s"
        f" ({report['layers_quantized']} layers, kept {', '.join(report['layers_kept'])}; size ratio"
        f" {report['size_ratio']}; llm-compressor {report['versions']['llmcompressor']}). vLLM served it as"
        f" `{record['serve']['fp8']['observed'].get('quantization')}`.",
        "",
        "| side | `launcher check` | ready s | weights GiB (vLLM) | "
        + " | ".join(
            f"`{task}` ({evaluation['bf16']['n-shot'][task]}-shot, {evaluation['limit']} items)"
            for task in evaluation["tasks"]
        )
        + " | tokens/s (vLLM, steady) |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in evaluation["tasks"]) + " | --- |",
    ]
    for side in ("bf16", "fp8"):
        check = record["check"][side]
        scores = []
        for task in evaluation["tasks"]:
            result = evaluation[side]["results"][task]
            metric = next(k for k in result if k.startswith("exact_match,") or k.startswith("acc,"))
            error = result[metric.replace(",", "_stderr,", 1)]
            scores.append(f"{result[metric]:.3f} +/- {error:.3f}")
        lines.append(
            f"| {side} | {'accepted' if check['accepted'] else 'rejected'} ({check['seconds']} s) |"
            f" {record['serve'][side]['ready_seconds']} | {record['serve'][side]['observed']['weights_gib']} |"
            f" {' | '.join(scores)} |"
            f" {span([r['server_steady_output_throughput'] for r in _runs(throughput, side)])} |"
        )
    summary = throughput["summary"]
    rounds, median, spread = _ratio(summary["throughput_ratio"])
    recovery = ", ".join(f"`{k}` {v}" for k, v in evaluation["recovery"].items())
    lines += [
        "",
        f"Recovery (FP8 / BF16): {recovery}. Throughput FP8 / BF16 at concurrency {throughput['load']['concurrency']}"
        f" over {summary['rounds']} rounds: {rounds} (median {median}, spread {spread}; shortest steady window"
        f" {summary['shortest_steady_seconds']} s).",
    ]
    return lines


def render(gpu: str, records: dict[str, Path]) -> str:
    lines = [
        f"# Measured on the GPU: {gpu.upper()}",
        "",
        "<!-- generated by `python -m bench.gpu.render_performance` from "
        + ", ".join(str(p.relative_to(ROOT)) for p in records.values())
        + "; do not edit -->",
        "",
        "Ratios are per round (each round runs every side once, the order reversed from one round to the next)."
        " Throughput is vLLM's own generation-token counter over each run's steady window (5% of its tokens left out"
        " at each end); spread is max - min of the per-round ratios. How to re-run: `bench/gpu/LOAN_PLAN.md`.",
    ]
    sections = {
        **{kind: front_door for kind in FRONT_DOOR_KINDS},
        "front-door-precisions": precisions,
        "quantize-eval": quantize_eval,
    }
    for kind, path in records.items():
        lines += ["", *sections[kind](json.loads(path.read_text()), str(path.relative_to(ROOT)))]
    return "\n".join(lines) + "\n"


def doc_for(gpu: str) -> Path:
    return ROOT / "docs" / f"gpu-performance-{gpu}.md"


def main() -> int:
    fresh = {doc_for(gpu): render(gpu, records) for gpu, records in _records().items()}
    return render_ground_truth.write_or_check(fresh, "python -m bench.gpu.render_performance")


if __name__ == "__main__":
    sys.exit(main())
