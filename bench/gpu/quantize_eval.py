"""Issue #7 on the GPU: `launcher quantize` to FP8-Dynamic, then BF16 and FP8 side by side behind `launcher serve`.

On the GPU machine, after the vLLM bundle (`install-on-device.sh install`: /tmp/site) and the quantize bundle
(`python3 -m bench.gpu.quant_bundle install`: /tmp/quant-site with the wrapper /tmp/quant-python, /tmp/eval-site,
the model in /var/tmp/quant-models), one call does, each step timed and the JSON rewritten after it:

  1. `launcher quantize MODEL --output SCRATCH/<name>-FP8-Dynamic` (llm-compressor's FP8_DYNAMIC oneshot, in the
     quantize worker's own interpreter: LAUNCHER_QUANT_PYTHON=/tmp/quant-python), its quantize-report.json kept;
  2. `launcher check` on both argument sets (what `launcher serve` will judge);
  3. both `launcher serve` at once on the one GPU, real weights, `--max-model-len 2048`, a small
     `--gpu-memory-utilization` each and a fixed `--kv-cache-memory-bytes` (two vLLM starts profiling the GPU's free
     memory at the same time skew each other: ground_truth.py's docstring), CUDA graphs and torch.compile on; their
     /status (predicted and observed) once ready;
  4. `launcher eval` on the shipped task launcher_arithmetic: BF16, then `--compare` FP8 on the same items: the
     recovery ratio FP8 / BF16;
  5. throughput through each front door with `vllm bench serve` (front_door.py's persistent load clients: random
     dataset, 512 in / 256 out, --ignore-eos), a discarded warm-up per side, then rounds BF16 FP8, FP8 BF16, ...
     (the order flips every round), both sides of a round on the same prompts (one dataset seed per round, a new
     one each round so that no prompt repeats on a server), each run's steady window at least --min-seconds by
     vLLM's own generation-token counter; per round FP8 / BF16, then the median and spread over the rounds.

No step starts that would end after --deadline (seconds from the start); both launchers are stopped at the end,
also on SIGTERM. Results: --out/<gpu>-quantize-eval.json (machine.results_path) and vllm-logs.tar.gz.

    # on the GPU machine (PYTHONPATH for the children is set here: server/, /tmp/site, /tmp/eval-site for eval):
    python3 -m bench.gpu.quantize_eval --out $OUT [--deadline 540] [--rounds 3] [--concurrency 64]
    # here, no GPU: real `launcher quantize` (LAUNCHER_QUANT_PYTHON or --quant-python), serve/eval/bench against
    # tests/harness/fake_vllm.py, tiny loads
    .venv/bin/python -m bench.gpu.quantize_eval --dry-run --quant-python .venv-quant/bin/python --out bench/out/qe-dry
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from . import machine
from .front_door import (
    FAKE_ENTRYPOINT,
    LOAD,
    Clients,
    bench,
    get_json,
    launcher_command,
    prompts_for_all,
    rate_of,
    round_order,
    stop_group,
    summary,
)
from .ground_truth import GIB, HARNESS_ENV, VLLM_VERSION, free_port, launcher_check, pack_logs, say
from .quant_bundle import EVAL_SITE, MODELS, QUANT_PYTHON

SIDES = ("bf16", "fp8")
LEFTOVERS = "launchers.json"  # in --scratch: the process groups of the launchers this call started
MODEL_NAME = "SmolLM2-135M-Instruct"
# The throughput figures a round compares, FP8 / BF16 (higher is better), and the latencies (lower is better).
THROUGHPUT_KEYS = {
    "throughput_ratio": "server_steady_output_throughput",  # vLLM's own count over the steady window
    "server_whole_run_throughput_ratio": "server_output_throughput",
    "client_throughput_ratio": "output_throughput",
}
LATENCY_KEYS = {"p50_ttft_ratio": "p50_ttft_ms", "p50_itl_ratio": "p50_itl_ms", "p99_itl_ratio": "p99_itl_ms"}
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
DRY_RUN_EVAL_NOTE = (
    "dry run: tests/harness/fake_vllm.py answers ' tok' x max_tokens to every completion, so no answer holds a "
    "number: exact_match is 0 on both sides by construction and the recovery n/a. This step checks the path "
    "(launcher eval -> lm-eval local-completions -> front door -> stand-in, --compare on the same items) on a few "
    "items; it is not a score"
)


# -- the arithmetic (tests/e2e/test_gpu_quantize_eval_method.py) -----------------------------------------------


def round_ratios(bf16: dict[str, Any], fp8: dict[str, Any]) -> dict[str, float]:
    """FP8 over BF16 for one round, each figure both sides have (none from a run that failed)."""
    if "error" in bf16 or "error" in fp8:
        return {}
    out = {}
    for name, key in {**THROUGHPUT_KEYS, **LATENCY_KEYS}.items():
        if bf16.get(key) and fp8.get(key):
            out[name] = round(fp8[key] / bf16[key], 4)
    return out


def eval_summary(report: dict[str, Any]) -> dict[str, Any]:
    """`launcher eval --compare`'s JSON, kept to what the results need: per side the task's metrics (scores with
    their standard errors), items, seconds; the recovery ratios."""

    def side(run: dict[str, Any]) -> dict[str, Any]:
        return {key: run.get(key) for key in ("results", "n-samples", "n-shot", "limit", "seconds", "model")}

    out: dict[str, Any] = {"tasks": report.get("tasks")}
    for key, name in (("base", "bf16"), ("compare", "fp8")):
        if key in report:
            out[name] = side(report[key])
    if "recovery" in report:
        out["recovery"] = report["recovery"]
    return out


def tokenizers_identical(first: Path, second: Path) -> bool | None:
    """Whether two checkpoints' tokenizer.json hold the same vocabulary, merges and added tokens (the quantize
    worker saves the tokenizer again): then the random dataset's prompts are the same token ids on both sides."""
    try:
        one, two = (json.loads((d / "tokenizer.json").read_text()) for d in (first, second))
    except (OSError, ValueError):
        return None
    return bool(one.get("model") == two.get("model") and one.get("added_tokens") == two.get("added_tokens"))


