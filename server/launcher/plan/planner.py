"""`launcher plan`: will it fit, what would make it fit, and which configuration to serve (`--profiles`, `--auto`).

A profile is one (weights precision, KV cache dtype, tensor parallel size) for the model on the target; each
is sized by check/memory.py and checked against the whole compatibility table (verdict.evaluate on inputs
gathered once), then ranked by the KV cache it leaves. Accuracy follows the ROCm FP8 guide: BF16 > FP8
per-channel > FP8 per-tensor weights, and BF16 KV > FP8 KV; its fallback ladder, when FP8 accuracy is not enough,
is per-channel FP8, then a BF16 KV cache, then BF16 weights.

`best_profile()` is what `launcher serve --auto` starts: the most accurate profile that passes and holds
at least `min_sequences` sequences of --max-model-len at once, on the fewest GPUs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..check import memory
from ..check.gather import Inputs, gather
from ..check.model_facts import ModelFacts
from ..check.platforms import Platform, from_target
from ..check.verdict import Verdict, evaluate
from ..errors import LauncherError

DEFAULT_MIN_SEQUENCES = 4
DEFAULT_NODE_GPUS = 8
WEIGHT_NOTES = ("BF16 weights", "FP8 per-channel weights", "FP8 per-tensor weights", "4-bit weights")
KV_NOTES = ("BF16 KV", "FP8 KV")
PROFILE_FLAGS = ("quantization", "kv-cache-dtype", "tensor-parallel-size")


@dataclass
class Profile:
    quantization: str | None  # the --quantization it adds (None: the checkpoint as published)
    kv_cache_dtype: str  # auto or fp8
    tensor_parallel_size: int
    argv: list[str]  # the whole serve command line of this profile
    plan: memory.MemoryPlan
    errors: list[str] = field(default_factory=list)  # rule ids (other than memory) that reject it
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.plan.fits and not self.errors

    @property
    def accuracy(self) -> tuple[int, int]:
        return self.plan.accuracy_rank

    @property
    def flags(self) -> str:
        parts = [f"-tp {self.tensor_parallel_size}"]
        if self.quantization:
            parts.append(f"--quantization {self.quantization}")
        if self.kv_cache_dtype != "auto":
            parts.append(f"--kv-cache-dtype {self.kv_cache_dtype}")
        return " ".join(parts)

    @property
    def accuracy_note(self) -> str:
        weights, kv = self.accuracy
        note = WEIGHT_NOTES[min(weights, 3)]
        if self.quantization is None and weights == 0 and self.plan.weights != "BF16":
            note = f"{self.plan.weights}, as published"
        return f"{note}, {KV_NOTES[kv]}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "flags": self.flags,
            "argv": self.argv,
            "ok": self.ok,
            "errors": self.errors,
            "accuracy": self.accuracy_note,
            "accuracy_rank": list(self.accuracy),
            "reason": self.reason,
            "plan": self.plan.as_dict(),
        }


# -- one configuration ----------------------------------------------------------------------------------


def _context(
    argv: list[str], target: str | None, vllm_version: str | None, gpus: int | None, config_folders: list[Path] | None
) -> tuple[Inputs, Platform, int]:
    """The check's inputs, gathered once; the platform with `--gpus` GPUs for the memory model; how many GPUs to
    plan for. The check itself sees the platform as `launcher check` does (its GPU count is not `--gpus`)."""
    inputs = gather(argv, target, vllm_version, config_folders)
    platform = inputs.platform
    if gpus:
        platform = from_target(target, gpus) if target else replace(platform, gpu_count=gpus)
    world = int(inputs.args.facts()["world_size"])
    if platform.kind == "cpu":
        return inputs, platform, world
    node = gpus or (platform.gpu_count if platform.detected else DEFAULT_NODE_GPUS)
    return inputs, platform, max(node, world)


def plan(
    argv: list[str],
    target: str | None = None,
    vllm_version: str | None = None,
    gpus: int | None = None,
    config_folders: list[Path] | None = None,
    memory_gib: float | None = None,
) -> dict[str, Any]:
    """The memory plan of one serve command, the changes that would make it fit, and the table's other errors."""
    inputs, platform, max_gpus = _context(argv, target, vllm_version, gpus, config_folders)
    args, model = inputs.args, inputs.model
    verdict = evaluate(inputs)
    estimate = memory.estimate(args, model, platform, memory_gib, inputs.env)
    found = [] if estimate.fits else memory.fixes(args, model, platform, max_gpus, memory_gib, inputs.env)
    others = [f for f in verdict.findings if not f.rule.startswith("memory-")]
    return {
        "fits": estimate.fits,
        "plan": estimate,
        "fixes": found,
        "findings": others,
        "verdict": verdict,
        "platform": platform,
        "gpus": max_gpus,
    }


