"""The GPU machine the harnesses run on: its facts, the name its results go under, and the children's environment.

Shared by ground_truth.py and front_door.py. On the GPU machine the image's python3 has torch but neither vLLM
(the wheel bundle puts it into /tmp/site) nor the launcher (server/ of this checkout): `child_env` puts both on
PYTHONPATH, so `python3 -m bench.gpu.ground_truth run` works without any PYTHONPATH of its own.
"""

from __future__ import annotations

import datetime
import os
import platform as host
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = ROOT / "bench" / "results"
# Where install-on-device.sh puts the bundle's wheels (/work/shared/gpu/README.md); SITE overrides it.
DEFAULT_SITE = "/tmp/site"
# Paths a wheel's .pth file adds when it is installed into a real site-packages; a PYTHONPATH directory never runs
# .pth files, so these are put on PYTHONPATH by hand: nvidia-cutlass-dsl (vLLM 0.26's CuTe-DSL attention, `import
# cutlass`) keeps its packages under nvidia_cutlass_dsl/dsl_packages (its nvidia_cutlass_dsl_packages.pth).
PTH_PATHS = ("nvidia_cutlass_dsl/dsl_packages",)


def python_path(environ: Mapping[str, str] | None = None) -> str:
    """server/ of this checkout, the bundle's site directory (when there), then what PYTHONPATH already had."""
    environ = os.environ if environ is None else environ
    site = environ.get("SITE", DEFAULT_SITE)
    sites = [site] if Path(site).is_dir() else []
    sites += [str(Path(site) / extra) for extra in PTH_PATHS if (Path(site) / extra).is_dir()]
    parts = [str(ROOT / "server"), str(ROOT), *sites]
    parts += [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p not in parts]
    return os.pathsep.join(parts)


def child_env(extra: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the launcher and vLLM children: PYTHONPATH as python_path, plus `extra`."""
    environ = os.environ if environ is None else environ
    return {**environ, "PYTHONPATH": python_path(environ), **(extra or {})}


def slug(gpu_name: str) -> str:
    """'NVIDIA H200' -> 'h200', 'NVIDIA H100 80GB HBM3' -> 'h100': the model number names the results file."""
    match = re.search(r"\b([A-Z]{1,3}\d{2,4}[A-Z]?)\b", gpu_name.upper().replace("NVIDIA", ""))
    return match.group(1).lower() if match else "gpu"


def results_path(gpu_name: str, what: str) -> Path:
    """bench/results/<gpu>-<what>.json, e.g. h200-ground-truth.json."""
    return RESULTS_DIR / f"{slug(gpu_name)}-{what}.json"


def _smi(*args: str) -> str:
    try:
        done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _version(module: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}; print({module}.__version__)"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=300,
    )
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else "not importable"


def _launcher_platform(target: str | None) -> dict[str, Any]:
    """What the launcher itself detects (target, memory it reads through NVML): the CPU re-check replays it.
    `target` (a dry run without the GPU) replaces the detection."""
    code = f"import json; from launcher.check import platforms as p; print(json.dumps(p.resolve({target!r}).facts()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60)
    import json

    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"problem": (done.stderr or done.stdout).strip()[-300:]}


def facts(gpu_name: str | None = None, target: str | None = None) -> dict[str, Any]:
    """GPU name, count, compute capability, memory, driver; torch, vLLM, Python; what the launcher detects."""
    rows = [
        line.split(", ")
        for line in _smi(
            "--query-gpu=name,compute_cap,memory.total,driver_version", "--format=csv,noheader,nounits"
        ).splitlines()
        if line.strip()
    ]
    first = rows[0] if rows and len(rows[0]) == 4 else ["unknown", "unknown", "0", "unknown"]
    name = gpu_name or first[0]
    return {
        "gpu": name,
        "gpu_count": len(rows),
        "capability": first[1],
        "memory_mib": int(first[2]) if first[2].isdigit() else None,
        "driver": first[3],
        "torch": _version("torch"),
        "vllm": _version("vllm"),
        "python": host.python_version(),
        "launcher_platform": _launcher_platform(target),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
