"""The front door on the GPU: the same vLLM process measured directly and through `launcher serve`, A-B-B-A.

`launcher serve` starts vLLM (the Llama-3-8B shape: Llama-3.1-8B-Instruct's config, all 32 layers, random
weights, `--max-model-len 2048`, vLLM's defaults otherwise: CUDA graphs, torch.compile) behind the front door.
One warm-up run (discarded) goes to vLLM's own port; then `vllm bench serve` (random dataset, 512 in / 256 out,
--ignore-eos, --max-concurrency C) alternates direct (A) and front door (B) in the order A B, B A, A B, ...: each
pair is a round, and the order flips every round so that a drift over time (clocks, caches) falls on both sides
alike. Recorded per run: output tok/s, TTFT / ITL / TPOT p50 and p99; per round: front door / direct throughput
and the latency added; over the rounds: the median ratio and its spread (max - min). The JSON is rewritten after
every run; a round that would not finish before --deadline is not started.

    # on the GPU machine, after `make gpu-install` (PYTHONPATH is set here: server/ and /tmp/site):
    python3 -m bench.gpu.front_door --out $OUT [--rounds 3] [--prompts 800] [--concurrency 64]
    # here, without a GPU: a stand-in vLLM (tests/harness/fake_vllm.py) and a tiny load, to try the harness
    .venv/bin/python -m bench.gpu.front_door --dry-run --out bench/out/front-door-dry
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import machine, models
from .ground_truth import HARNESS_ENV, free_port, say

METRICS = (
    "output_throughput",
    "total_token_throughput",
    "request_throughput",
    "completed",
    "duration",
    "p50_ttft_ms",
    "p99_ttft_ms",
    "p50_itl_ms",
    "p99_itl_ms",
    "p50_tpot_ms",
    "p99_tpot_ms",
)
FAKE_ENTRYPOINT = "tests.harness.fake_vllm"  # --dry-run's stand-in for vLLM
LOAD = {"dataset": "random", "input_len": 512, "output_len": 256, "ignore_eos": True}


def model_dir(scratch: Path) -> Path:
    """The whole Llama-3-8B shape (Llama-3.1-8B-Instruct's config, all 32 layers) with the harness tokenizer."""
    case = {"id": "llama3-8b-full", "source": "meta-llama__Llama-3.1-8B-Instruct"}
    target = scratch / "models" / case["id"]
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(models.shrunk_config(case), indent=2))
    tokenizer = scratch / "tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        models.build_tokenizer(tokenizer)
    for item in tokenizer.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    return target


def get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read()) if response.status == 200 else None
    except Exception:  # not up yet, 503 while loading
        return None


def bench(
    model: Path, port: int, prompts: int, concurrency: int, logs: Path, name: str, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """One `vllm bench serve` run against a port: its METRICS, or the end of its log as `error`."""
    if env.get("LAUNCHER_VLLM_ENTRYPOINT") == FAKE_ENTRYPOINT:
        return dry_bench(port, prompts, concurrency)
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.cli.main",
        "bench",
        "serve",
        "--backend",
        "vllm",
        "--base-url",
        f"http://127.0.0.1:{port}",
        "--model",
        str(model),
        "--dataset-name",
        "random",
        "--random-input-len",
        str(LOAD["input_len"]),
        "--random-output-len",
        str(LOAD["output_len"]),
        "--num-prompts",
        str(prompts),
        "--max-concurrency",
        str(concurrency),
        "--ignore-eos",
        "--percentile-metrics",
        "ttft,tpot,itl",
        "--metric-percentiles",
        "50,99",
        "--disable-tqdm",
        "--save-result",
        "--result-dir",
        str(logs),
        "--result-filename",
        f"{name}.json",
    ]
    started = time.perf_counter()
    with open(logs / f"{name}.log", "wb") as log:
        try:
            subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"error": f"no result within {timeout:.0f} s"}
    try:
        result = json.loads((logs / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"error": (logs / f"{name}.log").read_text(errors="replace")[-600:]}
    return {**{key: result.get(key) for key in METRICS}, "wall_seconds": round(time.perf_counter() - started, 1)}


def dry_bench(port: int, prompts: int, concurrency: int) -> dict[str, Any]:
    """--dry-run's stand-in for `vllm bench serve`: non-streamed 16-token completions, the same keys."""
    from concurrent.futures import ThreadPoolExecutor

    body = json.dumps({"model": "dry", "prompt": "x", "max_tokens": 16}).encode()

    def one(_: int) -> float:
        start = time.perf_counter()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
        return (time.perf_counter() - start) * 1000

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(one, range(prompts)))
    duration = time.perf_counter() - started
    p50, p99 = latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return {
        "output_throughput": prompts * 16 / duration,
        "total_token_throughput": prompts * 17 / duration,
        "request_throughput": prompts / duration,
        "completed": prompts,
        "duration": duration,
        "p50_ttft_ms": p50,
        "p99_ttft_ms": p99,
        "p50_itl_ms": 0.0,
        "p99_itl_ms": 0.0,
        "p50_tpot_ms": 0.0,
        "p99_tpot_ms": 0.0,
        "wall_seconds": round(duration, 1),
    }


