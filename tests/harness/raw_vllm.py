"""Raw CPU vLLM, with no launcher in front: the ground truth that `launcher check` is measured against.

Used by tests/e2e/test_ground_truth_cpu.py and bench/verdict_vs_vllm.py. The child is the launcher's own
`VllmProcess` (its own process group; stop = SIGTERM to the group, grace, SIGKILL); this adds what a
ground-truth run needs on top: wait until ready *or* dead, send one completion, time both from the
start, and pick the root-cause lines out of vLLM's log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from launcher.serve.vllm_process import VllmProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
SMOLLM2 = Path(os.environ.get("LAUNCHER_TEST_MODEL", ROOT / "models" / "SmolLM2-135M-Instruct"))
HEAD16_CONFIG = ROOT / "tests" / "fixtures" / "models" / "synthetic__tiny-llama-head16"
# What fits this 2-core CPU host: vLLM's default 0.92 asks for more of NUMA node 0 than is left.
CPU_ARGS = ["--max-model-len", "2048", "--gpu-memory-utilization", "0.3"]
FAILS_WITHIN = 300.0  # seconds for vLLM to die on a refused combination (alone: about 30 s)
READY_WITHIN = 900.0  # seconds for vLLM to say ready (alone, SmolLM2 on 2 cores: 95-150 s; 5x that on a busy host)
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")

# "(Worker pid=1) ERROR 11-25 17:37:00 [multiproc_executor.py:953] " in front of each vLLM log line.
_LOG_PREFIX = re.compile(r"^\([^)]*\) [A-Z]+ \d\d-\d\d [\d:]+ \[[^\]]*\] ")
_EXCEPTION = re.compile(r"^(?:[\w.]+\.)?\w*(?:Error|Exception)\b: \S")


def build_head16_checkpoint(dest: Path, seed: int = 0) -> Path:
    """A real checkpoint of the head_dim-16 fixture config: random bf16 weights, SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(HEAD16_CONFIG)).to(torch.bfloat16)
    model.save_pretrained(dest)
    for name in TOKENIZER_FILES:
        if (SMOLLM2 / name).is_file():
            shutil.copy(SMOLLM2 / name, dest / name)
    return dest


@dataclass(frozen=True)
class CpuCase:
    argv: list[str]
    rule: str | None  # the rule of `launcher check` that refuses it; None: accepted
    fails: str | None  # how vLLM fails: "exit" (non-zero, before ready) or "first-request"; None: it serves


def cpu_cases(head16: Path) -> dict[str, CpuCase]:
    """The ground-truth combinations on CPU, by name; `head16` is where build_head16_checkpoint wrote."""
    smollm2 = ["--model", str(SMOLLM2)]
    return {
        "fp8": CpuCase([*smollm2, *CPU_ARGS, "--quantization", "fp8"], "cpu-fp8-quantization", "exit"),
        # 0.1: the tiny model needs little KV cache, and leaves the memory to what runs beside it.
        "head16": CpuCase(
            ["--model", str(head16), "--max-model-len", "2048", "--gpu-memory-utilization", "0.1"],
            "cpu-head-size",
            "first-request",
        ),
        # vLLM's own default --gpu-memory-utilization 0.92: refused or not depends on the node's free memory now.
        "default-memory": CpuCase([*smollm2, "--max-model-len", "2048"], "cpu-memory-utilization", "exit"),
        "served": CpuCase([*smollm2, *CPU_ARGS], None, None),
    }


@dataclass
class Reply:
    status: int | None  # None: no HTTP answer at all (connection refused or reset, timeout)
    text: str | None  # the first choice's text when vLLM answered 200
    detail: str  # the body, or the connection error
    seconds: float  # since the vLLM process started


class RawVllm:
    """`python -m vllm.entrypoints.openai.api_server ARGS` on a free loopback port; a context manager."""

    def __init__(self, args: list[str], log_path: Path | None = None):
        self.child = VllmProcess(args, free_port(), log_lines=20000, echo=False)
        # The defaults that `launcher check` assumes: no VLLM_* from the caller's shell.
        self.child.env = {k: v for k, v in self.child.env.items() if not k.startswith("VLLM_")}
        self.log_path = log_path
        self.ready_seconds: float | None = None  # since the start: when /health first answered 200
        self.exit_seconds: float | None = None  # since the start: when the process exited
        self._changed = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.child.port}"

    def start(self) -> RawVllm:
        self.child.start()
        threading.Thread(target=self._watch, name="raw-vllm-watch", daemon=True).start()
        return self

    def __enter__(self) -> RawVllm:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _watch(self, poll: float = 0.1) -> None:
        """In the background from the start, so the times are right whenever a caller looks."""
        while self.child.alive():
            if self.ready_seconds is None and self._healthy():
                self.ready_seconds = self.seconds()
                self._changed.set()
            time.sleep(poll)
        self.exit_seconds = self.seconds()
        self._changed.set()

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200
        except OSError:  # refused while loading; HTTPError and timeouts are OSErrors too
            return False

    def seconds(self) -> float:
        return time.monotonic() - self.child.started_at

    def returncode(self) -> int | None:
        return self.child.returncode()

    def wait(self, timeout: float) -> str:
        """Until vLLM is ready ("ready") or has exited ("exited"), at most `timeout` s from its start ("timeout")."""
        self._changed.wait(max(self.child.started_at + timeout - time.monotonic(), 0))
        if self.exit_seconds is not None and self.ready_seconds is None:
            self._drain()
            return "exited"
        return "ready" if self.ready_seconds is not None else "timeout"

    def wait_exit(self, timeout: float) -> int | None:
        assert self.child.process is not None
        try:
            code = self.child.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self._drain()
        return code

    def _drain(self, quiet: float = 0.3, limit: float = 5.0) -> None:
        """After an exit: let the exit time and the log reader catch up (no new line for `quiet` seconds)."""
        deadline, count = time.monotonic() + limit, -1
        while (count != len(self.child.lines) or self.exit_seconds is None) and time.monotonic() < deadline:
            count = len(self.child.lines)
            time.sleep(quiet)

    def complete(self, prompt: str, max_tokens: int = 8, timeout: float = 120) -> Reply:
        body = {"model": self.model, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0}
        request = urllib.request.Request(
            f"{self.url}/v1/completions", data=json.dumps(body).encode(), headers={"content-type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read().decode(errors="replace")
                return Reply(response.status, json.loads(raw)["choices"][0]["text"], raw, self.seconds())
        except urllib.error.HTTPError as error:
            return Reply(error.code, None, error.read().decode(errors="replace"), self.seconds())
        except OSError as error:
            return Reply(None, None, f"{type(error).__name__}: {error}", self.seconds())

    @property
    def model(self) -> str:
        args = self.child.command
        return args[args.index("--model") + 1]

    def lines(self) -> list[str]:
        return [_LOG_PREFIX.sub("", line) for line in list(self.child.lines)]

    def log_text(self) -> str:
        return "\n".join(self.lines())

    def tail(self, count: int = 12) -> list[str]:
        return [line for line in self.lines() if line.strip()][-count:]

    def exception_lines(self) -> list[str]:
        """The `SomeError: message` lines of the tracebacks, each once, in order: the root cause first."""
        found = [line.strip() for line in self.lines() if _EXCEPTION.match(line.strip())]
        return list(dict.fromkeys(found))

    def stop(self) -> int | None:
        code = self.child.stop(grace=10)
        if self.log_path is not None:
            self.log_path.write_text("\n".join(self.child.lines) + "\n")
        return code
