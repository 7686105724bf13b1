"""The check's only IO, done once: the compatibility table, config.json (a local folder, the HF cache, saved configs
or the hub), the platform (`--target` or the hardware probes), the vLLM release and the VLLM_* environment.

Everything after this (check/derive.py, check/engine.py, check/verdict.py evaluate) is pure: the planner evaluates
24 profiles on one `Inputs`, the pre-flight one workload per `Inputs`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.specifiers import SpecifierSet
from packaging.version import Version

from ..errors import LauncherError
from . import engine, platforms
from .arguments import ServeArgs
from .config_source import ConfigRequest
from .derive import parsed_facts
from .model_facts import DEFAULT_MAX_LEN_RULES, ModelFacts, load_model
from .platforms import Platform
from .versions import resolve_version, version_data


@dataclass(frozen=True)
class Inputs:
    """What the check reads from outside: the arguments, the model, the platform, the release, the table."""

    args: ServeArgs
    model: ModelFacts
    platform: Platform
    vllm_version: str
    vllm: dict[str, Any]  # that release's table entry and its derived facts (data/vllm/<release>.json)
    table: dict[str, Any]
    env: dict[str, str]  # the VLLM_* variables vLLM will see
    parsed: dict[str, Any] = field(default_factory=dict)  # the values the release's own parser produced

    def with_args(self, argv: list[str]) -> Inputs:
        """The same model, platform and release with other serve arguments (a planner profile)."""
        return replace(self, args=parse_args(argv, self.vllm.get("release")))


def parse_args(argv: list[str], release: str | None = None) -> ServeArgs:
    args = ServeArgs.parse(argv, release)
    if not args.model:
        raise LauncherError("no model given: pass --model PATH_OR_HF_ID (or the model as the first argument)")
    return args


def vllm_env(environ: Mapping[str, str]) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key.startswith("VLLM_")}


def gather(
    argv: list[str],
    target: str | None = None,
    vllm_version: str | None = None,
    config_folders: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
    gpu_count: int | None = None,
    namespace: Any = None,
    platform: Platform | None = None,
) -> Inputs:
    """Read everything once; `environ` replaces this process's environment as the source of VLLM_* variables (a
    deployment file's container env, for `launcher check --from`); `namespace` is what the release's own parser
    made of argv (check/vllm_parser.py): its --hf-overrides and --disable-sliding-window shape the model config;
    `platform` is the one the caller already resolved from `target` (check/verdict.py), not probed again."""
    table = engine.load_table()
    platform = platform or platforms.resolve(target, gpu_count=gpu_count)
    version = resolve_version(vllm_version, table, platform.kind)
    vllm = version_data(version, table)
    args = parse_args(argv, vllm["release"])
    overrides = getattr(namespace, "hf_overrides", None)
    max_len_rules = {
        **(vllm["max_len"] or DEFAULT_MAX_LEN_RULES),
        "rope_scaling_override_applies": Version(version) in SpecifierSet(table["rope_scaling_override_applies"]),
    }
    request = ConfigRequest.from_parsed(args.model or "", namespace)
    model = load_model(args.model or "", config_folders, request).as_served(
        overrides if isinstance(overrides, dict) else None,
        max_len_rules,
        bool(getattr(namespace, "disable_sliding_window", False)),
    )
    env = vllm_env(os.environ if environ is None else environ)
    return Inputs(args, model, platform, version, vllm, table, env, parsed_facts(namespace))
