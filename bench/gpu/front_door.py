"""The front door on the GPU: the same vLLM process measured directly and through `launcher serve`, A-B-B-A.

`launcher serve` starts vLLM (the Llama-3-8B shape: Llama-3.1-8B-Instruct's config, all 32 layers, random
weights, `--max-model-len 2048`, vLLM's defaults otherwise: CUDA graphs, torch.compile) behind the front door.
One warm-up run (discarded) goes to vLLM's own port; then `vllm bench serve` (random dataset, 512 in / 256 out,
--ignore-eos, --max-concurrency C split over --clients processes, each with its own dataset seed so that no prompt
repeats across runs) alternates direct (A) and front door (B) in the order A B, B A, A B, ...: each pair is a round,
and the order flips every round so that a drift over time falls on both sides alike. Each run has at least
--prompts prompts and lasts at least --min-seconds (sized from the warm-up's rate). Throughput is counted twice:
by the clients, and by vLLM itself (its generation-token counter, sampled on its own port during the run), the
figure a busy client cannot bias; `throughput_ratio` is vLLM's, `client_throughput_ratio` the clients'. Recorded per
run: throughput, TTFT / ITL p50 and p99 over every request of every client; per round: front door / direct and the
latency added; over the rounds: the median ratio and its spread (max - min). The JSON is rewritten after every run;
a round that would not finish before --deadline is not started.

    # on the GPU machine, after `make gpu-install` (PYTHONPATH is set here: server/ and /tmp/site):
    python3 -m bench.gpu.front_door --out $OUT [--rounds 3] [--concurrency 64] [--clients 4] [--min-seconds 60]
    # a session over several device calls (a call has 10 minutes; 3 rounds of 60 s runs at two concurrencies do
    # not fit one): the first call leaves launcher and vLLM running, the next ones go on with its rounds
    python3 -m bench.gpu.front_door --out $OUT --rounds 2 --keep-running
    python3 -m bench.gpu.front_door --out $OUT --rounds 3 --resume
    # here, without a GPU: a stand-in vLLM (tests/harness/fake_vllm.py) and a tiny load, to try the harness
    .venv/bin/python -m bench.gpu.front_door --dry-run --out bench/out/front-door-dry
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import machine, models
from .ground_truth import HARNESS_ENV, free_port, say

GENERATION_COUNTER = "vllm:generation_tokens_total"
FAKE_ENTRYPOINT = "tests.harness.fake_vllm"
SESSION = "session.json"  # in --scratch: what --resume needs of a --keep-running call  # --dry-run's stand-in for vLLM
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


def generation_tokens(port: int) -> float | None:
    """vLLM's generation-token counter from its own /metrics (summed over label sets), None when it has none."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode(errors="replace")
    except Exception:  # a sample lost is a sample lost; the window needs only its ends
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(GENERATION_COUNTER)]
    return sum(values) if values else None


