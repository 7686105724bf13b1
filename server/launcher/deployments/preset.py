"""Presets (configs/presets/<name>.yaml) as workloads: a preset file given to --from, or `launcher serve --preset`
inside a compose service or a container. The preset names its own target and vLLM version."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..serve.presets import Preset, load_preset, presets_dir
from .located import Doc, Loc, load_all, loc
from .workload import Token, Workload, tokens_of


def is_preset(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("args"), list) and "target" in doc


def workloads(doc: Doc, file: str) -> list[Workload]:
    at = loc(doc, fallback=Loc(file, 1))
    workload = Workload(
        file,
        at,
        "preset",
        Path(file).stem,
        "-",
        tokens_of(doc["args"], loc(doc, "args")),
        runs_launcher=True,
        env=_env(doc.get("env")),
    )
    workload.target = Token(str(doc["target"]), loc(doc, "target"))
    if doc.get("vllm_version"):
        workload.vllm_version = Token(str(doc["vllm_version"]), loc(doc, "vllm_version"))
    workload.shm_present = None
    return [workload]


def _env(env: Any) -> dict[str, Token]:
    return {str(k): Token(str(v), loc(env, k)) for k, v in (env or {}).items()} if isinstance(env, dict) else {}


def named(name: str) -> tuple[Preset, Workload]:
    """`launcher serve --preset NAME`: the preset and its file read as a workload (for its values' lines)."""
    preset = load_preset(name)  # LauncherError when unknown
    path = presets_dir() / f"{name}.yaml"
    shown = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else str(path)
    (doc,) = [d for d in load_all(path.read_text(), shown) if d]
    return preset, workloads(doc, shown)[0]
