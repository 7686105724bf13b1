"""Today's `launcher check` on a recorded ground-truth case, on CPU, as it ran on the GPU machine.

A record (bench/results/<gpu>-ground-truth.json) says which GPU the cases ran on; the replay uses that target
(cuda:h100, cuda:h200) with the memory the launcher detected there when the record has it (NVML reads 140.4 GiB
of an H200, the table's 141), the case's GPU count, arguments and VLLM_* environment. Used by
tests/check/test_gpu_ground_truth.py and bench/gpu/render.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from . import machine

ROOT = machine.ROOT
CASES = ROOT / "bench" / "gpu" / "cases.yaml"
OUTCOMES = ("answered", "request-failed", "exited")


def records() -> list[Path]:
    return sorted(machine.RESULTS_DIR.glob("*-ground-truth.json"))


def case_specs() -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in yaml.safe_load(CASES.read_text())["cases"]}


def target_of(record: dict[str, Any]) -> str:
    detected = record.get("launcher_platform") or {}
    return str(detected.get("target") or f"cuda:{machine.slug(record['gpu'])}")


def has_outcome(case: dict[str, Any]) -> bool:
    return "launcher" in case and case["vllm"]["outcome"] in OUTCOMES


def verdict_today(record: dict[str, Any], case: dict[str, Any]) -> Any:
    """The launcher's Verdict for the recorded case, on the recorded platform."""
    from launcher.check import platforms
    from launcher.check.verdict import check

    recorded_target = target_of(record)
    memory = (record.get("launcher_platform") or {}).get("memory_gib")

    def recorded(target: str | None, gpu_count: int | None = None) -> platforms.Platform:
        platform = platforms.from_target(recorded_target, case["gpus"])
        if memory:
            platform.memory_gib = memory
        return platform

    resolve = platforms.resolve
    platforms.resolve = recorded
    try:
        return check(
            ["--model", str(ROOT / case["model_dir"]), *case["args"]],
            target=recorded_target,
            vllm_version=record["vllm"],
            environ={**record["env"], **(case.get("env") or {})},
        )
    finally:
        platforms.resolve = resolve
