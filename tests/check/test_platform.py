"""Platform probes and targets: CPU flags, NUMA memory as vLLM computes it, AMD sysfs, unknown targets."""

from pathlib import Path

import pytest

from launcher.check import platforms as platform
from launcher.errors import LauncherError


def test_targets_carry_capability_and_arch() -> None:
    assert platform.from_target("cuda:h100").capability == 9.0
    assert platform.from_target("rocm:mi300x").gfx == "gfx942"
    assert platform.from_target("cpu:avx2").cpu_flags == ["avx2"]


def test_unknown_target_lists_the_known_ones() -> None:
    with pytest.raises(LauncherError, match="known targets: .*cuda:h100"):
        platform.from_target("cuda:h1000")


def test_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 avx512f amx_tile\n")
    assert platform.read_cpu_flags(cpuinfo) == ["avx2", "avx512f", "amx_tile"]


def test_numa_available_memory_as_vllm_counts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    meminfo = tmp_path / "meminfo"
    kb = {
        "MemTotal": 8 << 20,
        "MemFree": 2 << 20,
        "Active(file)": 1 << 20,
        "Inactive(file)": 1 << 20,
        "SReclaimable": 1 << 20,
        "AnonPages": 3 << 20,
    }
    meminfo.write_text("".join(f"Node 0 {key}: {value} kB\n" for key, value in kb.items()))
    monkeypatch.setattr(platform, "_cgroup_memory", lambda: (None, None))
    assert platform.read_numa_node0_gib(meminfo) == (8.0, 5.0)
    monkeypatch.setattr(platform, "_cgroup_memory", lambda: (6 << 30, 2 << 30))
    assert platform.read_numa_node0_gib(meminfo) == (6.0, 4.0)


def test_amd_probe_reads_kfd_topology(tmp_path: Path) -> None:
    for index, version in enumerate(["0", "90402", "90402"]):
        node = tmp_path / str(index)
        node.mkdir()
        (node / "properties").write_text(f"cpu_cores_count 0\ngfx_target_version {version}\n")
    detected = platform.probe_amd(tmp_path)
    assert detected is not None
    assert (detected.gfx, detected.gpu_count, detected.target) == ("gfx942", 2, "rocm:mi300x")
