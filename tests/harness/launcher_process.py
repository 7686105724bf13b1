"""Start the real `launcher serve` (with a real CPU vLLM child) for end-to-end tests, and stop it for good."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from launcher.serve.vllm_process import free_port

CPU_ARGS = ["--served-model-name", "smollm2", "--max-model-len", "2048", "--gpu-memory-utilization", "0.3"]
# A fixed 2 GiB KV cache: vLLM then skips its NUMA-share check (and so does our rule), so tests that start
# several servers do not depend on how much memory the machine has free at that moment.
TEST_ENV = {"PYTHONUNBUFFERED": "1", "VLLM_CPU_KVCACHE_SPACE": "2"}


def http(
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@dataclass
class LauncherProcess:
    model: Path
    log_path: Path
    extra_args: list[str] = field(default_factory=list)
    serve_options: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    prefix: list[str] = field(default_factory=list)  # e.g. ["prlimit", "--nofile=256"]
    process: subprocess.Popen[bytes] | None = None
    ready_states: list[int] = field(default_factory=list)
    vllm_pid: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> LauncherProcess:
        command = [
            *self.prefix,
            sys.executable,
            "-m",
            "launcher.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *self.serve_options,
            "--",
            "--model",
            str(self.model),
            *CPU_ARGS,
            *self.extra_args,
        ]
        self.log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **TEST_ENV, **self.env},
            start_new_session=True,
        )
        return self

    def wait_ready(self, timeout: float = 900) -> None:
        """Poll /ready, recording each status, until 200; fail with the log's tail otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"launcher exited with {self.process.returncode}:\n{self.tail()}")
            try:
                status, _, _ = http("GET", f"{self.url}/ready", timeout=5)
            except OSError:
                status = 0
            self.ready_states.append(status)
            if status == 200:
                self.vllm_pid = self.status()["vllm_pid"]
                return
            time.sleep(1)
        raise AssertionError(f"launcher not ready after {timeout:.0f} s:\n{self.tail()}")

    @property
    def api_key(self) -> str | None:
        """The first --api-key given to the launcher, if any (/status needs it)."""
        args = self.extra_args
        return args[args.index("--api-key") + 1] if "--api-key" in args else None

    def status(self) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {self.api_key}"} if self.api_key else None
        return json.loads(http("GET", f"{self.url}/status", headers=headers)[2])

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        """Whatever a test did, nothing of this launcher or its vLLM is left running."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                pass
        for group in (self.process.pid, self.vllm_pid):
            try:
                if group:
                    os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait()
        self.log.close()
