"""The platform vLLM will run on: a `--target` from data/platforms.yaml, or detected.

One small probe per platform, as vLLM's platforms/__init__.py does: NVIDIA through NVML
(nvidia-ml-py), AMD through amdsmi or the kfd sysfs topology, else the CPU and its flags.
Each probe returns a Platform or None and logs why at debug level.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import settings
from ..errors import LauncherError
from ..resources import data_file

log = logging.getLogger(__name__)

GIB = 1024**3
CPU_ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


@dataclass
class Platform:
    target: str
    kind: str  # cuda | rocm | cpu
    gpu: str
    capability: float | None = None
    gfx: str | None = None
    memory_gib: float | None = None
    multiprocessors: int | None = None  # SMs (CUDA) or CUs (ROCm): the sampler's Triton buffer has one row each
    gpu_count: int = 1
    cpu_flags: list[str] = field(default_factory=list)
    numa_total_gib: float | None = None
    numa_available_gib: float | None = None
    detected: bool = False

    def describe(self) -> str:
        if self.kind == "cuda":
            return f"{self.gpu} (CUDA capability {self.capability})"
        if self.kind == "rocm":
            return f"{self.gpu} ({self.gfx})"
        isa = "AVX-512" if "avx512f" in self.cpu_flags else "AVX2" if "avx2" in self.cpu_flags else "no AVX2"
        return f"CPU ({isa}{', AMX' if 'amx_tile' in self.cpu_flags else ''})"

    def facts(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "gpu": self.gpu,
            "capability": self.capability,
            "gfx": self.gfx,
            "memory_gib": self.memory_gib,
            "gpu_count": self.gpu_count,
            "cpu_flags": self.cpu_flags,
            "has_avx512": "avx512f" in self.cpu_flags,
            "has_amx": "amx_tile" in self.cpu_flags,
            "numa_total_gib": self.numa_total_gib,
            "numa_available_gib": self.numa_available_gib,
            "description": self.describe(),
            "detected": self.detected,
        }


@functools.cache
def known_targets() -> dict[str, dict[str, Any]]:
    with data_file("platforms.yaml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)["targets"]


def from_target(target: str, gpu_count: int | None = None) -> Platform:
    spec = known_targets().get(target.lower())
    if spec is None:
        raise LauncherError(f"unknown --target {target!r}; known targets: {', '.join(known_targets())}")
    return Platform(
        target=target.lower(),
        kind=spec["kind"],
        gpu=spec["gpu"],
        capability=spec.get("capability"),
        gfx=spec.get("gfx"),
        memory_gib=spec.get("memory_gib"),
        multiprocessors=spec.get("multiprocessors"),
        gpu_count=gpu_count or (0 if spec["kind"] == "cpu" else 1),
        cpu_flags=list(spec.get("cpu_flags", [])),
    )


def _target_for_name(kind: str, name: str) -> str | None:
    upper = name.upper()
    for key, spec in known_targets().items():
        if spec["kind"] == kind and any(m.upper() in upper for m in spec.get("match", [])):
            return key
    return None


def probe_nvidia() -> Platform | None:
    try:
        import pynvml  # nvidia-ml-py
    except ImportError:
        log.debug("no NVIDIA probe: nvidia-ml-py is not installed")
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
        log.debug("no NVIDIA GPU: %s", exc)
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if count == 0:
            return None
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        name = name.decode() if isinstance(name, bytes) else name
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle).total / GIB
    finally:
        pynvml.nvmlShutdown()
    target = _target_for_name("cuda", name) or f"cuda:sm{major}{minor}"
    return Platform(
        target,
        "cuda",
        name,
        capability=float(f"{major}.{minor}"),
        memory_gib=round(memory, 1),
        multiprocessors=known_targets().get(target, {}).get("multiprocessors"),
        gpu_count=count,
        detected=True,
    )


def probe_amd(sysfs: Path = Path("/sys/class/kfd/kfd/topology/nodes")) -> Platform | None:
    gpus: list[tuple[str, str]] = []
    if not sysfs.is_dir():
        log.debug("no AMD GPU: %s is absent", sysfs)
        return None
    for node in sorted(sysfs.iterdir()):
        props = (node / "properties").read_text() if (node / "properties").is_file() else ""
        match = re.search(r"gfx_target_version (\d+)", props)
        if not match or match.group(1) == "0":
            continue
        version = int(match.group(1))
        gfx = f"gfx{version // 10000}{(version // 100) % 100:x}{version % 100:x}"
        name = (node / "name").read_text().strip() if (node / "name").is_file() else gfx
        gpus.append((gfx, name))
    if not gpus:
        return None
    gfx, name = gpus[0]
    # Several products share a gfx arch (MI300X and MI325X are gfx942): take the smaller memory, the safe guess.
    candidates = sorted(
        (s["memory_gib"], k) for k, s in known_targets().items() if s["kind"] == "rocm" and s.get("gfx") == gfx
    )
    target = _target_for_name("rocm", name) or (candidates[0][1] if candidates else f"rocm:{gfx}")
    spec = known_targets().get(target, {})
    return Platform(
        target,
        "rocm",
        spec.get("gpu", name),
        gfx=gfx,
        memory_gib=spec.get("memory_gib"),
        multiprocessors=spec.get("multiprocessors"),
        gpu_count=len(gpus),
        detected=True,
    )


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    try:
        text = cpuinfo.read_text()
    except OSError:
        return []
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    return [flag for flag in CPU_ISA_FLAGS if flag in flags]


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


def _cgroup_memory() -> tuple[int | None, int | None]:
    """The container's memory limit and usage (cgroup v2, else v1), as vLLM's CPU worker reads them."""
    limit = _read_int("/sys/fs/cgroup/memory.max")
    usage = _read_int("/sys/fs/cgroup/memory.current")
    if limit is None:
        limit = _read_int("/sys/fs/cgroup/memory/memory.limit_in_bytes")
        usage = _read_int("/sys/fs/cgroup/memory/memory.usage_in_bytes")
        if limit is not None and limit >= 1 << 62:
            limit = None
    return limit, usage


def read_numa_node0_gib(meminfo: Path = Path("/sys/devices/system/node/node0/meminfo")) -> tuple[float, float]:
    """Total and available memory of NUMA node 0, computed as vLLM's CPU worker does.

    available = MemFree + Active(file) + Inactive(file) + SReclaimable, both clamped to the cgroup
    limit (vllm/utils/cpu_resource_utils.py get_memory_node_info, vLLM 0.32).
    """
    if meminfo.is_file():
        values: dict[str, int] = {}
        for line in meminfo.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 4:
                values[parts[2].rstrip(":")] = int(parts[3]) * 1024
        total = values["MemTotal"]
        available = sum(values.get(k, 0) for k in ("MemFree", "Active(file)", "Inactive(file)", "SReclaimable"))
    else:
        import psutil

        memory = psutil.virtual_memory()
        total, available = memory.total, memory.available
    limit, usage = _cgroup_memory()
    if limit is not None and limit < total:
        total = limit
        available = max(0, min(available, limit - (usage or 0)))
    return total / GIB, available / GIB


def probe_cpu() -> Platform:
    flags = read_cpu_flags()
    total, available = read_numa_node0_gib()
    target = "cpu:amx" if "amx_tile" in flags else "cpu:avx512" if "avx512f" in flags else "cpu:avx2"
    return Platform(
        target,
        "cpu",
        "none",
        cpu_flags=flags,
        gpu_count=0,
        numa_total_gib=round(total, 2),
        numa_available_gib=round(available, 2),
        detected=True,
    )


def detect() -> Platform:
    if settings.get("LAUNCHER_TARGET"):
        return from_target(settings.get("LAUNCHER_TARGET"))
    return probe_nvidia() or probe_amd() or probe_cpu()


def resolve(target: str | None, gpu_count: int | None = None) -> Platform:
    """The platform of `--target`, or the detected one."""
    if target is None:
        platform = detect()
        if gpu_count:
            platform.gpu_count = gpu_count
        return platform
    return from_target(target, gpu_count)