def _gib(value: float) -> str:
    return f"{value:,.2f} GiB"


def format_plan(result: dict[str, Any]) -> str:
    p: memory.MemoryPlan = result["plan"]
    verdict: Verdict = result["verdict"]
    where = f"{p.gpus} x {p.device}" if p.kind != "cpu" else f"the CPU ({p.device})"
    head = "FITS" if p.fits else "DOES NOT FIT"
    lines = [
        f"{head}: {p.model} on {where}, vLLM {verdict.vllm_version}",
        f"  weights     {p.weights}: {_gib(p.weights_gib)} per GPU ({_gib(p.weights_total_gib)} in all), "
        f"tensor parallel {p.tensor_parallel_size} x pipeline parallel {p.pipeline_parallel_size}"
        + (f" x data parallel {p.data_parallel_size} (each rank its own budget)" if p.data_parallel_size > 1 else "")
        if p.kind != "cpu"
        else f"  weights     {p.weights}: {_gib(p.weights_gib)}",
        f"  budget      --gpu-memory-utilization {p.utilization} x {_gib(p.device_memory_gib)} = "
        f"{_gib(p.budget_gib)} per {'GPU' if p.kind != 'cpu' else 'node'}",
    ]
    if p.kind == "cpu":
        lines.append(f"  reserve     the worker's runtime {_gib(p.non_torch_gib)}")
    else:
        where = "inside the budget" if p.cuda_graph_in_kv_budget else "outside the budget"
        graphs = f"CUDA graphs about {p.cuda_graph_gib:.1f} GiB, {where}" if p.cuda_graph_gib else "no CUDA graphs"
        lines.append(
            f"  reserve     activations {_gib(p.activation_gib)} + CUDA/NCCL context {_gib(p.non_torch_gib)} ({graphs})"
        )
    unit = "GPU" if p.kind != "cpu" else "node"
    if p.weights_fit:
        if len(p.kv_groups) > 1 or any("window" in g or "chunked" in g for g in p.kv_groups):
            lines.append(
                f"  KV cache    {_gib(p.kv_cache_gib)} per {unit}, {p.kv_cache_dtype}, "
                f"{p.kv_bytes_per_token:,.0f} bytes per token on all layers"
            )
            lines.append(
                f"  KV groups   {'; '.join(p.kv_groups)}: vLLM counts {p.kv_tokens:,} tokens, "
                f"{p.max_concurrency}x --max-model-len"
            )
        else:
            lines.append(
                f"  KV cache    {_gib(p.kv_cache_gib)} per {unit}, {p.kv_cache_dtype}, "
                f"{p.kv_bytes_per_token:,.0f} bytes per token = {p.kv_tokens:,} tokens"
            )
    else:
        lines.append(
            f"  KV cache    none: weights and reserve exceed the budget by {_gib(-p.kv_cache_gib)} per {unit} "
            f"({p.kv_cache_dtype} would take {p.kv_bytes_per_token:,.0f} bytes per token)"
        )
    length = "auto (vLLM fits it)" if p.max_model_len_auto else str(p.max_model_len)
    lines.append(
        f"  sequences   {p.sequences} at once of --max-model-len {length} ({p.sequence_gib:.2f} GiB of KV cache each)"
    )
    for note in p.notes:
        lines.append(f"  note        {note}")
    if p.fits:
        lines.append("  verdict     fits")
    else:
        problem = "the weights do not fit" if not p.weights_fit else "the KV cache cannot hold one sequence"
        lines.append(f"  verdict     does not fit: {problem}")
        if result["fixes"]:
            lines.append(f"  smallest change  {result['fixes'][0].describe()}")
            for fix in result["fixes"][1:]:
                lines.append(f"  or               {fix.describe()}")
        else:
            lines.append(f"  no single change fits on up to {result['gpus']} GPUs")
    for finding in result["findings"]:
        lines.append(f"  check: {finding.severity} [{finding.rule}] {finding.message}")
    return "\n".join(lines)


