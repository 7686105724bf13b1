"""Predicted vs observed on the GPU: one `launcher serve --record` start per case of plan_cases.yaml, one at a time.

Each case gets the GPU to itself (memory profiling measures everything on the device): `launcher serve --skip-check
--record starts.jsonl -- --model <dir> --load-format dummy <args>` starts vLLM, the launcher predicts, reads vLLM's
log lines and appends predicted + observed + error to the record (launcher/serve/prediction.py); the start is
stopped as soon as its record line is in (or vLLM exits, or its time is up). Between two starts the harness waits
until the GPU's memory is free again. What comes back: `<gpu>-plan-starts.json` (per case: the record, or why there
is none; timings) and `plan-starts-logs.tar.gz` (the launcher's and vLLM's output per case).

    # on the GPU machine, after `make gpu-install`:
    python3 -m bench.gpu.plan_starts --out $OUT [--cases id,id] [--deadline 540]
    # here: write bench/gpu/models/<id>/ for every case (committed), or try the harness on the stand-in vLLM
    .venv/bin/python -m bench.gpu.plan_starts prepare
    .venv/bin/python -m bench.gpu.plan_starts --dry-run --out bench/out/plan-starts-dry
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

from . import machine, models
from .front_door import stop
from .ground_truth import HARNESS_ENV, free_port, say

CASES = models.ROOT / "bench" / "gpu" / "plan_cases.yaml"


def used_mib() -> int | None:
    """Memory in use on GPU 0 (nvidia-smi), None without one."""
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return None
    first = done.stdout.strip().splitlines()[:1]
    return int(first[0]) if first and first[0].strip().isdigit() else None


def wait_for_free_gpu(limit_mib: int = 2048, timeout: float = 60) -> float:
    """Seconds waited until less than `limit_mib` is in use (a stopped vLLM's memory is released late)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        used = used_mib()
        if used is None or used < limit_mib:
            break
        time.sleep(1)
    return round(time.monotonic() - started, 1)


def records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_case(case: dict[str, Any], model: Path, record: Path, logs: Path, env: dict[str, str]) -> dict[str, Any]:
    """One start behind the launcher, stopped once its record is written: the record and the timings."""
    before = len(records(record))
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "launcher.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--skip-check",
        "--record",
        str(record),
        "--",
        "--model",
        str(model),
        "--load-format",
        "dummy",
        *case.get("args", []),
    ]
    child_env = {**env, **{k: str(v) for k, v in (case.get("env") or {}).items()}}
    started = time.monotonic()
    limit = float(case.get("seconds", 60)) * 3
    with open(logs / f"{case['id']}.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
        outcome = "timeout"
        while time.monotonic() - started < limit:
            if len(records(record)) > before:
                outcome = "recorded"
                break
            if process.poll() is not None:
                outcome = f"exited {process.returncode}"
                break
            time.sleep(0.5)
        seconds = round(time.monotonic() - started, 1)
        stop(process)
    new = records(record)[before:]
    tail = (logs / f"{case['id']}.log").read_text(errors="replace").splitlines()[-5:]
    return {
        "id": case["id"],
        "note": case.get("note", ""),
        "args": case.get("args", []),
        "outcome": outcome,
        "seconds": seconds,
        "record": new[-1] if new else None,
        **({} if new else {"log_tail": tail}),
    }


def replay_log(scratch: Path) -> Path:
    """--dry-run: a real H200 start's output (the ground-truth run's llama3-8b-bf16), for the stand-in to replay."""
    tarball = machine.RESULTS_DIR / "h200-ground-truth-logs" / "run1-vllm-logs.tar.gz"
    scratch.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("llama3-8b-bf16.log"))
        handle = tar.extractfile(member)
        assert handle is not None, member.name
        (scratch / "replay.log").write_bytes(handle.read())
    return scratch / "replay.log"


def write(out: Path, body: dict[str, Any], logs: Path) -> None:
    name = machine.results_path(body["gpu"], "plan-starts").name
    (out / f"{name}.tmp").write_text(json.dumps(body, indent=2) + "\n")
    (out / f"{name}.tmp").replace(out / name)
    with tarfile.open(out / "plan-starts-logs.tar.gz.tmp", "w:gz") as tar:
        tar.add(logs, arcname="logs")
    (out / "plan-starts-logs.tar.gz.tmp").replace(out / "plan-starts-logs.tar.gz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("run", "prepare"), default="run")
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    parser.add_argument("--scratch", default="/var/tmp/plan-starts")
    parser.add_argument("--cases", help="comma-separated case ids (default: all, in the file's order)")
    parser.add_argument("--deadline", type=float, default=540, help="seconds: start no case that would end later")
    parser.add_argument("--dry-run", action="store_true", help="the stand-in vLLM (tests/harness/fake_vllm.py)")
    options = parser.parse_args()
    cases = models.load_cases(CASES)
    if options.cases:
        wanted = options.cases.split(",")
        unknown = sorted(set(wanted) - {case["id"] for case in cases})
        if unknown:
            parser.error(f"unknown case ids: {', '.join(unknown)}")
        cases = [case for case in cases if case["id"] in wanted]
    if options.command == "prepare":
        for path in models.prepare(cases):
            print(path.relative_to(models.ROOT))
        return 0
    started = time.monotonic()
    out, scratch = Path(options.out), Path(options.scratch)
    logs, record = scratch / "logs", scratch / "starts.jsonl"
    logs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    extra = {**HARNESS_ENV}
    if options.dry_run:
        replay = replay_log(scratch)
        extra.update(LAUNCHER_VLLM_ENTRYPOINT="tests.harness.fake_vllm", FAKE_VLLM_LOG=str(replay))
    env = machine.child_env(extra)
    body: dict[str, Any] = {
        **machine.facts("NVIDIA H200" if options.dry_run else None),
        "method": "one `launcher serve --skip-check --record` start per case, the GPU to itself, random weights "
        "(--load-format dummy); stopped once the record (predicted, observed, error) is written",
        "env": HARNESS_ENV,
        "dry_run": options.dry_run,
        "cases": [],
        "skipped": [],
    }
    try:
        for case in cases:
            elapsed = time.monotonic() - started
            if elapsed + float(case.get("seconds", 60)) > options.deadline:
                body["skipped"].append({"id": case["id"], "reason": f"would end after {options.deadline:.0f} s"})
                continue
            waited = wait_for_free_gpu()
            model = models.materialize(case, scratch / "models", scratch / "tokenizer")
            result = run_case(case, model, record, logs, env)
            result["waited_for_gpu_seconds"] = waited
            body["cases"].append(result)
            error = (result["record"] or {}).get("error")
            say(f"{case['id']}: {result['outcome']} in {result['seconds']} s, error {error}")
            write(out, body, logs)
        return 0
    finally:
        body["seconds"] = round(time.monotonic() - started, 1)
        write(out, body, logs)


if __name__ == "__main__":
    sys.exit(main())