def compare(direct: dict[str, Any], door: dict[str, Any]) -> dict[str, Any]:
    """Front door against direct for one round: throughput ratio and the latency it adds."""
    if "error" in direct or "error" in door:
        return {}
    return {
        "throughput_ratio": round(door["output_throughput"] / direct["output_throughput"], 4),
        **{
            f"{key.replace('_ms', '')}_added_ms": round(door[key] - direct[key], 3)
            for key in ("p50_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p99_itl_ms")
        },
    }


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread of the per-round figures."""
    done = [r["compare"] for r in rounds if r.get("compare")]
    if not done:
        return {}
    out: dict[str, Any] = {"rounds": len(done)}
    for key in done[0]:
        values = [d[key] for d in done]
        out[key] = {
            "median": round(statistics.median(values), 4),
            "min": min(values),
            "max": max(values),
            "spread": round(max(values) - min(values), 4),
            "per_round": values,
        }
    return out


def start_launcher(
    model: Path, port: int, args: list[str], env: dict[str, str], log_path: Path, dry_run: bool
) -> subprocess.Popen[bytes]:
    own = ["--skip-check"] if dry_run else []  # the CPU here is not what the arguments are for
    command = [
        sys.executable,
        "-m",
        "launcher.cli",
        "serve",
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        *own,
        "--",
        "--model",
        str(model),
        "--load-format",
        "dummy",
        "--max-model-len",
        "2048",
        *args,
    ]
    with open(log_path, "wb") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    for sig, wait in ((signal.SIGTERM, 60), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def write(out: Path, body: dict[str, Any], logs: Path) -> None:
    name = machine.results_path(body["gpu"], "front-door").name
    (out / f"{name}.tmp").write_text(json.dumps(body, indent=2) + "\n")
    (out / f"{name}.tmp").replace(out / name)
    with tarfile.open(out / "front-door-logs.tar.gz.tmp", "w:gz") as tar:
        tar.add(logs, arcname="logs")
    (out / "front-door-logs.tar.gz.tmp").replace(out / "front-door-logs.tar.gz")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    parser.add_argument("--scratch", default="/var/tmp/front-door")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts", type=int, default=1000, help="prompts per measured run, at least")
    parser.add_argument("--warmup-prompts", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--min-seconds", type=float, default=60, help="each measured run lasts at least this long")
    parser.add_argument("--quantization", default="", help="e.g. fp8 (default: BF16)")
    parser.add_argument("--kv-cache-dtype", default="", help="e.g. fp8 (default: the model's dtype)")
    parser.add_argument("--deadline", type=float, default=560, help="seconds: start no run that would end later")
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument("--dry-run", action="store_true", help="tests/harness/fake_vllm.py instead of vLLM, tiny load")
    options = parser.parse_args()
    started = time.monotonic()
    out, scratch = Path(options.out), Path(options.scratch)
    logs = scratch / "logs"  # only the tarball goes to --out: the device returns at most 8 files
    logs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    extra = {**HARNESS_ENV}
    if options.dry_run:
        extra.update(
            LAUNCHER_VLLM_ENTRYPOINT=FAKE_ENTRYPOINT,
            FAKE_VLLM="token-ms=2",
        )
    env = machine.child_env(environ={**os.environ, **extra})
    header = machine.facts("NVIDIA H200" if options.dry_run else None)
    model = model_dir(scratch)
    args = ["--quantization", options.quantization] if options.quantization else []
    args += ["--kv-cache-dtype", options.kv_cache_dtype] if options.kv_cache_dtype else []
    body: dict[str, Any] = {
        **header,
        "model": "Llama-3-8B shape (Llama-3.1-8B-Instruct config, 32 layers, random "
        "weights), --max-model-len 2048, CUDA graphs and torch.compile on",
        "vllm_args": args,
        "load": {
            **LOAD,
            "prompts": options.prompts,
            "concurrency": options.concurrency,
            "warmup_prompts": options.warmup_prompts,
        },
        "method": "same vLLM process; A = direct (vLLM's port), B = front door; rounds A B, B A, "
        "A B ...; warm-up run discarded",
        "dry_run": options.dry_run,
        "rounds": [],
    }
    port = free_port()
    launcher = start_launcher(model, port, args, env, logs / "launcher.log", options.dry_run)
    try:
        status = None
        while time.monotonic() - started < options.ready_timeout and launcher.poll() is None:
            if get_json(f"http://127.0.0.1:{port}/ready") is not None:
                status = get_json(f"http://127.0.0.1:{port}/status")
                break
            time.sleep(1)
        if status is None:
            body["error"] = "launcher serve did not become ready"
            return 1
        body["ready_seconds"] = round(time.monotonic() - started, 1)
        body["launcher_start"] = {key: status.get(key) for key in ("predicted", "observed", "error", "ignored_flags")}
        direct = int(status["vllm_port"])
        say(f"ready in {body['ready_seconds']} s (front door {port}, vLLM {direct})")
        ports = {"direct": direct, "front_door": port}
        body["warmup"] = bench(
            model, direct, options.warmup_prompts, options.concurrency, logs, "warmup", env, timeout=180
        )
        say(f"warm-up: {body['warmup']}")
        warmup = body["warmup"]  # the CLI's own start (imports) is a fixed cost; the load scales with prompts
        overhead = warmup.get("wall_seconds", 60) - (warmup.get("duration") or 0)
        rate = options.warmup_prompts / (warmup.get("duration") or 60)  # prompts per second at this concurrency
        prompts = max(options.prompts, int(rate * options.min_seconds * 1.1) + 1)
        body["load"]["prompts"] = prompts
        run_seconds = overhead + prompts / rate
        for index in range(options.rounds):
            if time.monotonic() - started + 2 * run_seconds * 1.1 > options.deadline:
                body["stopped"] = f"round {index + 1} not started: it would end after {options.deadline:.0f} s"
                break
            order = ("direct", "front_door") if index % 2 == 0 else ("front_door", "direct")
            entry: dict[str, Any] = {"round": index + 1, "order": list(order)}
            for side in order:
                entry[side] = bench(
                    model,
                    ports[side],
                    prompts,
                    options.concurrency,
                    logs,
                    f"round{index + 1}-{side}",
                    env,
                    timeout=run_seconds * 3,
                )
                say(f"round {index + 1} {side}: {entry[side]}")
                run_seconds = entry[side].get("wall_seconds", run_seconds)
            entry["compare"] = compare(entry["direct"], entry["front_door"])
            body["rounds"].append(entry)
            body["summary"] = summary(body["rounds"])
            write(out, body, logs)
        return 0
    finally:
        stop(launcher)
        body["seconds"] = round(time.monotonic() - started, 1)
        write(out, body, logs)
        say(json.dumps(body.get("summary", body.get("error")), indent=2))


if __name__ == "__main__":
    sys.exit(main())
