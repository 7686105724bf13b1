"""Soak: N concurrent streaming clients through the real `launcher serve` for minutes; errors, latency, memory.

vLLM is the stand-in (tests/harness/fake_vllm.py, a token every few ms) so that the front door, not a CPU-bound
model, is what is pushed. Samples the launcher's RSS every few seconds; "growth" compares the mean of the
last quarter of samples with the first quarter after warm-up. Loopback only, bounded in time.

python -m bench.soak [--streams 128] [--seconds 180] [--tokens 128] [--token-ms 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]

from tests.harness.launcher_process import LauncherProcess  # noqa: E402
from tests.harness.sse_load import run_load  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "soak.json"
MODEL_CONFIG = ROOT / "tests" / "fixtures" / "models" / "meta-llama__Llama-3.1-8B-Instruct"


def soak(streams: int, seconds: float, tokens: int, token_ms: float, log_dir: Path) -> dict:
    env = {
        "LAUNCHER_VLLM_ENTRYPOINT": "tests.harness.fake_vllm",
        "FAKE_VLLM": f"token-ms={token_ms}",
        "PYTHONPATH": f"{ROOT}:{ROOT / 'server'}",
    }
    launcher = LauncherProcess(MODEL_CONFIG, log_dir / "soak-launcher.log", env=env).start()
    samples: list[tuple[float, float]] = []
    stop = threading.Event()
    try:
        launcher.wait_ready(60)
        assert launcher.process is not None
        process = psutil.Process(launcher.process.pid)

        def sample() -> None:
            while not stop.wait(2.0):
                samples.append((time.monotonic(), process.memory_info().rss / 2**20))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        body = {"model": "fake", "prompt": "x", "max_tokens": tokens}
        result = asyncio.run(run_load("127.0.0.1", launcher.port, body, streams, duration=seconds, warmup=5.0))
        stop.set()
        sampler.join()
        still_running = launcher.process.poll() is None
    finally:
        stop.set()
        launcher.stop()
    quarter = max(len(samples) // 4, 1)
    first = sum(rss for _, rss in samples[:quarter]) / quarter
    last = sum(rss for _, rss in samples[-quarter:]) / quarter
    return {
        "streams": streams,
        "seconds": seconds,
        "tokens_per_request": tokens,
        "token_ms": token_ms,
        **result.summary(),
        "launcher_alive_after": still_running,
        "rss_mib_first_quarter": round(first, 1),
        "rss_mib_last_quarter": round(last, 1),
        "rss_growth_mib": round(last - first, 1),
        "rss_samples": len(samples),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=180)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--token-ms", type=float, default=10)
    options = parser.parse_args()
    log_dir = ROOT / "bench" / "out"
    log_dir.mkdir(exist_ok=True)
    report = soak(options.streams, options.seconds, options.tokens, options.token_ms, log_dir)
    report["date"] = time.strftime("%Y-%m-%d %H:%M:%S")
    print(json.dumps(report, indent=2))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if report["errors"] == 0 and report["launcher_alive_after"] else 1


if __name__ == "__main__":
    sys.exit(main())