def plan_json(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "fits": result["fits"],
        "plan": result["plan"].as_dict(),
        "fixes": [{"change": f.change, "argv": f.args.argv(), "plan": f.plan.as_dict()} for f in result["fixes"]],
        "findings": [f.as_dict() for f in result["findings"]],
        "vllm_version": result["verdict"].vllm_version,
        "target": result["platform"].target,
    }


# -- every configuration -----------------------------------------------------------------------------------


def _precisions(model: ModelFacts, platform: Platform, methods: list[str]) -> list[str | None]:
    if model.checkpoint_quantization() is not None:
        return [None]
    options: list[str | None] = [None]
    if "fp8_per_channel" in methods:
        options.append("fp8_per_channel")
    elif platform.kind == "rocm" and "ptpc_fp8" in methods:
        options.append("ptpc_fp8")
    options.append("fp8")
    return options


def profiles(
    argv: list[str],
    target: str | None = None,
    vllm_version: str | None = None,
    gpus: int | None = None,
    config_folders: list[Path] | None = None,
    memory_gib: float | None = None,
) -> list[Profile]:
    """Every (precision, KV dtype, TP) for the model on the target, passing ones first, most KV capacity first."""
    inputs, platform, max_gpus = _context(argv, target, vllm_version, gpus, config_folders)
    args, model = inputs.args, inputs.model
    methods = list(inputs.vllm["quantization_methods"])
    base = args.without(*PROFILE_FLAGS)
    pp = int(args.facts()["pipeline_parallel_size"])
    found: list[Profile] = []
    checkpoint_kv_fp8 = memory.kv_cache_dtype("auto", model, 2)[1] == 1
    for quantization in _precisions(model, platform, methods):
        for kv in ("auto",) if checkpoint_kv_fp8 else ("auto", "fp8"):
            for tp in (d for d in range(1, max_gpus // pp + 1) if (max_gpus // pp) % d == 0):
                changed = base.with_option("tensor-parallel-size", str(tp))
                if quantization:
                    changed = changed.with_option("quantization", quantization)
                if kv != "auto":
                    changed = changed.with_option("kv-cache-dtype", kv)
                profile_argv = changed.argv()
                verdict = evaluate(inputs.with_args(profile_argv))
                errors = [
                    f.rule for f in verdict.findings if f.severity == "error" and not f.rule.startswith("memory-")
                ]
                try:
                    estimate = memory.estimate(changed, model, platform, memory_gib, inputs.env)
                except memory.MemoryModelError as exc:
                    raise LauncherError(f"{exc}") from None
                found.append(Profile(quantization, kv, tp, profile_argv, estimate, errors))
    # Passing ones by KV capacity; the others with the closest to fitting (most GPUs, least memory) first.
    found.sort(
        key=lambda p: (
            (not p.ok, -p.plan.kv_tokens, p.tensor_parallel_size)
            if p.ok
            else (True, -p.tensor_parallel_size, p.plan.weights_gib, p.accuracy)
        )
    )
    return found


def choose(found: list[Profile], min_sequences: int = DEFAULT_MIN_SEQUENCES) -> Profile | None:
    """The most accurate passing profile that holds `min_sequences` (else one) sequences, on the fewest GPUs."""
    for need in (min_sequences, 1):
        ok = [p for p in found if p.ok and p.plan.sequences >= need]
        if ok:
            best = min(ok, key=lambda p: (p.accuracy, p.tensor_parallel_size, -p.plan.kv_tokens))
            held = f"at least {need} sequence(s)" if need > 1 else "one sequence (no profile holds more)"
            best.reason = (
                f"the most accurate profile that passes the check and holds {held} of "
                f"{best.plan.max_model_len} tokens at once ({best.plan.sequences}), on the fewest GPUs "
                f"({best.plan.gpus}): {best.accuracy_note}"
            )
            return best
    return None


def ladder(found: list[Profile], start: Profile) -> list[Profile]:
    """The ROCm guide's accuracy fallback from `start` at its TP: per-channel FP8, then BF16 KV, then BF16."""
    same_tp = [p for p in found if p.tensor_parallel_size == start.tensor_parallel_size]
    steps = []
    for weights, kv in ((1, start.accuracy[1]), (1, 0), (0, 0)):
        if (weights, kv) < start.accuracy:
            steps += [p for p in same_tp if p.accuracy == (weights, kv) and p not in steps]
    return steps


def best_profile(
    argv: list[str],
    target: str | None = None,
    vllm_version: str | None = None,
    gpus: int | None = None,
    config_folders: list[Path] | None = None,
    memory_gib: float | None = None,
    min_sequences: int = DEFAULT_MIN_SEQUENCES,
) -> Profile:
    """For `launcher serve --auto`: the profile to start (its .argv, why in .reason); LauncherError when none fits."""
    found = profiles(argv, target, vllm_version, gpus, config_folders, memory_gib)
    best = choose(found, min_sequences)
    if best is None:
        model = found[0].plan.model if found else "the model"
        raise LauncherError(
            f"no configuration of {model} fits and passes the check on this target; "
            "run launcher plan --profiles for each one's reason"
        )
    return best


def format_profiles(found: list[Profile], best: Profile | None) -> str:
    if not found:
        return "no profiles"
    first = found[0].plan
    where = "the CPU" if first.kind == "cpu" else f"up to {max(p.plan.gpus for p in found)} x {first.device}"
    flags_width = max(len(p.flags) for p in found)
    weights_width = max(len(p.plan.weights) for p in found)
    lines = [
        f"Profiles for {first.model} on {where}, --max-model-len {first.max_model_len}, ranked by KV cache capacity",
        f"  {'':1} {'flags':<{flags_width}} {'weights':<{weights_width}} {'KV':<5} {'weights/GPU':>12} "
        f"{'KV tokens':>11} {'seqs':>5}  verdict",
    ]
    for p in found:
        mark = "*" if p is best else " "
        if p.ok:
            verdict = "ok"
        elif p.errors:
            verdict = "rejected: " + ", ".join(p.errors)
        else:
            verdict = "weights do not fit" if not p.plan.weights_fit else "KV cache too small"
        kv = "fp8" if p.accuracy[1] else "bf16"
        lines.append(
            f"  {mark} {p.flags:<{flags_width}} {p.plan.weights:<{weights_width}} {kv:<5} "
            f"{p.plan.weights_gib:>8.2f} GiB "
            f"{p.plan.kv_tokens:>11,} {p.plan.sequences:>5}  {verdict}"
        )
    lines.append("  accuracy (ROCm FP8 guide): BF16 > FP8 per-channel > FP8 per-tensor weights; BF16 KV > FP8 KV")
    if best is None:
        lines.append("best: none fits and passes the check")
        return "\n".join(lines)
    lines.append(f"best (launcher serve --auto): {best.flags} - {best.reason}")
    steps = ladder(found, best)
    if steps:
        lines.append("  if its accuracy is not enough, step up (ROCm fallback ladder), at the same TP:")
        for p in steps:
            state = "ok" if p.ok else "does not fit" if p.errors == [] else "rejected: " + ", ".join(p.errors)
            lines.append(
                f"    {p.flags:<{flags_width}} {p.accuracy_note}: {p.plan.kv_tokens:,} KV tokens, "
                f"{p.plan.sequences} sequences ({state})"
            )
    return "\n".join(lines)


def run(options: Any, vllm_args: list[str]) -> int:
    """The `launcher plan` command: exit 0 when it fits (with --profiles: when one profile fits), else 2."""
    if options.gpus is not None and options.gpus < 1:
        raise LauncherError(f"--gpus takes a positive whole number, not {options.gpus}")
    if options.memory_gib is not None and options.memory_gib <= 0:
        raise LauncherError(f"--memory-gib takes a positive number of GiB, not {options.memory_gib}")
    common = (vllm_args, options.target, options.vllm_version, options.gpus, options.model_configs, options.memory_gib)
    if options.profiles:
        found = profiles(*common)
        best = choose(found, options.min_sequences)
        if options.format == "json":
            print(
                json.dumps(
                    {"best": best.as_dict() if best else None, "profiles": [p.as_dict() for p in found]}, indent=2
                )
            )
        else:
            print(format_profiles(found, best))
        return 0 if best else 2
    result = plan(*common)
    if options.format == "json":
        print(json.dumps(plan_json(result), indent=2))
    else:
        print(format_plan(result))
    return 0 if result["fits"] else 2
