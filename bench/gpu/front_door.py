"""The front door on the GPU: `launcher serve` against vLLM directly, same vLLM, same machine, same load.

For each precision (BF16, `--quantization fp8`) of the Llama-3-8B shape (all 32 layers, random weights,
`--max-model-len 2048`, vLLM's defaults otherwise: CUDA graphs, torch.compile), `launcher serve` starts vLLM
behind the front door; then `vllm bench serve` (random dataset, 512 in / 256 out, --ignore-eos) runs against
vLLM's own port and against the front door, at concurrency 64 and unbounded, alternating direct / front door.
Records output tok/s and TTFT / ITL p50 / p99 of both and their ratios. With two GPUs the two precisions run at
the same time, one per GPU. Writes h100-front-door.json (and the logs) into --out.

    PYTHONPATH=/tmp/site:server python3 -m bench.gpu.front_door --out $OUT [--prompts 300]

Not run yet: the session that wrote it (2026-11-25) spent its device time on the ground truth
(docs/ground-truth.md). Budget one 10-minute command on a two-GPU machine, right after the bundle's install.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import models
from .ground_truth import free_port, machine_facts, say

PRECISIONS = {"bf16": [], "fp8": ["--quantization", "fp8"]}
METRICS = ("output_throughput", "p50_ttft_ms", "p99_ttft_ms", "p50_itl_ms", "p99_itl_ms", "p50_tpot_ms",
           "completed", "duration")


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


def bench(model: Path, port: int, prompts: int, concurrency: int | None, out: Path, name: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "vllm.entrypoints.cli.main", "bench", "serve", "--backend", "vllm",
               "--base-url", f"http://127.0.0.1:{port}", "--model", str(model), "--dataset-name", "random",
               "--random-input-len", "512", "--random-output-len", "256", "--num-prompts", str(prompts),
               "--ignore-eos", "--percentile-metrics", "ttft,tpot,itl", "--metric-percentiles", "50,99",
               "--disable-tqdm", "--save-result", "--result-dir", str(out), "--result-filename", f"{name}.json"]
    if concurrency:
        command += ["--max-concurrency", str(concurrency)]
    with open(out / f"{name}.log", "wb") as log:
        subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, timeout=600, check=False)
    try:
        result = json.loads((out / f"{name}.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"error": (out / f"{name}.log").read_text(errors="replace")[-600:]}
    return {key: result.get(key) for key in METRICS}


def ratios(direct: dict[str, Any], door: dict[str, Any]) -> dict[str, Any]:
    if "error" in direct or "error" in door:
        return {}
    return {"throughput_ratio": round(door["output_throughput"] / direct["output_throughput"], 4),
            "ttft_p50_added_ms": round(door["p50_ttft_ms"] - direct["p50_ttft_ms"], 2),
            "ttft_p99_added_ms": round(door["p99_ttft_ms"] - direct["p99_ttft_ms"], 2),
            "itl_p50_added_ms": round(door["p50_itl_ms"] - direct["p50_itl_ms"], 3),
            "itl_p99_added_ms": round(door["p99_itl_ms"] - direct["p99_itl_ms"], 3)}


def run_precision(name: str, gpu: int, model: Path, prompts: int, out: Path, results: dict[str, Any]) -> None:
    port = free_port()
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "launcher.cli", "serve", "--port", str(port), "--host", "127.0.0.1", "--",
               "--model", str(model), "--load-format", "dummy", "--max-model-len", "2048", *PRECISIONS[name]]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": str(gpu), "VLLM_USE_FLASHINFER_SAMPLER": "0"}
    start = time.perf_counter()
    with open(logs / f"launcher-{name}.log", "wb") as log:
        launcher = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    entry: dict[str, Any] = {"args": command[command.index("--") + 1:], "gpu": gpu}
    try:
        while time.perf_counter() - start < 420 and launcher.poll() is None:
            if get_json(f"http://127.0.0.1:{port}/ready") is not None:
                break
            time.sleep(1)
        status = get_json(f"http://127.0.0.1:{port}/status")
        if status is None:
            entry["error"] = "launcher serve did not become ready"
            return
        entry["ready_seconds"] = round(time.perf_counter() - start, 1)
        direct_port = status["vllm_port"]
        say(f"{name}: ready in {entry['ready_seconds']} s (front door {port}, vLLM {direct_port})")
        bench(model, direct_port, 64, 64, logs, f"{name}-warmup")
        for label, concurrency in (("c64", 64), ("unbounded", None)):
            cell: dict[str, Any] = {}
            for target, target_port in (("direct", direct_port), ("front_door", port)):
                cell[target] = bench(model, target_port, prompts, concurrency, logs, f"{name}-{label}-{target}")
                say(f"{name} {label} {target}: {cell[target]}")
            cell["ratios"] = ratios(cell["direct"], cell["front_door"])
            entry[label] = cell
    finally:
        results[name] = entry
        try:
            os.killpg(launcher.pid, signal.SIGTERM)
            launcher.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(launcher.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", "bench/out/gpu"))
    parser.add_argument("--scratch", default="/var/tmp/front-door")
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--precisions", default="bf16,fp8")
    options = parser.parse_args()
    out, scratch = Path(options.out), Path(options.scratch)
    out.mkdir(parents=True, exist_ok=True)
    header = machine_facts()
    model = model_dir(scratch)
    results: dict[str, Any] = {}
    names = options.precisions.split(",")
    gpus = max(header["gpu_count"], 1)
    threads = []
    for i, name in enumerate(names):
        thread = threading.Thread(target=run_precision, args=(name, i % gpus, model, options.prompts, out, results))
        thread.start()
        threads.append(thread)
        if gpus == 1:
            thread.join()
    for thread in threads:
        thread.join()
    body = {**header, "model": "Llama-3-8B shape (Llama-3.1-8B-Instruct config, 32 layers, random weights)",
            "load": {"dataset": "random", "input_len": 512, "output_len": 256, "prompts": options.prompts,
                     "ignore_eos": True}, "concurrent_precisions": gpus > 1 and len(names) > 1, "runs": results}
    try:
        bf16, fp8 = results["bf16"], results["fp8"]
        body["fp8_vs_bf16_front_door"] = {
            label: round(fp8[label]["front_door"]["output_throughput"]
                         / bf16[label]["front_door"]["output_throughput"], 3) for label in ("c64", "unbounded")}
    except (KeyError, TypeError, ZeroDivisionError):
        pass
    (out / "h100-front-door.json").write_text(json.dumps(body, indent=2) + "\n")
    with open(out / "front-door-logs.tar.gz", "wb") as handle:
        subprocess.run(["tar", "-czf", "-", "-C", str(out), "logs"], stdout=handle, check=False)
    subprocess.run(["rm", "-rf", str(out / "logs")], check=False)
    say(json.dumps(body, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