# -- the device steps ------------------------------------------------------------------------------------------


class Run:
    """One call's state: options, paths, environments, the JSON body and when it must end."""

    def __init__(self, options: argparse.Namespace):
        self.options = options
        self.started = time.monotonic()
        self.deadline = self.started + options.deadline
        self.out, self.scratch = Path(options.out), Path(options.scratch)
        self.logs = self.scratch / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)
        self.logs.mkdir(parents=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.model = Path(options.model).resolve()
        self.fp8 = Path(options.fp8_dir or self.scratch / f"{self.model.name}-FP8-Dynamic").resolve()
        extra = {**HARNESS_ENV, **OFFLINE}
        if options.dry_run:
            extra.update(LAUNCHER_VLLM_ENTRYPOINT=FAKE_ENTRYPOINT, FAKE_VLLM="token-ms=2")
        if options.quant_python:
            extra["LAUNCHER_QUANT_PYTHON"] = options.quant_python
        # No key: the front doors then guard nothing, /status answers without one, and so does launcher eval.
        environ = {k: v for k, v in os.environ.items() if k not in ("VLLM_API_KEY", "OPENAI_API_KEY")}
        self.env = machine.child_env(environ={**environ, **extra})
        self.eval_env = dict(self.env)
        if Path(options.eval_site).is_dir():  # lm-eval's stack beside /tmp/site, for the eval child only
            self.eval_env["PYTHONPATH"] += os.pathsep + options.eval_site
        self.body: dict[str, Any] = {"gpu": "NVIDIA H200" if options.dry_run else "unknown"}
        self.servers: dict[str, dict[str, Any]] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def write(self) -> None:
        self.body["seconds"] = round(time.monotonic() - self.started, 1)
        name = machine.results_path(self.body["gpu"], "quantize-eval").name
        (self.out / f"{name}.tmp").write_text(json.dumps(self.body, indent=2) + "\n")
        (self.out / f"{name}.tmp").replace(self.out / name)
        pack_logs(self.logs, self.out)

    def command(self, argv: list[str], log: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
        """A launcher subcommand, its output into logs/<log>.log: exit code and seconds, or the timeout."""
        started = time.monotonic()
        with open(self.logs / f"{log}.log", "wb") as handle:
            try:
                done = subprocess.run(
                    [sys.executable, "-m", "launcher.cli", *argv],
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                    env=env or self.env,
                    timeout=max(1.0, timeout),
                )
                code: int | None = done.returncode
            except subprocess.TimeoutExpired:
                code = None
        result: dict[str, Any] = {"exit_code": code, "seconds": round(time.monotonic() - started, 1)}
        if code is None:
            result["error"] = f"stopped after {timeout:.0f} s (its budget in --deadline)"
        elif code != 0:
            tail = (self.logs / f"{log}.log").read_text(errors="replace").strip().splitlines()[-3:]
            result["error"] = f"exit {code}: " + " | ".join(tail)
        return result

    def serve_args(self, side: str) -> list[str]:
        args = ["--model", str(self.model if side == "bf16" else self.fp8), "--max-model-len", "2048"]
        args += ["--gpu-memory-utilization", str(self.options.gpu_memory_utilization)]
        if self.options.kv_cache_gib:
            args += ["--kv-cache-memory-bytes", str(int(self.options.kv_cache_gib * GIB))]
        return args


def step_quantize(run: Run) -> bool:
    shutil.rmtree(run.fp8, ignore_errors=True)  # this harness's own output from an earlier call
    say(f"quantize {run.model} -> {run.fp8}")
    result = run.command(["quantize", str(run.model), "--output", str(run.fp8)], "quantize", min(300, run.left()))
    report = run.fp8 / "quantize-report.json"
    if report.is_file():
        result["report"] = json.loads(report.read_text())
    run.body["quantize"] = result
    say(f"quantize: {result.get('error') or str(result['seconds']) + ' s'}")
    return "error" not in result and report.is_file()


def step_check(run: Run) -> None:
    """`launcher check` on each side's arguments: on the device the detected platform, in a dry run the H200's."""
    target = "cuda:h200" if run.options.dry_run else None
    results = {}
    for side in SIDES:
        args = run.serve_args(side)
        model, rest = Path(args[1]), args[2:]
        results[side] = launcher_check(model, rest, target, VLLM_VERSION, run.env)
    run.body["check"] = results


def start_server(run: Run, side: str) -> None:
    port = free_port()
    command = launcher_command(port, run.serve_args(side), run.options.dry_run)
    with open(run.logs / f"{side}-launcher.log", "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=run.env, start_new_session=True)
    run.servers[side] = {"pid": process.pid, "process": process, "port": port, "started": time.monotonic()}
    pids = {name: server["pid"] for name, server in run.servers.items()}
    (run.scratch / LEFTOVERS).write_text(json.dumps(pids))  # a call cut short leaves them running: the next stops them


def stop_leftovers(scratch: Path) -> list[int]:
    """The launchers an earlier call started and did not stop (it was killed): their process groups, by id."""
    try:
        pids = list(json.loads((scratch / LEFTOVERS).read_text()).values())
    except (OSError, ValueError):
        return []
    threads = [threading.Thread(target=stop_group, args=(pid,)) for pid in pids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (scratch / LEFTOVERS).unlink(missing_ok=True)
    return pids


def step_serve(run: Run) -> bool:
    """Both launchers at once; each side's ready time, /status and served model name."""
    for side in SIDES:
        start_server(run, side)
    ends = min(time.monotonic() + run.options.ready_timeout, run.deadline)
    waiting = set(SIDES)
    served: dict[str, Any] = {}
    while waiting and time.monotonic() < ends:
        for side in sorted(waiting):
            server = run.servers[side]
            if server["process"].poll() is not None:
                served[side] = {"error": f"launcher serve exited with {server['process'].returncode}"}
                waiting.discard(side)
            elif get_json(f"http://127.0.0.1:{server['port']}/ready") is not None:
                status = get_json(f"http://127.0.0.1:{server['port']}/status") or {}
                models = get_json(f"http://127.0.0.1:{server['port']}/v1/models") or {}
                server["vllm_port"] = int(status["vllm_port"])
                server["name"] = ((models.get("data") or [{}])[0]).get("id")
                served[side] = {
                    "ready_seconds": round(time.monotonic() - server["started"], 1),
                    "served_model_name": server["name"],
                    "args": run.serve_args(side),
                    **{key: status.get(key) for key in ("predicted", "observed", "error", "ignored_flags")},
                }
                say(f"{side} ready in {served[side]['ready_seconds']} s (front door {server['port']})")
                waiting.discard(side)
        time.sleep(1)
    for side in waiting:
        served[side] = {"error": f"not ready within {ends - run.servers[side]['started']:.0f} s"}
    run.body["serve"] = served
    return all("vllm_port" in run.servers[side] for side in SIDES)


def step_eval(run: Run, reserve: float) -> None:
    """`launcher eval` BF16 --compare FP8; in a dry run a few items only (DRY_RUN_EVAL_NOTE)."""
    budget = min(run.options.eval_timeout, run.left() - reserve)
    limit = min(run.options.eval_limit, 8) if run.options.dry_run else run.options.eval_limit
    entry: dict[str, Any] = {"limit": limit, "num_concurrent": run.options.eval_concurrency}
    if run.options.dry_run:
        entry["note"] = DRY_RUN_EVAL_NOTE
    if budget < 30:
        entry["skipped"] = f"{budget:.0f} s left for it before the throughput rounds"
        run.body["eval"] = entry
        return
    bf16, fp8 = run.servers["bf16"], run.servers["fp8"]
    output = run.scratch / "eval.json"
    output.unlink(missing_ok=True)
    argv = ["eval", "--base-url", f"http://127.0.0.1:{bf16['port']}", "--model", bf16["name"]]
    argv += ["--compare", f"http://127.0.0.1:{fp8['port']}", "--compare-model", fp8["name"], "--limit", str(limit)]
    argv += ["--num-concurrent", str(run.options.eval_concurrency), "--output", str(output)]
    say(f"eval: {limit} items per side, {budget:.0f} s at most")
    entry.update(run.command(argv, "eval", budget, run.eval_env))
    if output.is_file():
        entry.update(eval_summary(json.loads(output.read_text())))
    run.body["eval"] = entry
    say(f"eval: {entry.get('error') or entry.get('recovery')}")


def lm_eval_version(run: Run) -> str:
    code = "import importlib.metadata as m; print(m.version('lm_eval'))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run.eval_env, timeout=60)
    return done.stdout.strip() or "not importable"


def served_model(run: Run, side: str) -> Path:
    """What `vllm bench serve --model` names: the served model name (the checkpoint path) and the tokenizer."""
    return run.model if side == "bf16" else run.fp8


def load_of(prompts: int, options: argparse.Namespace) -> tuple[int, int, float]:
    """front_door.bench's load: prompts, concurrency, vLLM's --random-range-ratio (0: every request 512 / 256)."""
    return (prompts, options.concurrency, options.range_ratio)


def step_throughput(run: Run, clients: Clients) -> None:
    options = run.options
    ports = {side: (run.servers[side]["port"], run.servers[side]["vllm_port"]) for side in SIDES}
    entry: dict[str, Any] = {
        "load": {
            **LOAD,
            "range_ratio": options.range_ratio,
            "concurrency": options.concurrency,
            "clients": options.clients,
        },
        "min_steady_seconds": options.min_seconds,
        "same_tokenizer": tokenizers_identical(run.model, run.fp8),
        "rounds": [],
    }
    run.body["throughput"] = entry
    warmup_prompts = max(options.warmup_prompts, 4 * options.concurrency)
    warmup_prompts += -warmup_prompts % clients.count
    entry["warmup"] = {}
    for side in SIDES:
        entry["warmup"][side] = bench(
            clients,
            served_model(run, side),
            ports[side],
            load_of(warmup_prompts, options),
            run.logs,
            f"{side}-warmup",
            timeout=min(300, max(30, run.left())),
            seed=999,
        )
        say(f"{side} warm-up: {entry['warmup'][side]}")
    runs = [w for w in entry["warmup"].values() if "error" not in w]
    if len(runs) < 2:
        entry["stopped"] = "a warm-up failed"
        run.write()
        return
    prompts = prompts_for_all(runs, options, clients.count)
    seconds = max(prompts / rate_of(w) + max(0.0, w.get("wall_seconds", 0) - w.get("duration", 0)) for w in runs)
    run.write()
    for index in range(options.rounds):
        if time.monotonic() + 2 * seconds * 1.1 > run.deadline - options.stop_reserve:
            entry["stopped"] = f"round {index + 1} not started: it would end after the deadline"
            break
        order = round_order(SIDES, index)
        result: dict[str, Any] = {"round": index + 1, "order": list(order), "prompts": prompts}
        for side in order:
            result[side] = bench(
                clients,
                served_model(run, side),
                ports[side],
                load_of(prompts, options),
                run.logs,
                f"round{index + 1}-{side}",
                timeout=seconds * 3,
                seed=1000 + index,  # the same prompts for both sides of a round, new ones each round
            )
            say(f"round {index + 1} {side}: {result[side]}")
        result["compare"] = round_ratios(result["bf16"], result["fp8"])
        entry["rounds"].append(result)
        entry["summary"] = summary(entry["rounds"])
        done = [result[side] for side in SIDES if "error" not in result[side]]
        if done:  # the next round sized from this one's runs: both steady windows at least --min-seconds
            new_prompts = prompts_for_all(done, options, clients.count)
            seconds = max(r["wall_seconds"] for r in done) * new_prompts / prompts
            prompts = new_prompts
        run.write()


def start_clients(clients: Clients, failures: list[str]) -> None:
    try:
        clients.start()
    except Exception as exc:  # a client that could not import vLLM's benchmark: said in the JSON
        failures.append(f"{type(exc).__name__}: {exc}")


def stop_servers(run: Run) -> None:
    """Each launcher's /status once more (what vLLM reported after the start, if anything), then both stopped."""
    for side, server in run.servers.items():
        status = get_json(f"http://127.0.0.1:{server['port']}/status")
        if status and side in (run.body.get("serve") or {}):
            run.body["serve"][side]["at_end"] = {key: status.get(key) for key in ("predicted", "observed", "error")}
    threads = [threading.Thread(target=stop_group, args=(s["pid"],)) for s in run.servers.values()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (run.scratch / LEFTOVERS).unlink(missing_ok=True)


def options_of(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bundled = MODELS / MODEL_NAME
    here = machine.ROOT / "models" / MODEL_NAME
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    parser.add_argument("--scratch", default="/var/tmp/quantize-eval")
    parser.add_argument("--model", default=str(bundled if bundled.is_dir() else here), help="the BF16 checkpoint")
    parser.add_argument("--fp8-dir", help="default: SCRATCH/<model>-FP8-Dynamic")
    default_quant = os.environ.get("LAUNCHER_QUANT_PYTHON") or (str(QUANT_PYTHON) if QUANT_PYTHON.is_file() else None)
    parser.add_argument("--quant-python", default=default_quant, help="LAUNCHER_QUANT_PYTHON for launcher quantize")
    parser.add_argument("--eval-site", default=str(EVAL_SITE), help="lm-eval's stack, added for the eval child")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.3)
    parser.add_argument("--kv-cache-gib", type=float, default=4.0, help="--kv-cache-memory-bytes (0: vLLM profiles)")
    parser.add_argument("--eval-limit", type=int, default=300, help="items per side (the task has 300)")
    parser.add_argument("--eval-concurrency", type=int, default=8)
    parser.add_argument("--eval-timeout", type=float, default=180)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--clients", type=int, default=4, help="`vllm bench serve` workers sharing the load")
    parser.add_argument("--rounds", type=int, default=3, help="BF16 FP8, FP8 BF16, ...")
    parser.add_argument("--range-ratio", type=float, default=0.0, help="vLLM's --random-range-ratio")
    parser.add_argument("--prompts", type=int, default=500, help="prompts per measured run, at least")
    parser.add_argument("--warmup-prompts", type=int, default=256, help="at least; 4 x the concurrency when more")
    parser.add_argument("--min-seconds", type=float, default=30, help="each run's steady window lasts this long")
    parser.add_argument("--deadline", type=float, default=540, help="seconds: start no step that would end later")
    parser.add_argument("--stop-reserve", type=float, default=30, help="seconds kept for stopping at the end")
    parser.add_argument("--ready-timeout", type=float, default=300)
    parser.add_argument("--dry-run", action="store_true", help="tests/harness/fake_vllm.py instead of vLLM, tiny load")
    options = parser.parse_args(argv)
    if options.dry_run:
        options.concurrency, options.clients, options.prompts = min(options.concurrency, 4), min(options.clients, 2), 16
        options.warmup_prompts, options.min_seconds, options.rounds = 8, 2.0, min(options.rounds, 2)
    return options


def on_term(*_: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the stopping in `finally` is not cut short again
    sys.exit(143)


def main(argv: list[str] | None = None) -> int:
    options = options_of(argv)
    run = Run(options)
    signal.signal(signal.SIGTERM, on_term)  # `timeout` ends the call: the launchers go too
    leftovers = stop_leftovers(run.scratch)
    if leftovers:
        say(f"stopped the launchers an earlier call left running: {leftovers}")
    facts: dict[str, Any] = {}
    gather = threading.Thread(
        target=lambda: facts.update(machine.facts("NVIDIA H200" if options.dry_run else None)), daemon=True
    )
    gather.start()
    run.body.update(
        dry_run=options.dry_run,
        leftovers_stopped=leftovers,
        model=str(run.model),
        fp8_dir=str(run.fp8),
        env={key: run.env.get(key) for key in (*HARNESS_ENV, "LAUNCHER_QUANT_PYTHON", "LAUNCHER_VLLM_ENTRYPOINT")},
        method="quantize alone (timed); both launchers started at once on one GPU, each --gpu-memory-utilization "
        f"{options.gpu_memory_utilization} and --kv-cache-memory-bytes {options.kv_cache_gib} GiB; launcher eval BF16 "
        "--compare FP8 on the same items; throughput through each front door: a discarded warm-up per side, then "
        "rounds BF16 FP8, FP8 BF16, ... on one dataset seed per round (the same prompts for both sides), each run "
        "sized for a steady window of --min-seconds by vLLM's generation-token counter; ratios FP8 / BF16",
    )
    clients = Clients(options.clients, run.env, run.logs)
    try:
        quantized = step_quantize(run)
        gather.join()
        run.body = {**facts, **{key: value for key, value in run.body.items() if key != "gpu"}}
        run.body["versions"] = {
            "vllm": facts.get("vllm"),
            "torch": facts.get("torch"),
            "lm_eval": lm_eval_version(run),
            "quantize_worker": (run.body["quantize"].get("report") or {}).get("versions"),
        }
        run.write()
        if not quantized:
            run.body["error"] = "launcher quantize failed (its log is in the tarball)"
            return 1
        step_check(run)
        failures: list[str] = []
        starting = threading.Thread(target=start_clients, args=(clients, failures), daemon=True)
        starting.start()  # vLLM's benchmark imported while vLLM loads
        ready = step_serve(run)
        run.write()
        if not ready:
            run.body["error"] = "a launcher did not become ready (its log is in the tarball)"
            return 1
        # the throughput step needs two warm-ups and one round: about 4 x (--min-seconds + 15 s)
        step_eval(run, reserve=4 * (options.min_seconds + 15) + options.stop_reserve)
        run.write()
        starting.join(timeout=max(1.0, run.left()))
        if failures or len(clients.workers) < clients.count:
            run.body["error"] = f"the load clients did not start: {failures} (their logs are in the tarball)"
            return 1
        step_throughput(run, clients)
        return 0
    finally:
        clients.stop()
        stop_servers(run)
        run.write()
        summary = (run.body.get("throughput") or {}).get("summary")
        say(json.dumps({"eval": (run.body.get("eval") or {}).get("recovery"), "throughput": summary}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