class CounterSampler(threading.Thread):
    """Samples vLLM's generation-token counter every `interval` seconds while a run goes on."""

    def __init__(self, port: int, interval: float = 0.5):
        super().__init__(daemon=True)
        self.port, self.interval = port, interval
        self.samples: list[tuple[float, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            value = generation_tokens(self.port)
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self.done.wait(self.interval)

    def throughput(self) -> dict[str, float]:
        """Tokens vLLM generated per second between the last sample before the counter moved and the first one at
        its final value: the server's own count, whatever the clients' pace of reading."""
        if len(self.samples) < 3 or self.samples[-1][1] <= self.samples[0][1]:
            return {}
        first_value, last_value = self.samples[0][1], self.samples[-1][1]
        first = max(i for i, (_, v) in enumerate(self.samples) if v == first_value)
        last = min(i for i, (_, v) in enumerate(self.samples) if v == last_value)
        seconds = self.samples[last][0] - self.samples[first][0]
        if seconds <= 0:
            return {}
        tokens = last_value - first_value
        return {
            "server_output_throughput": tokens / seconds,
            "server_seconds": round(seconds, 2),
            "server_tokens": tokens,
        }


def client_command(model: Path, port: int, prompts: int, concurrency: int, seed: int, result: Path) -> list[str]:
    """One `vllm bench serve` client: the random dataset (its own seed: no prompt repeats, no prefix-cache hit
    across runs or clients), detailed results kept for the percentiles over all clients."""
    return [
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
        "--seed",
        str(seed),
        "--ignore-eos",
        "--disable-tqdm",
        "--save-result",
        "--save-detailed",
        "--result-dir",
        str(result.parent),
        "--result-filename",
        result.name,
    ]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def aggregate(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several clients' detailed results as one run: tokens over the longest client's duration, percentiles over
    every request (TTFT) and every gap between two streamed chunks (ITL), in ms."""
    duration = max(r["duration"] for r in results)
    output = sum(r["total_output_tokens"] for r in results)
    ttfts = [t * 1000 for r in results for t in r.get("ttfts", []) if t]
    itls = [gap * 1000 for r in results for request in r.get("itls", []) for gap in request]
    return {
        "output_throughput": output / duration,
        "request_throughput": sum(r["completed"] for r in results) / duration,
        "completed": sum(r["completed"] for r in results),
        "duration": duration,
        "p50_ttft_ms": percentile(ttfts, 50),
        "p99_ttft_ms": percentile(ttfts, 99),
        "p50_itl_ms": percentile(itls, 50),
        "p99_itl_ms": percentile(itls, 99),
    }


def bench(
    model: Path,
    ports: tuple[int, int],
    load: tuple[int, int, int],
    logs: Path,
    name: str,
    env: dict[str, str],
    timeout: float,
    seed: int,
) -> dict[str, Any]:
    """One run against ports[0] (vLLM's counter is read on ports[1], vLLM's own port): `clients` processes of
    `vllm bench serve` at once, prompts and concurrency split between them; the client-side and the server-side
    figures, or the end of a client's log as `error`."""
    port, counter_port = ports
    prompts, concurrency, clients = load
    sampler = CounterSampler(counter_port)
    sampler.start()
    started = time.perf_counter()
    if env.get("LAUNCHER_VLLM_ENTRYPOINT") == FAKE_ENTRYPOINT:
        try:
            return {**dry_bench(port, prompts, concurrency), **sampler.throughput(), "clients": 1}
        finally:
            sampler.done.set()
            sampler.join()
    processes, results = [], [logs / f"{name}-client{i}.json" for i in range(clients)]
    for index, result in enumerate(results):
        command = client_command(
            model, port, prompts // clients, max(1, concurrency // clients), seed * 100 + index, result
        )
        log = open(logs / f"{name}-client{index}.log", "wb")  # closed below, when the client has exited
        processes.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    try:
        for process, log in processes:
            try:
                process.wait(timeout=max(1.0, timeout - (time.perf_counter() - started)))
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
    finally:
        sampler.done.set()
        sampler.join()
    wall = round(time.perf_counter() - started, 1)
    try:
        loaded = [json.loads(result.read_text()) for result in results]
    except (OSError, json.JSONDecodeError):
        tail = (logs / f"{name}-client0.log").read_text(errors="replace")[-600:]
        return {"error": tail, "wall_seconds": wall}
    return {**aggregate(loaded), **sampler.throughput(), "clients": clients, "wall_seconds": wall}


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
        latencies = list(pool.map(one, range(prompts)))
    duration = time.perf_counter() - started
    return {
        "output_throughput": prompts * 16 / duration,
        "request_throughput": prompts / duration,
        "completed": prompts,
        "duration": duration,
        "p50_ttft_ms": percentile(latencies, 50),
        "p99_ttft_ms": percentile(latencies, 99),
        "p50_itl_ms": 0.0,
        "p99_itl_ms": 0.0,
        "wall_seconds": round(duration, 1),
    }


def compare(direct: dict[str, Any], door: dict[str, Any]) -> dict[str, Any]:
    """Front door against direct for one round: throughput ratio and the latency it adds."""
    if "error" in direct or "error" in door:
        return {}
    server = {}
    if direct.get("server_output_throughput") and door.get("server_output_throughput"):
        server["throughput_ratio"] = round(door["server_output_throughput"] / direct["server_output_throughput"], 4)
    return {
        **server,  # vLLM's own count of the tokens it generated: the figure the clients' pace cannot bias
        "client_throughput_ratio": round(door["output_throughput"] / direct["output_throughput"], 4),
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


def options_of(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    parser.add_argument("--scratch", default="/var/tmp/front-door")
    parser.add_argument("--rounds", type=int, default=3, help="rounds in all (a resumed session counts its own)")
    parser.add_argument("--prompts", type=int, default=1000, help="prompts per measured run, at least")
    parser.add_argument("--warmup-prompts", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--clients", type=int, default=4, help="`vllm bench serve` processes sharing the load")
    parser.add_argument("--min-seconds", type=float, default=60, help="each measured run lasts at least this long")
    parser.add_argument("--quantization", default="", help="e.g. fp8 (default: BF16)")
    parser.add_argument("--kv-cache-dtype", default="", help="e.g. fp8 (default: the model's dtype)")
    parser.add_argument("--deadline", type=float, default=560, help="seconds: start no run that would end later")
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave launcher and vLLM running at the end, the session in --scratch, for --resume in a later call",
    )
    parser.add_argument("--resume", action="store_true", help="go on with the session a --keep-running call left")
    parser.add_argument("--dry-run", action="store_true", help="tests/harness/fake_vllm.py instead of vLLM, tiny load")
    return parser.parse_args(argv)


def new_body(options: argparse.Namespace, args: list[str]) -> dict[str, Any]:
    return {
        **machine.facts("NVIDIA H200" if options.dry_run else None),
        "model": "Llama-3-8B shape (Llama-3.1-8B-Instruct config, 32 layers, random "
        "weights), --max-model-len 2048, CUDA graphs and torch.compile on",
        "vllm_args": args,
        "load": {
            **LOAD,
            "prompts": options.prompts,
            "concurrency": options.concurrency,
            "warmup_prompts": options.warmup_prompts,
            "clients": options.clients,
        },
        "method": "same vLLM process; A = direct (vLLM's port), B = front door; rounds A B, B A, A B ...; warm-up "
        "run discarded; each run split over several client processes, each with its own dataset seed (no prompt "
        "repeats); throughput_ratio from vLLM's own generation-token counter, client_throughput_ratio from the "
        "clients' count",
        "dry_run": options.dry_run,
        "rounds": [],
    }


def live_session(scratch: Path, options: argparse.Namespace, args: list[str]) -> dict[str, Any] | None:
    """The session a --keep-running call left, when its launcher still answers and it measured the same thing."""
    try:
        session: dict[str, Any] = json.loads((scratch / SESSION).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    load = session["body"]["load"]
    same = session["body"]["vllm_args"] == args and (load["concurrency"], load["clients"]) == (
        options.concurrency,
        options.clients,
    )
    if not same or get_json(f"http://127.0.0.1:{session['port']}/ready") is None:
        return None
    return session


def start(options: argparse.Namespace, model: Path, args: list[str], env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Start `launcher serve`, wait until it is ready, warm up on vLLM's port, size the runs: a new session."""
    started = time.monotonic()
    body = new_body(options, args)
    port = free_port()
    launcher = start_launcher(model, port, args, env, logs / "launcher.log", options.dry_run)
    session: dict[str, Any] = {"pid": launcher.pid, "port": port, "body": body}
    status = None
    while time.monotonic() - started < options.ready_timeout and launcher.poll() is None:
        if get_json(f"http://127.0.0.1:{port}/ready") is not None:
            status = get_json(f"http://127.0.0.1:{port}/status")
            break
        time.sleep(1)
    if status is None:
        body["error"] = "launcher serve did not become ready"
        return session
    body["ready_seconds"] = round(time.monotonic() - started, 1)
    body["launcher_start"] = {key: status.get(key) for key in ("predicted", "observed", "error", "ignored_flags")}
    direct = session["direct"] = int(status["vllm_port"])
    say(f"ready in {body['ready_seconds']} s (front door {port}, vLLM {direct})")
    load = (options.warmup_prompts, options.concurrency, options.clients)
    warmup = body["warmup"] = bench(model, (direct, direct), load, logs, "warmup", env, timeout=240, seed=999)
    say(f"warm-up: {warmup}")
    overhead = warmup.get("wall_seconds", 60) - (warmup.get("duration") or 0)  # the clients' start (imports)
    rate = options.warmup_prompts / (warmup.get("duration") or 60)  # prompts per second at this concurrency
    prompts = max(options.prompts, int(rate * options.min_seconds * 1.3) + 1)  # the warm-up is the slowest
    prompts += -prompts % options.clients
    body["load"]["prompts"] = session["prompts"] = prompts
    session["run_seconds"] = overhead + prompts / rate
    return session


def run_rounds(
    session: dict[str, Any], options: argparse.Namespace, model: Path, env: dict[str, str], paths: tuple[Path, Path]
) -> None:
    """Rounds until --rounds are done or the next would end after --deadline; the JSON rewritten after each."""
    out, logs = paths
    body, started = session["body"], time.monotonic()
    ports = {"direct": session["direct"], "front_door": session["port"]}
    while len(body["rounds"]) < options.rounds:
        index = len(body["rounds"])
        if time.monotonic() - started + 2 * session["run_seconds"] * 1.1 > options.deadline:
            body["stopped"] = f"round {index + 1} not started: it would end after {options.deadline:.0f} s"
            return
        order = ("direct", "front_door") if index % 2 == 0 else ("front_door", "direct")
        entry: dict[str, Any] = {"round": index + 1, "order": list(order)}
        for position, side in enumerate(order):
            entry[side] = bench(
                model,
                (ports[side], session["direct"]),
                (session["prompts"], options.concurrency, options.clients),
                logs,
                f"round{index + 1}-{side}",
                env,
                timeout=session["run_seconds"] * 3,
                seed=10 * (index + 1) + position,
            )
            say(f"round {index + 1} {side}: {entry[side]}")
            session["run_seconds"] = entry[side].get("wall_seconds", session["run_seconds"])
        entry["compare"] = compare(entry["direct"], entry["front_door"])
        body["rounds"].append(entry)
        body["summary"] = summary(body["rounds"])
        body.pop("stopped", None)
        write(out, body, logs)


def stop_group(pid: int) -> None:
    """SIGTERM to a process group, SIGKILL after 60 s (the launcher drains, then stops vLLM)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(60):
            time.sleep(1)
            os.killpg(pid, 0)  # ProcessLookupError once the group is gone
        os.killpg(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    options = options_of(argv)
    started = time.monotonic()
    out, scratch = Path(options.out), Path(options.scratch)
    logs = scratch / "logs"  # only the tarball goes to --out: the device returns at most 8 files
    logs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    extra = {**HARNESS_ENV}
    if options.dry_run:
        extra.update(LAUNCHER_VLLM_ENTRYPOINT=FAKE_ENTRYPOINT, FAKE_VLLM="token-ms=2")
    env = machine.child_env(environ={**os.environ, **extra})
    model = model_dir(scratch)
    args = ["--quantization", options.quantization] if options.quantization else []
    args += ["--kv-cache-dtype", options.kv_cache_dtype] if options.kv_cache_dtype else []
    session = live_session(scratch, options, args) if options.resume else None
    if options.resume:
        say("resuming the session in " + str(scratch) if session else "no live session to resume: a new one")
    session = session or start(options, model, args, env, logs)
    body = session["body"]
    try:
        if "error" not in body:
            run_rounds(session, options, model, env, (out, logs))
        return 1 if "error" in body else 0
    finally:
        keep = options.keep_running and "error" not in body
        if keep:
            (scratch / SESSION).write_text(json.dumps(session))
        else:
            stop_group(session["pid"])
            (scratch / SESSION).unlink(missing_ok=True)
        body["seconds"] = round(body.get("seconds", 0) + time.monotonic() - started, 1)
        body["launcher_left_running"] = keep
        write(out, body, logs)
        say(json.dumps(body.get("summary", body.get("error")), indent=2))


if __name__ == "__main__":
    sys.exit(main())
