"""Check one workload: the compatibility table on its serve arguments (on the GPU its node labels name), then the
deployment rules (data/deployment_rules.yaml) on how the file runs it. Every finding carries file:line: a
table finding points at the flag its rule reads (--quantization, --tensor-parallel-size, ...), else the model.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..check import engine as rules
from ..check.arguments import ServeArgs
from ..check.config_source import ConfigRequest
from ..check.model_facts import locate_model_dir
from ..check.verdict import check
from ..check.vllm_parser import full_spellings, release_for
from ..errors import LauncherError
from .facts import (
    Effective,
    deployment_facts,
    deployment_table,
    effective,
    params_b,
    targets_for,
    version_for,
)
from .located import Loc
from .workload import Token, Workload

TP, PP = "tensor-parallel-size", "pipeline-parallel-size"
# Table facts a finding may be about -> the serve flags that set them, most likely first.
DERIVED_FLAGS = {
    "quantization": ["quantization"],
    "online_fp8": ["quantization"],
    "fp8_weights": ["quantization"],
    "accepted_quantization_flags": ["quantization"],
    "kv_cache_fp8": ["kv-cache-dtype"],
    "gpus_requested": [TP, PP],
    "vision_tp": ["mm-encoder-tp-mode", TP],
    "cpu_requested_gib": ["gpu-memory-utilization"],
    "weights_fit": ["gpu-memory-utilization", TP, "quantization"],
    "kv_fits": ["max-model-len", "gpu-memory-utilization"],
}


@dataclass(frozen=True)
class Finding(rules.Finding):
    """A finding of either table, and the file:line of the value it is about."""

    at: Loc = Loc("", 0)

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "file": self.at.file, "line": self.at.line}


@dataclass
class Result:
    workload: Workload
    findings: list[Finding]
    effective_args: list[str]
    model: str | None = None
    targets: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    vllm_version: str | None = None

    @property
    def accepted(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def as_dict(self) -> dict[str, Any]:
        w = self.workload
        return {
            "file": w.at.file,
            "line": w.at.line,
            "kind": w.kind,
            "name": w.name,
            "container": w.container,
            "accepted": self.accepted,
            "findings": [f.as_dict() for f in self.findings],
            "effective_args": self.effective_args,
            "model": self.model,
            "targets": self.targets,
            "platforms": self.platforms,
            "vllm_version": self.vllm_version,
        }


@dataclass
class Options:
    target: str | None = None
    vllm_version: str | None = None
    config_folders: list[Path] = field(default_factory=list)
    missing_models: dict[str, str] = field(default_factory=dict)  # config location -> why not found, once per run

    def locate(self, location: str) -> str | None:
        """Why the config vLLM reads (at `location`: --hf-config-path, else --model) cannot be found, or None when it
        can (the hub is asked once per run)."""
        if location not in self.missing_models:
            try:
                locate_model_dir(location, self.config_folders)
                self.missing_models[location] = ""
            except LauncherError as exc:
                self.missing_models[location] = str(exc)
        return self.missing_models[location] or None


def _spelled_out(where: list[Token], release: str) -> list[Token]:
    """The tokens with each abbreviated flag spelled out as the release's parser reads it, so a finding about
    --max-model-len points at the `--max-model-le` that set it."""
    texts = full_spellings([token.text for token in where], release)
    return [replace(token, text=text) for token, text in zip(where, texts, strict=True)]


def _flag_at(where: list[Token], name: str) -> Loc | None:
    from ..check.arguments import canonical

    for index, token in enumerate(where):
        if token.text.startswith("-") and canonical(token.text.split("=", 1)[0]) == name:
            return token.at
        if name == "model" and index == 0 and not token.text.startswith("-"):
            return token.at
    return None


def _mapped(model: str, mounts: dict[str, Path]) -> str:
    """A model path inside the container, as the path on this machine when a bind mount provides it."""
    for inside in sorted(mounts, key=len, reverse=True):
        if model == inside or model.startswith(inside + "/"):
            return str(mounts[inside]) + model[len(inside) :]
    return model


PATH_FLAGS = ("model", "hf-config-path")  # the serve flags naming where the config vLLM reads is


def served_here(parsed: ServeArgs, mounts: dict[str, Path]) -> ServeArgs:
    """The serve arguments with the container paths of the model and of --hf-config-path as this machine's (bind
    mounts); the same object when no path changes."""
    here = parsed
    for flag in PATH_FLAGS:
        value = parsed.get(flag)
        if value and _mapped(value, mounts) != value:
            here = here.with_option(flag, _mapped(value, mounts))
    return here


# -- locating the findings of the compatibility table ----------------------------------------------------------------


@functools.cache
def _table_flags() -> dict[str, list[str]]:
    """rule id -> the serve flags (or env.VAR) its conditions read, most specific first."""
    flags: dict[str, list[str]] = {}
    for entry in rules.load_table()["rules"]:
        found: list[str] = []
        for path in rules.when_paths(entry["when"]):
            scope, _, name = path.partition(".")
            if scope == "args":
                found += [TP, PP] if name == "world_size" else [name.replace("_", "-")]
            elif scope == "derived":
                found += DERIVED_FLAGS.get(name, [TP] if re.search(r"per_rank|split|block_", name) else [])
            elif scope == "env":
                found.append(f"env.{name}")
        flags[entry["id"]] = list(dict.fromkeys(found))
    return flags


def _table_location(rule_id: str, w: Workload, eff: Effective) -> Loc:
    for flag in _table_flags().get(rule_id, []):
        if flag.startswith("env."):
            if flag[4:] in eff.env:
                return eff.env[flag[4:]].at
            continue
        at = _flag_at(eff.where, flag)
        if at:
            return at
    return _flag_at(eff.where, "model") or w.at


def _deployment_location(at_key: str, w: Workload, eff: Effective) -> Loc:
    places = {
        "gpus": w.gpus_at,
        "group": w.group_at,
        "shm": w.shm_at,
        "startup": w.startup.at if w.startup else None,
        "grace": w.grace_at,
        "model": _flag_at(eff.where, "model"),
        "args": eff.where[0].at if eff.where else None,
        "labels": w.gpu_labels[0].at if w.gpu_labels else None,
        "image": w.image.at if w.image else None,
    }
    return places.get(at_key) or w.at


# -- one workload -----------------------------------------------------------------------------------------------------


def _parse(eff: Effective, result: Result, release: str | None) -> tuple[dict[str, Any], str | None, ServeArgs | None]:
    """The serve arguments as rule facts (vLLM's defaults filled in; abbreviations read as `release`'s parser reads
    them), or why they cannot be read; and the split arguments."""
    if eff.error:
        return {}, eff.error, None
    try:
        parsed = ServeArgs.parse(eff.texts, release)
        args = {**parsed.facts(), "shutdown_timeout": parsed.get_int("shutdown-timeout")}
    except LauncherError as exc:
        return {}, str(exc), None
    result.model, result.effective_args = parsed.model, parsed.argv()
    if not parsed.model:
        return args, "no model given: vLLM needs --model (or the model as the first argument)", parsed
    return args, None, parsed


def _table_findings(
    result: Result, eff: Effective, argv: list[str], version: str, options: Options
) -> tuple[dict[str, Any], str | None]:
    """The compatibility table on each target; (the first verdict's facts, or why the check could not run)."""
    w, facts = result.workload, dict[str, Any]()
    environ = {k: v.text for k, v in eff.env.items() if k.startswith("VLLM_")}
    for target in result.targets:
        try:
            verdict = check(argv, target, version, options.config_folders, environ)
        except LauncherError as exc:
            return facts, str(exc)
        facts = facts or verdict.facts
        result.platforms.append(verdict.platform.describe())
        prefix = f"on {verdict.platform.gpu}: " if len(result.targets) > 1 else ""
        for f in verdict.findings:
            finding = Finding(f.rule, f.severity, prefix + f.message, f.fix, f.source, _table_location(f.rule, w, eff))
            if not any(
                (seen.rule, seen.at, seen.fix) == (finding.rule, finding.at, finding.fix) for seen in result.findings
            ):
                result.findings.append(finding)
    return facts, None


def check_workload(w: Workload, options: Options) -> Result:
    eff = effective(w)
    result = Result(w, [], eff.texts)
    version, image_version_unknown, version_error = None, None, None
    try:
        version, image_version_unknown = version_for(w, eff.vllm_version, options.vllm_version)
        result.vllm_version = version
    except LauncherError as exc:
        version_error = str(exc)
    release = release_for(version) if version else None
    args, error, parsed = _parse(eff, result, release)
    if release:
        eff.where = _spelled_out(eff.where, release)
    error = error or version_error
    result.targets, source, unknown_label = targets_for(w, eff.target, options.target)
    here = served_here(parsed, w.mounts) if parsed is not None and result.model else None
    request = ConfigRequest.from_args(here) if here is not None else None  # the config vLLM reads, as check does
    model_error = options.locate(request.location) if request and error is None else None
    facts: dict[str, Any] = {}
    if here is not None and version and error is None and model_error is None:
        argv = eff.texts if here is parsed else here.argv()
        facts, error = _table_findings(result, eff, argv, version, options)
    billions = params_b(request, options.config_folders) if request and error is None and model_error is None else None
    deployment = deployment_facts(w, eff, args, result.model, billions)
    deployment.update(
        {
            "args_error": error,
            "model_error": model_error,
            "target": ", ".join(result.targets),
            "target_source": source,
            "unknown_gpu_label": unknown_label,
            "image_version_unknown": image_version_unknown,
            "vllm_version": version,
        }
    )
    all_facts = {
        "vllm": {"version": version or "0"},
        **facts,
        "args": {**args, **facts.get("args", {})},
        "deployment": deployment,
    }
    table = deployment_table()
    for f in rules.evaluate(all_facts, table["parsed_rules"]):
        result.findings.append(
            Finding(f.rule, f.severity, f.message, f.fix, f.source, _deployment_location(table["at"][f.rule], w, eff))
        )
    result.findings.sort(key=lambda f: rules.SEVERITIES.index(f.severity))
    return result
