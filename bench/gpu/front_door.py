"""The front door on the GPU: the same vLLM process measured directly and through `launcher serve`, A-B-B-A.

`launcher serve` starts vLLM (the Llama-3-8B shape: Llama-3.1-8B-Instruct's config, all 32 layers, random
weights, `--max-model-len 2048`, vLLM's defaults otherwise: CUDA graphs, torch.compile) behind the front door.
The load is `vllm bench serve`'s (random dataset, 512 in / 256 out, --ignore-eos), split over --clients worker
processes (load_client.py: vLLM's benchmark imported once per device call, the clients of a run started together,
each with its own dataset seed so that no prompt repeats across runs or clients). Per concurrency (a series): one
warm-up run (discarded) on vLLM's own port, then direct (A) and front door (B) alternate in the order A B, B A,
A B, ...: each pair is a round, and the order flips every round so that a drift over time falls on both sides alike.

Throughput is vLLM's own count: its generation-token counter sampled on its own port every 0.5 s during each run,
over the run's steady window (the counter between 5% and 95% of the run's tokens: the ramp-up of the first batch
and the drain of the last requests left out), a figure that neither the clients' pace nor their start can bias.
The front door's own account of each of its runs comes from its /metrics (launcher_added_latency_seconds and
launcher_event_loop_lag_seconds, read before and after the run): what it added to each generation's first chunk,
where the clients' TTFT moves by far more from run to run with the phase of vLLM's batches.
Runs are sized so that the steady window lasts at least --min-seconds (from the warm-up's rate, then from the last
round's). Also recorded: the clients' own count, TTFT / ITL p50 and p99 over every request of every client; per
round the front door / direct ratio and the latency added; per series the median ratio and its spread (max - min).
The JSON is rewritten after every round; a round that would not finish before --deadline is not started.

    # on the GPU machine, after `make gpu-install` (PYTHONPATH is set here: server/ and /tmp/site):
    python3 -m bench.gpu.front_door --out $OUT [--rounds 3] [--concurrency 64 256] [--clients 4] [--min-seconds 60]
    # a session over several device calls (a call has 10 minutes; 3 rounds of 60 s runs at two concurrencies do
    # not fit one): the first call leaves launcher and vLLM running, the next ones go on with its series
    python3 -m bench.gpu.front_door --out $OUT --concurrency 64 256 --keep-running
    python3 -m bench.gpu.front_door --out $OUT --concurrency 64 256 --resume
    # here, without a GPU: a stand-in vLLM (tests/harness/fake_vllm.py), vLLM's benchmark from .venv, a tiny load
    .venv/bin/python -m bench.gpu.front_door --dry-run --out bench/out/front-door-dry
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import queue
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from . import machine, models
from .ground_truth import HARNESS_ENV, free_port, say
from .load_client import MARK

GENERATION_COUNTER = "vllm:generation_tokens_total"
PREFIX_COUNTERS = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")  # v1/metrics/loggers.py
OWN_HISTOGRAMS = ("launcher_added_latency_seconds", "launcher_event_loop_lag_seconds")  # serve/metrics.py
FAKE_ENTRYPOINT = "tests.harness.fake_vllm"  # --dry-run's stand-in for vLLM
SESSION = "session.json"  # in --scratch: what --resume needs of a --keep-running call
LOAD = {"dataset": "random", "input_len": 512, "output_len": 256, "ignore_eos": True}
T = TypeVar("T")
STEADY_TRIM = 0.05  # the share of a run's tokens left out at each end of its steady window
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def model_dir(scratch: Path) -> Path:
    """The whole Llama-3-8B shape (Llama-3.1-8B-Instruct's config, all 32 layers) with a tokenizer of its whole
    vocabulary (models.build_wide_tokenizer: random prompts that do not share prefixes)."""
    case = {"id": "llama3-8b-full", "source": "meta-llama__Llama-3.1-8B-Instruct"}
    target = scratch / "models" / case["id"]
    target.mkdir(parents=True, exist_ok=True)
    config = models.shrunk_config(case)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    tokenizer = scratch / f"tokenizer-{config['vocab_size']}"
    if not (tokenizer / "tokenizer.json").is_file():
        models.build_wide_tokenizer(tokenizer, config["vocab_size"])
    for item in tokenizer.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    return target


def get_json(url: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read()) if response.status == 200 else None
    except Exception:  # not up yet, 503 while loading
        return None


def metrics_text(port: int) -> str:
    """A server's /metrics, empty when it does not answer (a sample lost is a sample lost)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return str(response.read().decode(errors="replace"))
    except Exception:
        return ""


def counters(port: int, names: tuple[str, ...]) -> dict[str, float]:
    """vLLM's counters from its own /metrics, each summed over its label sets; those it has not, left out."""
    text = metrics_text(port)
    found: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in names:
            found[name] = found.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def generation_tokens(port: int) -> float | None:
    """vLLM's generation-token counter, None when it has none."""
    return counters(port, (GENERATION_COUNTER,)).get(GENERATION_COUNTER)


def prefix_hit_rate(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """The share of the run's prompt tokens vLLM's prefix cache answered (its hits over its queries), if it says."""
    hits, queries = PREFIX_COUNTERS[1], PREFIX_COUNTERS[0]
    if not all(name in counts for name in PREFIX_COUNTERS for counts in (before, after)):
        return {}
    asked = after[queries] - before[queries]
    return {"prefix_cache_hit_rate": round((after[hits] - before[hits]) / asked, 4)} if asked > 0 else {}


def own_histograms(port: int) -> dict[str, dict[float, float]]:
    """The front door's own latency histograms (OWN_HISTOGRAMS) from its /metrics: cumulative count by upper
    bound, per histogram and stage (`launcher_added_latency_seconds/total`, `launcher_event_loop_lag_seconds`)."""
    found: dict[str, dict[float, float]] = {}
    try:
        for family in text_string_to_metric_families(metrics_text(port)):
            if family.name not in OWN_HISTOGRAMS:
                continue
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    key = "/".join([family.name, *([sample.labels["stage"]] if "stage" in sample.labels else [])])
                    found.setdefault(key, {})[float(sample.labels["le"])] = sample.value
    except ValueError:  # a page the parser cannot read: the run keeps its other figures
        return {}
    return found


def histogram_quantile(buckets: dict[float, float], q: float) -> float | None:
    """Prometheus's histogram_quantile: the q-quantile of cumulative bucket counts, interpolated linearly inside
    its bucket (the highest finite bound when it falls in +Inf); None for an empty histogram."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0
    if not total:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (buckets[bound] - below)
        lower, below = bound, buckets[bound]
    return lower


def own_latency(before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]) -> dict[str, Any]:
    """What the front door measured of itself over one run (the histograms' growth): per histogram and stage its
    count and p50 / p99 in ms."""
    out: dict[str, Any] = {}
    for key, buckets in after.items():
        grown = {bound: count - before.get(key, {}).get(bound, 0.0) for bound, count in buckets.items()}
        p50, p99 = histogram_quantile(grown, 0.5), histogram_quantile(grown, 0.99)
        if p50 is not None and p99 is not None:
            name = key.removeprefix("launcher_").replace("_seconds", "")
            out[name] = {"count": int(grown[math.inf]), "p50_ms": round(p50 * 1000, 4), "p99_ms": round(p99 * 1000, 4)}
    return out


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

    def time_at(self, value: float) -> float:
        """When the counter reached `value`, interpolated between the two samples around it."""
        for (t0, v0), (t1, v1) in zip(self.samples, self.samples[1:], strict=False):
            if v1 >= value:
                return t1 if v1 == v0 else t0 + (t1 - t0) * (value - v0) / (v1 - v0)
        return self.samples[-1][0]

    def throughput(self) -> dict[str, float]:
        """Tokens vLLM generated per second: over the whole run (from the last sample before the counter moved to
        the first one at its final value) and over its steady window (from STEADY_TRIM of the run's tokens to
        1 - STEADY_TRIM), the server's own count, whatever the clients' pace of reading or their start."""
        if len(self.samples) < 3 or self.samples[-1][1] <= self.samples[0][1]:
            return {}
        first_value, last_value = self.samples[0][1], self.samples[-1][1]
        first = max(i for i, (_, v) in enumerate(self.samples) if v == first_value)
        last = min(i for i, (_, v) in enumerate(self.samples) if v == last_value)
        seconds = self.samples[last][0] - self.samples[first][0]
        if seconds <= 0:
            return {}
        tokens = last_value - first_value
        low, high = first_value + STEADY_TRIM * tokens, last_value - STEADY_TRIM * tokens
        steady_seconds = self.time_at(high) - self.time_at(low)
        steady = {"server_steady_output_throughput": (high - low) / steady_seconds} if steady_seconds > 0 else {}
        return {
            **steady,
            "server_steady_seconds": round(steady_seconds, 2),
            "server_output_throughput": tokens / seconds,
            "server_seconds": round(seconds, 2),
            "server_tokens": tokens,
        }


def client_args(model: Path, port: int, load: tuple[int, int, float], seed: int, result: Path) -> list[str]:
    """One client's `vllm bench serve` arguments (load: prompts, concurrency, length range ratio): the random
    dataset (its own seed: no prompt repeats, no prefix-cache hit across runs or clients), detailed results kept
    for the percentiles over all clients."""
    prompts, concurrency, range_ratio = load
    return [
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
        "--random-range-ratio",
        str(range_ratio),
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


def _pump(stream: IO[str], log: IO[str], answers: queue.Queue[dict[str, Any]]) -> None:
    """A worker's output into its log, its answers (the MARK lines) into `answers`."""
    for line in stream:
        if line.startswith(MARK):
            answers.put(json.loads(line[len(MARK) :]))
        else:
            log.write(line)
            log.flush()
    answers.put({"error": "the client exited"})


class Clients:
    """`count` load_client.py workers: started once, each run given to all of them at the same moment."""

    def __init__(self, count: int, env: dict[str, str], logs: Path):
        self.count, self.env, self.logs = count, env, logs
        self.workers: list[tuple[subprocess.Popen[str], queue.Queue[dict[str, Any]], IO[str]]] = []

    def start(self, timeout: float = 180) -> None:
        for index in range(self.count):
            log = open(self.logs / f"client{index}.log", "a")  # closed in stop()
            process = subprocess.Popen(
                [sys.executable, "-m", "bench.gpu.load_client"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=self.env,
                text=True,
                bufsize=1,
            )
            answers: queue.Queue[dict[str, Any]] = queue.Queue()
            threading.Thread(target=_pump, args=(process.stdout, log, answers), daemon=True).start()
            self.workers.append((process, answers, log))
        for answer in self._collect(timeout):
            if "error" in answer:
                raise RuntimeError(f"a load client did not start: {answer['error']}")

    def _collect(self, timeout: float) -> list[dict[str, Any]]:
        ends = time.monotonic() + timeout
        out = []
        for _, answers, _ in self.workers:
            try:
                out.append(answers.get(timeout=max(0.1, ends - time.monotonic())))
            except queue.Empty:
                out.append({"error": f"no answer within {timeout:.0f} s"})
        return out

    def run(self, argvs: list[list[str]], timeout: float) -> list[dict[str, Any]]:
        """One run: each worker its arguments, then every answer (or a timeout's error, after which the workers
        are restarted: a worker still busy with the last run would take the next one late)."""
        for (process, _, log), argv in zip(self.workers, argvs, strict=True):
            log.write(f"\n=== {' '.join(argv)}\n")
            assert process.stdin is not None
            process.stdin.write(json.dumps(argv) + "\n")
            process.stdin.flush()
        answers = self._collect(timeout)
        if any("no answer" in a.get("error", "") for a in answers):
            self.stop()
            self.start()
        return answers

    def stop(self) -> None:
        for process, _, log in self.workers:
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()
        self.workers = []


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
    clients: Clients,
    model: Path,
    ports: tuple[int, int],
    load: tuple[int, int, float],
    logs: Path,
    name: str,
    timeout: float,
    seed: int,
    groups: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """One run against ports[0] (vLLM's counter is read on ports[1], vLLM's own port): every client at once,
    prompts and concurrency split between them; the client-side and the server-side figures, and the CPU share of
    the processes of `groups` (launcher name: its process group), or `error`."""
    port, counter_port = ports
    prompts, concurrency, range_ratio = load
    share = (prompts // clients.count, max(1, concurrency // clients.count), range_ratio)
    results = [logs / f"{name}-client{i}.json" for i in range(clients.count)]
    argvs = [client_args(model, port, share, seed * 100 + i, r) for i, r in enumerate(results)]
    sampler = CounterSampler(counter_port)
    prefix_before = counters(counter_port, PREFIX_COUNTERS)
    through_front_door = port != counter_port
    own_before = own_histograms(port) if through_front_door else {}
    meter = CpuMeter(groups or {})
    sampler.start()
    started = time.perf_counter()
    try:
        answers = clients.run(argvs, timeout)
    finally:
        sampler.done.set()
        sampler.join()
    cached = prefix_hit_rate(prefix_before, counters(counter_port, PREFIX_COUNTERS))
    own = {"front_door_own": own_latency(own_before, own_histograms(port))} if through_front_door else {}
    cpu = {"cpu_share": meter.shares()} if groups else {}
    wall = round(time.perf_counter() - started, 1)
    errors = [a["error"] for a in answers if "error" in a]
    try:
        loaded = [json.loads(result.read_text()) for result in results]
    except (OSError, json.JSONDecodeError) as exc:
        return {"error": "; ".join(errors) or f"no result: {exc}", "wall_seconds": wall}
    return {
        **aggregate(loaded),
        **sampler.throughput(),
        **cached,
        **own,
        **cpu,
        "clients": clients.count,
        "wall_seconds": wall,
    }


def compare(direct: dict[str, Any], door: dict[str, Any]) -> dict[str, Any]:
    """Front door against direct for one round: throughput ratios and the latency it adds."""
    if "error" in direct or "error" in door:
        return {}

    def ratio(key: str) -> float | None:
        return round(door[key] / direct[key], 4) if direct.get(key) and door.get(key) else None

    ratios = {
        "throughput_ratio": ratio("server_steady_output_throughput"),  # vLLM's count over the steady windows
        "server_whole_run_throughput_ratio": ratio("server_output_throughput"),
        "client_throughput_ratio": ratio("output_throughput"),
    }
    own = door.get("front_door_own", {})  # its own account: what it added to a first chunk, its loop's lag
    return {
        **{key: value for key, value in ratios.items() if value is not None},
        **{
            f"{key.replace('_ms', '')}_added_ms": round(door[key] - direct[key], 3)
            for key in ("p50_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p99_itl_ms")
        },
        **{
            f"own_{name}_{quantile}_ms": own[key][f"{quantile}_ms"]
            for key, name in (("added_latency/total", "first_chunk_added"), ("event_loop_lag", "loop_lag"))
            if key in own
            for quantile in ("p50", "p99")
        },
    }


def round_order(sides: Sequence[T], index: int) -> Sequence[T]:
    """The sides in the order given for even rounds, reversed for odd ones (A B, B A, ...; A B C, C B A, ...): a
    drift over time falls on every side alike."""
    return sides if index % 2 == 0 else sides[::-1]


def spread_of(values: list[float]) -> dict[str, Any]:
    """Per-round figures as median, min, max, spread (max - min) and the rounds themselves."""
    return {
        "median": round(statistics.median(values), 4),
        "min": min(values),
        "max": max(values),
        "spread": round(max(values) - min(values), 4),
        "per_round": values,
    }


def pair_ratios(per_round: list[float]) -> list[float]:
    """Each two consecutive rounds' ratios as one figure, their geometric mean: the order flips from one round to
    the next (A B, B A), so a drift that is linear over the pair's runs (A1 > B1 > B2 > A2) lowers one ratio as
    much as it raises the other and cancels here, where it widens the per-round spread."""
    return [round(math.sqrt(a * b), 4) for a, b in itertools.pairwise(per_round)]


def drift(done: list[dict[str, Any]]) -> dict[str, float]:
    """Per side, its last run's steady throughput against its first (the GPU, vLLM's state, the load changing
    over the series: what the alternating order is there to cancel)."""
    out: dict[str, float] = {}
    for side in done[0]["order"]:
        rates = [
            r[side]["server_steady_output_throughput"] for r in done if "server_steady_output_throughput" in r[side]
        ]
        if len(rates) > 1:
            out[side] = round(rates[-1] / rates[0] - 1, 4)
    return out


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread of the per-round figures and of the throughput ratios' round pairs (`pair_ratios`), each
    side's drift over the series, and the shortest steady window of any run."""
    done = [r for r in rounds if r.get("compare")]
    if not done:
        return {}
    out: dict[str, Any] = {"rounds": len(done)}
    for key in dict.fromkeys(key for r in done for key in r["compare"]):  # every figure some round has
        out[key] = spread_of([r["compare"][key] for r in done if key in r["compare"]])
    for key in [key for key in out if key.endswith("throughput_ratio") and len(out[key]["per_round"]) > 1]:
        pairs = spread_of(pair_ratios(out[key]["per_round"]))
        pairs["per_pair"] = pairs.pop("per_round")
        out[key.removesuffix("ratio") + "pair_ratio"] = pairs
    out["steady_throughput_drift"] = drift(done)
    windows = [r[side].get("server_steady_seconds") for r in done for side in r["order"]]
    out["shortest_steady_seconds"] = min((w for w in windows if w is not None), default=None)
    return out


def launcher_command(port: int, vllm_args: list[str], dry_run: bool) -> list[str]:
    """`launcher serve` on 127.0.0.1:port in front of `vllm serve <vllm_args>` (--skip-check in a dry run: the CPU
    here is not what the arguments are for)."""
    own = ["--skip-check"] if dry_run else []
    return [
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
        *vllm_args,
    ]


def start_launcher(
    model: Path, port: int, args: list[str], env: dict[str, str], log_path: Path, dry_run: bool
) -> subprocess.Popen[bytes]:
    """The Llama-3-8B shape with random weights, --max-model-len 2048, behind the front door, in its own session."""
    vllm_args = ["--model", str(model), "--load-format", "dummy", "--max-model-len", "2048", *args]
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            launcher_command(port, vllm_args, dry_run),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )


def write(out: Path, body: dict[str, Any], logs: Path) -> None:
    """The record, and the logs beside it (launcher, vLLM, clients: gzip of the clients' per-request results
    took 15-30 s of device time per round on the H200, so they stay in --scratch)."""
    name = machine.results_path(body["gpu"], body["results"]).name
    (out / f"{name}.tmp").write_text(json.dumps(body, indent=2) + "\n")
    (out / f"{name}.tmp").replace(out / name)
    with tarfile.open(out / "front-door-logs.tar.gz.tmp", "w:gz") as tar:
        for log in sorted(logs.glob("*.log")):  # the clients' detailed results are in the record already
            tar.add(log, arcname=f"logs/{log.name}")
    (out / "front-door-logs.tar.gz.tmp").replace(out / "front-door-logs.tar.gz")


# --precisions: each a launcher of its own on the same GPU, all up at once (a fixed KV cache each, so that vLLM
# skips the memory profiling the others' allocations would skew), measured through their front doors in turn
PRECISIONS = {
    "bf16": [],
    "fp8": ["--quantization", "fp8"],
    "fp8-kv-fp8": ["--quantization", "fp8", "--kv-cache-dtype", "fp8"],
}


# --dry-run's defaults: a load that fake_vllm serves in seconds (two rounds at concurrency 4, 2 s steady windows).
DRY_RUN_LOAD: dict[str, Any] = {"prompts": 16, "warmup_prompts": 8, "min_seconds": 2.0, "rounds": 2, "concurrency": [4]}


def options_of(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    parser.add_argument("--scratch", default="/var/tmp/front-door")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per series (a resumed session counts its own)")
    parser.add_argument("--prompts", type=int, default=1000, help="prompts per measured run, at least")
    parser.add_argument("--warmup-prompts", type=int, default=512, help="at least; 4 x the concurrency when more")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64], help="one series each, in this order")
    parser.add_argument("--clients", type=int, default=4, help="`vllm bench serve` workers sharing the load")
    parser.add_argument("--min-seconds", type=float, default=60, help="each run's steady window lasts this long")
    parser.add_argument(
        "--range-ratio",
        type=float,
        default=0.0,
        help="input and output lengths uniform in L x [1 - r, 1 + r] (vLLM's --random-range-ratio): requests of a "
        "wave no longer start and end together",
    )
    parser.add_argument("--quantization", default="", help="e.g. fp8 (default: BF16)")
    parser.add_argument("--kv-cache-dtype", default="", help="e.g. fp8 (default: the model's dtype)")
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--noise-floor", action="store_true", help="B is vLLM's port again: what two identical runs differ by"
    )
    modes.add_argument(
        "--precisions",
        nargs="+",
        choices=sorted(PRECISIONS),
        help="one launcher per precision, all at once, each through its front door, in turn (ratios to the first)",
    )
    parser.add_argument("--kv-cache-gib", type=float, default=26, help="with --precisions: each one's fixed KV cache")
    parser.add_argument("--deadline", type=float, default=560, help="seconds: start no run that would end later")
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave launcher and vLLM running at the end, the session in --scratch, for --resume in a later call",
    )
    parser.add_argument("--resume", action="store_true", help="go on with the session a --keep-running call left")
    parser.add_argument("--dry-run", action="store_true", help="tests/harness/fake_vllm.py instead of vLLM, tiny load")
    options = parser.parse_args(argv)
    if options.dry_run:  # the tiny load, where the command line does not say otherwise
        parser.set_defaults(**DRY_RUN_LOAD)
        options = parser.parse_args(argv)
    return options


def launchers_of(options: argparse.Namespace) -> list[dict[str, Any]]:
    """What to start: one launcher (its --quantization / --kv-cache-dtype), or one per --precisions entry."""
    if options.precisions:
        memory = ["--gpu-memory-utilization", "0.3", "--kv-cache-memory-bytes", str(int(options.kv_cache_gib * 2**30))]
        return [{"name": name, "args": PRECISIONS[name] + memory} for name in options.precisions]
    args = ["--quantization", options.quantization] if options.quantization else []
    args += ["--kv-cache-dtype", options.kv_cache_dtype] if options.kv_cache_dtype else []
    return [{"name": "bf16" if not args else "-".join(args[1::2]), "args": args}]


def sides_of(session: dict[str, Any], noise_floor: bool) -> list[tuple[str, int, int]]:
    """A round's sides (name, port the clients load, vLLM port whose counter is read), in A B order."""
    launchers = session["launchers"]
    if len(launchers) > 1:
        return [(launcher["name"], launcher["port"], launcher["direct"]) for launcher in launchers]
    only = launchers[0]
    second = ("direct_again", only["direct"]) if noise_floor else ("front_door", only["port"])
    return [("direct", only["direct"], only["direct"]), (*second, only["direct"])]


def results_kind(options: argparse.Namespace) -> str:
    """The record's kind (bench/results/<gpu>-<kind>.json): precisions, the noise floor (direct against direct)
    and lengths spread (--range-ratio) are other measurements than the fixed-length front door against direct,
    and records of their own."""
    if options.precisions:
        return "front-door-precisions"
    return "front-door" + ("-noise-floor" if options.noise_floor else "") + ("-range" if options.range_ratio else "")


def new_body(options: argparse.Namespace, launchers: list[dict[str, Any]]) -> dict[str, Any]:
    if options.precisions:
        mode = (
            "precisions: one launcher per precision on the same GPU, all up at once (each --gpu-memory-utilization "
            "0.3 and a fixed KV cache), each run through that precision's front door; rounds in the order given, then "
            "reversed (A B C, C B A, ...); ratios to the first precision"
        )
    elif options.noise_floor:
        mode = "noise floor: A and B both vLLM's own port, the same process; rounds A B, B A, ..."
    else:
        mode = "same vLLM process; A = direct (vLLM's port), B = front door; rounds A B, B A, A B ..."
    return {
        **machine.facts("NVIDIA H200" if options.dry_run else None),
        "results": results_kind(options),
        "model": "Llama-3-8B shape (Llama-3.1-8B-Instruct config, 32 layers, random "
        "weights), --max-model-len 2048, CUDA graphs and torch.compile on",
        "launchers": [{"name": launcher["name"], "vllm_args": launcher["args"]} for launcher in launchers],
        "load": {
            **LOAD,
            "range_ratio": options.range_ratio,
            "clients": options.clients,
            "min_steady_seconds": options.min_seconds,
        },
        "method": f"{mode}; per concurrency a discarded warm-up on each vLLM; each run split over several client "
        "workers started together, each with its own dataset seed (no prompt repeats); throughput_ratio from vLLM's "
        f"own generation-token counter over each run's steady window ({STEADY_TRIM:.0%} of its tokens left out at "
        "each end), client_throughput_ratio from the clients' count",
        "noise_floor": options.noise_floor,
        "dry_run": options.dry_run,
        "series": [],
    }


def live_session(scratch: Path, options: argparse.Namespace) -> dict[str, Any] | None:
    """The session a --keep-running call left, when its launchers still answer and it measures the same thing."""
    try:
        session: dict[str, Any] = json.loads((scratch / SESSION).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    body = session["body"]
    wanted = [(launcher["name"], launcher["args"]) for launcher in launchers_of(options)]
    running = [(launcher["name"], launcher["vllm_args"]) for launcher in body["launchers"]]
    same = running == wanted and body["load"]["clients"] == options.clients
    same = same and (body["load"].get("range_ratio"), body.get("noise_floor")) == (
        options.range_ratio,
        options.noise_floor,
    )
    alive = all(get_json(f"http://127.0.0.1:{launcher['port']}/ready") is not None for launcher in session["launchers"])
    return session if same and alive else None


def wait_ready(port: int, process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Whether the launcher on `port` answers /ready before `deadline` (monotonic) while its process runs."""
    while time.monotonic() < deadline and process.poll() is None:
        if get_json(f"http://127.0.0.1:{port}/ready") is not None:
            return True
        time.sleep(0.5)
    return False


def start(options: argparse.Namespace, model: Path, env: dict[str, str], logs: Path) -> dict[str, Any]:
    """Start the launchers at once and wait until every one is ready: a new session."""
    started = time.monotonic()
    launchers = launchers_of(options)
    body = new_body(options, launchers)
    session: dict[str, Any] = {"launchers": [], "body": body}
    for launcher in launchers:
        port = free_port()
        log = logs / f"launcher-{launcher['name']}.log"
        process = start_launcher(model, port, launcher["args"], env, log, options.dry_run)
        session["launchers"].append({**launcher, "pid": process.pid, "port": port, "process": process})
    for launcher, record in zip(session["launchers"], body["launchers"], strict=True):
        ready = wait_ready(launcher["port"], launcher["process"], started + options.ready_timeout)
        status = get_json(f"http://127.0.0.1:{launcher['port']}/status") if ready else None
        if status is None:
            body["error"] = f"launcher serve ({launcher['name']}) did not become ready"
            break
        record["ready_seconds"] = round(time.monotonic() - started, 1)
        record["launcher_start"] = {key: status.get(key) for key in ("predicted", "observed", "error", "ignored_flags")}
        launcher["direct"] = int(status["vllm_port"])
        launcher["vllm_pid"] = status.get("vllm_pid")
        ports = f"front door {launcher['port']}, vLLM {launcher['direct']}"
        say(f"{launcher['name']} ready in {record['ready_seconds']} s ({ports})")
    for launcher in session["launchers"]:
        launcher.pop("process")
    return session


def prompts_for(rate: float, options: argparse.Namespace, clients: int) -> int:
    """Prompts for a run whose steady window lasts --min-seconds at `rate` prompts per second (10% to spare)."""
    prompts = max(options.prompts, int(rate * options.min_seconds / (1 - 2 * STEADY_TRIM) * 1.1) + 1)
    return prompts + -prompts % clients


def prompts_for_all(runs: list[dict[str, Any]], options: argparse.Namespace, clients: int) -> int:
    """Prompts for the next runs of these sides: sized at the fastest side's rate, the one whose steady window is
    shortest, so that every side's lasts --min-seconds (the slowest side's run then takes longer)."""
    return prompts_for(max(rate_of(run) for run in runs), options, clients)


def rate_of(run: dict[str, Any]) -> float:
    """Prompts per second of a run: vLLM's steady token rate over the output length, else the clients' rate."""
    tokens = run.get("server_steady_output_throughput")
    return tokens / LOAD["output_len"] if tokens else run.get("request_throughput") or 1.0


def new_series(
    concurrency: int, options: argparse.Namespace, session: dict[str, Any], clients: Clients, paths: tuple[Path, Path]
) -> dict[str, Any]:
    """A concurrency's series: a warm-up on each vLLM's own port (discarded) sizes its runs."""
    model, logs = paths
    warmup_prompts = max(options.warmup_prompts, 4 * concurrency)
    load = (warmup_prompts + -warmup_prompts % clients.count, concurrency, options.range_ratio)
    warmups = {}
    for launcher in session["launchers"]:
        direct = launcher["direct"]
        name = f"c{concurrency}-{launcher['name']}-warmup"
        warmups[launcher["name"]] = bench(clients, model, (direct, direct), load, logs, name, timeout=300, seed=999)
        say(f"c{concurrency} {launcher['name']} warm-up: {warmups[launcher['name']]}")
    slowest = min(warmups.values(), key=rate_of)
    prompts = prompts_for_all(list(warmups.values()), options, clients.count)
    # the clients' start is paid once per call: a run is its prompts at the warm-up's rate plus the initial request
    run_seconds = prompts / rate_of(slowest) + max(0.0, slowest.get("wall_seconds", 0) - slowest.get("duration", 0))
    return {"concurrency": concurrency, "prompts": prompts, "run_seconds": run_seconds, "warmup": warmups, "rounds": []}


def round_compare(entry: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """B against A for two sides (front door / direct); each side against the first for more (precisions)."""
    if len(names) == 2:
        return compare(entry[names[0]], entry[names[1]])
    out: dict[str, Any] = {}
    for name in names[1:]:
        out.update({f"{name}_{key}": value for key, value in compare(entry[names[0]], entry[name]).items()})
    return out


def process_groups(launchers: list[dict[str, Any]]) -> dict[str, int]:
    """The process groups whose CPU a run measures: each launcher's (the front door) and its vLLM's (vLLM runs in
    a session of its own), named by the launcher when there are several."""
    groups = {}
    for launcher in launchers:
        prefix = f"{launcher['name']} " if len(launchers) > 1 else ""
        groups[f"{prefix}front door"] = launcher["pid"]
        if launcher.get("vllm_pid"):
            groups[f"{prefix}vLLM"] = launcher["vllm_pid"]
    return groups


def run_series(
    series: dict[str, Any],
    options: argparse.Namespace,
    session: dict[str, Any],
    clients: Clients,
    paths: tuple[Path, Path, Path],
    deadline: float,
) -> bool:
    """Rounds until --rounds are done (True) or the next would end after `deadline` (False); JSON after each."""
    model, out, logs = paths
    body = session["body"]
    sides = sides_of(session, options.noise_floor)
    names = [name for name, _, _ in sides]
    concurrency = series["concurrency"]
    while len(series["rounds"]) < options.rounds:
        index = len(series["rounds"])
        if time.monotonic() + len(sides) * series["run_seconds"] * 1.1 > deadline:
            series["stopped"] = f"round {index + 1} not started: it would end after the call's deadline"
            return False
        order = round_order(sides, index)
        entry: dict[str, Any] = {
            "round": index + 1,
            "order": [name for name, _, _ in order],
            "prompts": series["prompts"],
        }
        for position, (name, port, counter_port) in enumerate(order):
            entry[name] = bench(
                clients,
                model,
                (port, counter_port),
                (series["prompts"], concurrency, options.range_ratio),
                logs,
                f"c{concurrency}-round{index + 1}-{name}",
                timeout=series["run_seconds"] * 3,
                seed=1000 * concurrency + 10 * (index + 1) + position,
                groups=process_groups(session["launchers"]),
            )
            say(f"c{concurrency} round {index + 1} {name}: {entry[name]}")
        entry["compare"] = round_compare(entry, names)
        series["rounds"].append(entry)
        series["summary"] = summary(series["rounds"])
        series.pop("stopped", None)
        done = [entry[name] for name in names if "error" not in entry[name]]
        if done:  # the next round sized from this one's runs: every steady window at least --min-seconds
            series["prompts"] = prompts_for_all(done, options, clients.count)
            series["run_seconds"] = max(run["wall_seconds"] for run in done) * series["prompts"] / entry["prompts"]
        write(out, body, logs)
    return True


def run_session(
    session: dict[str, Any],
    options: argparse.Namespace,
    clients: Clients,
    paths: tuple[Path, Path, Path],
    deadline: float,
) -> None:
    """Each --concurrency's series in turn, new ones after a warm-up, until done or `deadline` (monotonic)."""
    model, _, logs = paths
    by_concurrency = {s["concurrency"]: s for s in session["body"]["series"]}
    for concurrency in options.concurrency:
        series = by_concurrency.get(concurrency)
        if series is None:
            if deadline - time.monotonic() < 120 + 60 * len(session["launchers"]):  # warm-ups and one round
                reason = f"c{concurrency} not started: its warm-ups and one round would end after the deadline"
                session["body"].setdefault("not_started", []).append(reason)
                say(reason)
                return
            series = new_series(concurrency, options, session, clients, (model, logs))
            session["body"]["series"].append(series)
        if not run_series(series, options, session, clients, paths, deadline):
            return


def group_processes(pgid: int) -> list[tuple[int, str, str, float]]:
    """The processes of a group from /proc/<pid>/stat: pid, name, state and CPU seconds (user + system)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        head, _, rest = text.rpartition(")")
        fields = rest.split()
        if len(fields) > 13 and int(fields[2]) == pgid:
            ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
            found.append((int(stat.parent.name), head.partition("(")[2], fields[0], ticks / CLOCK_TICKS))
    return found


def group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs: one that is not a zombie. A launcher an earlier device call
    started is nobody's child here, and a container's init need not reap it: its zombie would keep the group in
    existence for `kill -0`."""
    return any(state != "Z" for _, _, state, _ in group_processes(pgid))


class CpuMeter:
    """The CPU share of each process of some process groups over a run (CPU seconds / wall seconds): a group's
    leader under the group's name (the front door: uvicorn runs in the launcher; vLLM's API server), the others
    under their own (vLLM's engine core). A share near 1.0 is a process bound by its one Python thread."""

    def __init__(self, groups: Mapping[str, int]):
        self.groups = groups
        self.started = time.monotonic()
        self.before = self._sample()

    def _sample(self) -> dict[int, tuple[str, float]]:
        return {
            pid: (name if pid == pgid else f"{name}: {comm}", seconds)
            for name, pgid in self.groups.items()
            for pid, comm, _, seconds in group_processes(pgid)
        }

    def shares(self) -> dict[str, float]:
        wall = time.monotonic() - self.started
        out: dict[str, float] = {}
        for pid, (label, seconds) in sorted(self._sample().items()):
            used = seconds - self.before.get(pid, (label, 0.0))[1]
            if used > 0.01 * wall:  # idle helpers left out
                out[label if label not in out else f"{label} ({pid})"] = round(used / wall, 3)
        return out


def stop_group(pid: int) -> None:
    """SIGTERM to a process group, SIGKILL after 60 s (the launcher drains, then stops vLLM). A launcher this
    process started is reaped here; the group counts as gone once only zombies are left of it (group_alive)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
        for _ in range(60):
            time.sleep(1)
            with contextlib.suppress(ChildProcessError):  # started by an earlier call: nobody's child here
                os.waitpid(pid, os.WNOHANG)
            if not group_alive(pid):
                return
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
    clients = Clients(options.clients, env, logs)
    starting = threading.Thread(target=clients.start, daemon=True)  # imports while vLLM loads
    starting.start()
    session = live_session(scratch, options) if options.resume else None
    if options.resume:
        say("resuming the session in " + str(scratch) if session else "no live session to resume: a new one")
    session = session or start(options, model, env, logs)
    body = session["body"]
    try:
        starting.join()
        if len(clients.workers) < clients.count:
            body["error"] = "the load clients did not start (their logs are in the tarball)"
        if "error" not in body:
            run_session(session, options, clients, (model, out, logs), started + options.deadline)
        return 1 if "error" in body else 0
    finally:
        clients.stop()
        say("load clients stopped")
        body["seconds"] = round(body.get("seconds", 0) + time.monotonic() - started, 1)  # over the session's calls
        keep = options.keep_running and "error" not in body
        if keep:
            (scratch / SESSION).write_text(json.dumps(session))
        else:
            for launcher in session["launchers"]:
                stop_group(launcher["pid"])
            say("launchers stopped")
            (scratch / SESSION).unlink(missing_ok=True)
        body["launcher_left_running"] = keep
        write(out, body, logs)
        say(json.dumps({s["concurrency"]: s.get("summary") for s in body["series"]} or body.get("error"), indent=2))


if __name__ == "__main__":
    sys.exit(main())
