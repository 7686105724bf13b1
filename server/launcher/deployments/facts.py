"""The facts the deployment rules (data/deployment_rules.yaml) read about a workload: its effective command
(presets expanded), the platform and vLLM release it is checked on, the GPUs, /dev/shm, probes and grace period.

Which GPU: a node label (nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 matched against data/platforms.yaml),
else the target the file states (a preset's, `launcher serve --target`), else --target when it is of the
workload's kind (cuda, rocm, cpu: from the GPU resource or the image), else that kind's default target.
Which vLLM: the image tag's (vllm/vllm-openai:v0.26.0) or the one our image ships, else the preset's, else
--vllm-version, else the table's default. Which VLLM_* variables: the container's own, never this machine's.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from packaging.version import Version

from ..check import engine as rules
from ..check import model_size
from ..check.config_source import ConfigRequest
from ..check.model_facts import load_model
from ..check.platforms import _target_for_name, known_targets
from ..check.versions import resolve_version
from ..errors import LauncherError
from ..resources import data_file
from . import preset as presets
from .pods import GPU_LABELS
from .workload import Token, Workload, image_kind, image_vllm_version, is_launcher_image

RESOURCES = {"cuda": "nvidia.com/gpu", "rocm": "amd.com/gpu"}


@functools.cache
def deployment_table() -> dict[str, Any]:
    with data_file("deployment_rules.yaml").open(encoding="utf-8") as handle:
        table = yaml.safe_load(handle)
    table["parsed_rules"] = rules.parse_rules(table["rules"], "deployment_rules", rules.load_table()["vllm_versions"])
    rules.validate_texts(table["texts"], "deployment_rules")
    table["at"] = {entry["id"]: entry.get("at", "workload") for entry in table["rules"]}
    return table


# -- the workload's effective command ----------------------------------------------------------------------------------


@dataclass
class Effective:
    """The serve arguments as vLLM will get them, with where each came from, and what the file states."""

    texts: list[str]
    where: list[Token]  # the workload's tokens, then a preset's: the first match locates a flag
    env: dict[str, Token]
    target: Token | None
    vllm_version: Token | None
    drain_s: float | None = None
    error: str | None = None


def _launcher_options(tokens: list[Token]) -> dict[str, Token]:
    """`launcher serve` options that change the check: --preset, --target, --vllm-version, --drain-timeout."""
    options, i = {}, 0
    while i < len(tokens):
        flag, eq, inline = tokens[i].text.partition("=")
        if flag in ("--preset", "--target", "--vllm-version", "--drain-timeout"):
            if eq:
                options[flag[2:]] = Token(inline, tokens[i].at)
            elif i + 1 < len(tokens):
                options[flag[2:]] = tokens[i + 1]
                i += 1
        i += 1
    return options


def effective(w: Workload) -> Effective:
    result = Effective([t.text for t in w.argv], list(w.argv), dict(w.env), w.target, w.vllm_version)
    if not w.runs_launcher:
        return result
    options = _launcher_options(w.launcher_argv)
    if "preset" in options:
        try:
            preset, from_preset = presets.named(options["preset"].text)
            result.texts = preset.merged_args(result.texts)
        except LauncherError as exc:
            result.error = str(exc)
            return result
        result.where += from_preset.argv
        result.env = {**from_preset.env, **result.env}
        result.target = result.target or from_preset.target
        result.vllm_version = result.vllm_version or from_preset.vllm_version
    result.target = options.get("target", result.target)
    result.vllm_version = options.get("vllm-version", result.vllm_version)
    drain = options.get("drain-timeout") or result.env.get("LAUNCHER_DRAIN_TIMEOUT")
    try:
        result.drain_s = float(drain.text) if drain else float(deployment_table()["launcher_drain_timeout_s"])
    except ValueError:
        result.error = f"--drain-timeout takes seconds, not {drain.text if drain else ''!r}"
    return result


# -- platform and version ------------------------------------------------------------------------------------------


def _kind(w: Workload) -> str | None:
    return w.gpu_kind or image_kind(w.image) or ("cpu" if w.gpus == 0 else None)


def targets_for(w: Workload, stated: Token | None, cli_target: str | None) -> tuple[list[str], str, str | None]:
    """(targets, how they were chosen, an unknown GPU label) for the workload."""
    chosen, unknown = [], None
    for label in w.gpu_labels:
        key, _, value = label.text.partition("=")
        target = _target_for_name(GPU_LABELS[key], value.replace("_", " "))
        if target is None:
            unknown = unknown or label.text
        elif target not in chosen:
            chosen.append(target)
    if chosen:
        return chosen, "label", unknown
    if stated:
        return [stated.text], "file", unknown
    kind = _kind(w)
    if cli_target and (kind is None or known_targets()[cli_target]["kind"] == kind):
        return [cli_target], "cli", unknown
    return [deployment_table()["default_targets"][kind or "cuda"]], "default", unknown


def version_for(w: Workload, stated: Token | None, cli_version: str | None) -> tuple[str, str | None]:
    """(the vLLM version to check against, the image's own version when the table is too old for it)."""
    table = rules.load_table()
    pinned = table["image_vllm_versions"].get(_kind(w) or "cuda", table["default_vllm_version"])
    fallback = resolve_version(cli_version or str(pinned), table)
    image_version = image_vllm_version(w.image)
    if image_version is None and is_launcher_image(w.image):
        image_version = rules.load_table()["image_vllm_versions"].get(image_kind(w.image) or "")
    raw = image_version or (stated.text if stated else None)
    if raw is None:
        return fallback, None
    version = resolve_version(raw, table)
    oldest = min(Version(v) for v in table["vllm_versions"])
    if Version(version) < oldest:
        return fallback, version
    return version, None


# -- model size and load time ----------------------------------------------------------------------------------------


def params_b(request: ConfigRequest, folders: list[Path]) -> float | None:
    """All parameters of the model in billions, from the config vLLM reads (`request`: --hf-config-path, --revision,
    --config-format; the memory planner's model shapes)."""
    try:
        shape = model_size.shape_of(load_model(request.model, folders, request))
    except LauncherError:
        return None
    return sum(model_size.params_per_rank(shape, 1, model_size.ExpertSplit(), 1).values()) / 1e9


def load_needed_s(billions: float | None) -> float | None:
    if billions is None:
        return None
    for tier in deployment_table()["load_time"]:
        if tier["max_params_b"] is None or billions <= tier["max_params_b"]:
            return float(tier["seconds"])
    return None


# -- the facts the deployment rules read ----------------------------------------------------------------------------


def _style(w: Workload) -> str:
    return {"compose service": "compose", "production-stack modelSpec": "helm", "preset": "preset"}.get(w.kind, "k8s")


def _gib_text(gib: float | None) -> str | None:
    if gib is None:
        return None
    return f"{gib * 1024:.0f} MiB" if gib < 1 else f"{gib:g} GiB"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def deployment_facts(
    w: Workload, eff: Effective, args: dict[str, Any], model: str | None, billions: float | None
) -> dict[str, Any]:
    style, kind = _style(w), _kind(w)
    table = deployment_table()
    world = int(args.get("world_size") or 1)
    group = max(w.group_size, 1)
    gpus = w.gpus if group == 1 else w.group_gpus
    per_pod = math.ceil(world / group)
    resource = RESOURCES.get(kind or "cuda", "nvidia.com/gpu")
    facts: dict[str, Any] = {
        "kind": w.kind,
        "name": w.name,
        "runs_launcher": w.runs_launcher,
        "model": model,
        "model_folder": (model or "").replace("/", "__"),
        "gpus_for_vllm": gpus,
        "gpu_kind": kind,
        "gpus_needed_per_pod": per_pod,
        "scope": "container" if group == 1 else f"{w.kind} group of {group} pods",
        "ranks_per_pod": per_pod if style != "preset" else None,
        "pod_word": "container" if style == "compose" else "pod",
        "style": style,
        "gpu_resource_name": resource,
        "image": w.image.text if w.image else None,
        "image_gpu_kind": image_kind(w.image) if w.image else None,
        "shm_present": w.shm_present,
        "shm_gib": w.shm_gib,
        "shm_text": _gib_text(w.shm_gib),
        "min_shm_gib": table["min_shm_gib"],
        "params_b": None if billions is None else round(billions, 1 if billions < 10 else None),
    }
    facts.update(_startup_facts(w, billions))
    facts.update(_grace_facts(w, eff, style, args))
    return _worded(facts, args, table["texts"])


def _worded(facts: dict[str, Any], args: dict[str, Any], texts: dict[str, Any]) -> dict[str, Any]:
    """The fragments of data/deployment_rules.yaml `texts` whose facts this workload has, filled in."""
    scope = {"deployment": facts, "args": args}
    for name, text in texts.items():
        try:
            facts[name] = rules.render(text, scope)
        except KeyError:  # a fact it needs is absent (no probe, no drain): no rule reads the fragment then
            continue
    return facts


def _startup_facts(w: Workload, billions: float | None) -> dict[str, Any]:
    probe, needed = w.startup, load_needed_s(billions)
    if not probe or not needed:
        return {}
    return {
        "startup_window_s": probe.window_s,
        "load_needed_s": needed,
        "load_needed_text": _minutes(needed),
        "startup_text": f"{probe.window_s:g} s",
        "probe": probe.kind,
        "startup_threshold": math.ceil(needed / 10),
    }


def _grace_facts(w: Workload, eff: Effective, style: str, args: dict[str, Any]) -> dict[str, Any]:
    """The grace period the drain needs: the launcher's, or vLLM's own --shutdown-timeout (vllm/v1/engine/core.py);
    plain vLLM without it aborts in-flight requests at SIGTERM and needs none."""
    table = deployment_table()
    if w.runs_launcher and eff.drain_s is not None:
        needed = eff.drain_s + table["launcher_stop_grace_s"]
        drain = {"drain_by": "launcher", "drain_s": eff.drain_s, "stop_grace_s": table["launcher_stop_grace_s"]}
    elif args.get("shutdown_timeout"):
        needed = args["shutdown_timeout"] + table["vllm_exit_margin_s"]
        drain = {"drain_by": "vllm", "exit_margin_s": table["vllm_exit_margin_s"]}
    else:
        return {}
    if w.grace_s is None:
        return {}
    return {
        "grace_s": w.grace_s,
        "grace_needed_s": int(needed) if float(needed).is_integer() else needed,
        **drain,
        "grace_field": "stop_grace_period" if style == "compose" else "terminationGracePeriodSeconds",
        "grace_default": w.grace_at is None,
    }
