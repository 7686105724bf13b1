"""The vLLM child process: start it on a loopback port, keep its last log lines, stop it for good.

vLLM runs in its own process group (its API server, engine core and workers), so a stop reaches all
of them: SIGTERM to the group, a grace period, then SIGKILL, with a log line at each step.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence

from .. import settings

log = logging.getLogger("launcher.supervisor")

PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _stop_with_parent() -> None:
    """In the child, before exec: get SIGTERM if the launcher dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class VllmProcess:
    """One vLLM OpenAI server, started once; the launcher exits when it dies (the container restarts)."""

    def __init__(
        self,
        args: Sequence[str],
        port: int,
        env: dict[str, str] | None = None,
        python: str | None = None,
        log_lines: int = 200,
        echo: bool = True,
        redact: Callable[[str], str] = str,
        on_line: Callable[[str], None] | None = None,
    ):
        self.port = port
        self.on_line = on_line  # called with every output line (the start report reads vLLM's figures)
        # LAUNCHER_VLLM_PYTHON / LAUNCHER_VLLM_ENTRYPOINT: another interpreter, or a stand-in server for tests.
        entrypoint = settings.get("LAUNCHER_VLLM_ENTRYPOINT")
        self.command = [
            python or settings.get("LAUNCHER_VLLM_PYTHON") or sys.executable,
            "-m",
            entrypoint,
            *args,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        # The front door enforces the API key; a key in vLLM's own environment would lock out our probe.
        self.env = {k: v for k, v in {**os.environ, **(env or {})}.items() if k != "VLLM_API_KEY"}
        self.lines: collections.deque[str] = collections.deque(maxlen=log_lines)
        self.echo = echo
        self.redact = redact  # vLLM echoes its arguments and may log tokens: lines are redacted before kept
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.stopped = False

    def start(self) -> None:
        log.info("starting vLLM on 127.0.0.1:%d", self.port)
        self.started_at = time.monotonic()
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
            preexec_fn=_stop_with_parent if sys.platform == "linux" else None,
        )
        threading.Thread(target=self._pump, name="vllm-log", daemon=True).start()

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for raw in self.process.stdout:
            line = self.redact(raw.decode(errors="replace").rstrip())
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)
            if self.echo:
                print(f"[vllm] {line}", file=sys.stderr, flush=True)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def last_lines(self, count: int = 30) -> list[str]:
        return list(self.lines)[-count:]

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM the whole group, wait `grace` seconds, then SIGKILL; returns vLLM's exit code."""
        if self.process is None:
            return None
        if self.stopped:
            return self.process.returncode
        if self.process.poll() is None:
            log.info("stopping vLLM (SIGTERM, %.0f s grace)", grace)
            self._signal_group(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                log.warning("vLLM did not stop within %.0f s; SIGKILL", grace)
        # Workers that outlive the API server are ended too: nothing of the group is left behind.
        self._signal_group(signal.SIGKILL)
        code = self.process.wait()
        self.stopped = True
        log.info("vLLM stopped (exit code %s)", code)
        return code
