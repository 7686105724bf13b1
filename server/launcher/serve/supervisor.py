"""`launcher serve`: check, start vLLM, serve the front door, supervise, drain on SIGTERM.

One loop does the work (uvicorn's signal handlers only record the signal):
- while vLLM starts: probe it with a 1-token generation until it answers or the startup timeout passes;
- while serving: re-probe every few seconds unless tokens are flowing (a busy engine is a live one);
- vLLM exits: not ready at once, log its last lines, exit non-zero (the container restarts);
- SIGTERM/SIGINT/SIGHUP: /ready turns 503, new /v1 requests (and those still sending their body) get 503 +
  Retry-After, in-flight ones (streams included) finish within --drain-timeout; only then is vLLM signalled, and
  the launcher exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

import aiohttp
import uvicorn
from starlette.types import ASGIApp

from ..check.arguments import ServeArgs
from ..check.engine import load_table
from ..check.verdict import check
from ..check.versions import resolve_version
from ..check.vllm_parser import full_spellings, release_for
from ..errors import LauncherError
from ..redact import Redactor, install_log_redaction
from . import metrics
from .front_door import FrontDoorState, create_app, probe_generation, upstream_trace
from .http_protocol import protocol_for
from .limits import FrontDoorLimits
from .prediction import start_report
from .presets import load_preset
from .vllm_process import VllmProcess, free_port, port_in_use

log = logging.getLogger("launcher.serve")

EXIT_CHILD_FAILED = 3
# Flags the front door owns: vLLM listens on loopback on a port we choose, without a key of its own.
FRONT_DOOR_FLAGS = ("host", "port", "api-key", "uds", "ssl-keyfile", "ssl-certfile", "root-path")


@dataclass
class ServeSettings:
    host: str
    port: int
    startup_timeout: float
    drain_timeout: float
    probe_interval: float = 2.0
    probe_timeout: float = 5.0
    stop_grace: float = 20.0


class Supervisor:
    """Owns the vLLM child and the front door state; the uvicorn server calls it on signals."""

    def __init__(self, vllm: VllmProcess, state: FrontDoorState, settings: ServeSettings, model_name: str):
        self.vllm = vllm
        self.state = state
        self.settings = settings
        self.model_name = model_name
        self.server: uvicorn.Server | None = None
        self.stop_requested = False
        self.exit_code = 0
        self.loaded = False

    async def run(self) -> None:
        """The supervision loop; ends by telling uvicorn to exit."""
        self.state.session = upstream_session(self.state.limits)
        self.vllm.start()
        self.state.status["vllm_pid"] = self.vllm.pid
        next_probe = 0.0
        try:
            while True:
                if self.stop_requested:
                    await self._drain()
                    return
                if not self.vllm.alive():
                    self._child_died()
                    return
                now = time.monotonic()
                if not self.loaded and now - self.vllm.started_at > self.settings.startup_timeout:
                    self._fail(
                        f"vLLM did not answer a generation within {self.settings.startup_timeout:.0f} s "
                        "(raise --startup-timeout for large models)"
                    )
                    return
                if now >= next_probe:
                    await self._probe()
                    next_probe = time.monotonic() + self.settings.probe_interval
                await asyncio.sleep(0.1)
                sample_loop_lag()
        finally:
            # Also when vLLM's API server died on its own: its engine and workers (same group) go too.
            await asyncio.to_thread(self.vllm.stop, self.settings.stop_grace)
            await self.state.session.close()
            if self.server is not None:
                self.server.should_exit = True

    async def _probe(self) -> None:
        state = self.state
        flowing = time.monotonic() - state.last_upstream_bytes < self.settings.probe_interval + 1
        if self.loaded and flowing:
            self._set_ready(True, "tokens are flowing")
            return
        timeout = self.settings.probe_timeout if self.loaded else max(self.settings.probe_timeout, 30.0)
        ok, reason = await probe_generation(state, self.model_name, timeout)
        if ok and not self.loaded:
            self.loaded = True
            seconds = time.monotonic() - self.vllm.started_at
            metrics.STARTUP_SECONDS.set(seconds)
            log.info("vLLM is ready: it answered a generation %.1f s after start", seconds)
        # A probe that timed out while tokens flowed in the meantime is not a frozen engine.
        if not ok and time.monotonic() - state.last_upstream_bytes < timeout:
            ok, reason = True, "tokens are flowing"
        self._set_ready(ok, reason)

    def _set_ready(self, ready: bool, reason: str) -> None:
        if ready != self.state.ready:
            log.info("ready=%s (%s)", ready, reason)
        self.state.ready, self.state.ready_reason = ready, reason
        metrics.READY.set(1 if ready else 0)

    def _child_died(self) -> None:
        code = self.vllm.returncode()
        metrics.CHILD_EXITS.inc()
        self._fail(f"vLLM exited with code {code}" + ("" if self.loaded else " before it was ready"))

    def _fail(self, reason: str) -> None:
        self._set_ready(False, reason)
        self.state.child_alive = False
        self.exit_code = EXIT_CHILD_FAILED
        tail = "\n".join(f"    {line}" for line in self.vllm.last_lines(30))
        log.error("%s; its last log lines:\n%s", reason, tail or "    (none)")

    async def _drain(self) -> None:
        state = self.state
        state.start_draining()
        self._set_ready(False, "draining")
        deadline = time.monotonic() + self.settings.drain_timeout
        log.info("draining: %d request(s) in flight, up to %.0f s", state.in_flight, self.settings.drain_timeout)
        while state.in_flight > 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if state.in_flight > 0:
            log.warning("drain timeout: %d request(s) still in flight are cut off", state.in_flight)
        else:
            log.info("drained: no request in flight")
        code = await asyncio.to_thread(self.vllm.stop, self.settings.stop_grace)
        state.child_alive = False
        log.info("vLLM stopped after the drain (exit code %s); exiting", code)


def sample_loop_lag() -> None:
    """One sample of the event loop's lag (metrics.LOOP_LAG_SECONDS): how long a callback made ready now waits
    until the loop runs it, behind the callbacks and the I/O already due."""
    scheduled = time.monotonic()
    asyncio.get_running_loop().call_soon(lambda: metrics.LOOP_LAG_SECONDS.observe(time.monotonic() - scheduled))


def upstream_session(limits: FrontDoorLimits) -> aiohttp.ClientSession:
    """The pool of connections to vLLM: bounded, never decompressing, idle ones dropped before vLLM drops them."""
    # vLLM's uvicorn closes idle keep-alive connections after 5 s; keeping ours 4 s avoids most stale ones.
    connector = aiohttp.TCPConnector(limit=limits.upstream_connections, keepalive_timeout=4)
    return aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
        trace_configs=[upstream_trace()],
    )


def server_config(app: ASGIApp, host: str, port: int, limits: FrontDoorLimits, **extra: Any) -> uvicorn.Config:
    """uvicorn with the front door's limits: its own knobs, and the bounded protocol for what it lacks."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(limits),
        timeout_keep_alive=limits.keep_alive_timeout,
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        access_log=False,
        **extra,
    )


class FrontDoorServer(uvicorn.Server):
    """uvicorn whose first SIGTERM/SIGINT/SIGHUP starts the drain; a second one exits at once."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # uvicorn handles SIGINT and SIGTERM; a SIGHUP (a closed terminal, some process managers) drains too.
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.handle_exit, signal.SIGHUP, None)

    def __init__(self, config: uvicorn.Config, supervisor: Supervisor):
        super().__init__(config)
        self.supervisor = supervisor
        supervisor.server = self

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.supervisor.stop_requested:
            log.warning("second signal %d: exiting without waiting for the drain", sig)
            self.should_exit = self.force_exit = True
            return
        log.info("signal %d: stop accepting requests and drain", sig)
        self.supervisor.stop_requested = True


def api_keys_of(args: ServeArgs) -> tuple[str, ...]:
    """`--api-key k1 k2` (vLLM takes a list), else VLLM_API_KEY, as vLLM itself reads them."""
    keys = [value for option in args.options if option.name == "api-key" for value in option.values]
    if not keys and os.environ.get("VLLM_API_KEY"):
        keys = [os.environ["VLLM_API_KEY"]]
    return tuple(key for key in keys if key)


def cors_of(args: ServeArgs) -> dict[str, object] | None:
    """CORS as vLLM's `--allowed-origins` (JSON lists) configures it; None (no CORS answers) when not given."""
    if not args.has("allowed-origins"):
        return None

    def json_list(flag: str, default: list[str]) -> list[str]:
        value = args.get(flag)
        if value is None:
            return default
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise LauncherError(
                f"--{flag} takes a JSON list as vLLM does, e.g. '[\"https://app.example\"]', not {value!r}"
            ) from None
        if not isinstance(parsed, list) or not all(isinstance(item, str) for item in parsed):
            raise LauncherError(f"--{flag} takes a JSON list of strings, not {value!r}")
        return parsed

    return {
        "allow_origins": json_list("allowed-origins", []),
        "allow_methods": json_list("allowed-methods", ["*"]),
        "allow_headers": json_list("allowed-headers", ["*"]),
        "allow_credentials": args.flag("allow-credentials"),
    }


def spelled_out(vllm_args: list[str], vllm_version: str | None) -> tuple[list[str], str]:
    """The serve arguments with every abbreviation spelled out as the target release's parser resolves it
    (`--max-model-le` -> --max-model-len, `--api-k` -> --api-key), and that release. Done first, so the redactor,
    the check, the front door's own flags (a `--po` is the front door's --port) and vLLM all read one argv; vLLM
    is given the resolved spelling, which its parser reads exactly as it reads the prefix."""
    release = release_for(resolve_version(vllm_version, load_table()))
    return full_spellings(vllm_args, release), release


def child_args_of(args: ServeArgs) -> list[str]:
    """The arguments vLLM is started with: the user's, less the flags the front door owns."""
    return args.without(*FRONT_DOOR_FLAGS).argv()


def _served_model_name(args: ServeArgs) -> str:
    return args.get("served-model-name") or args.model or ""


def serve(options: argparse.Namespace, vllm_args: list[str]) -> int:
    env: dict[str, str] = {}
    target, version = options.target, options.vllm_version
    vllm_args, release = spelled_out(vllm_args, version)
    if options.preset:
        preset = load_preset(options.preset)
        vllm_args = preset.merged_args(vllm_args)
        env = preset.env
        log.info("preset %s: %s", preset.name, preset.description)
    from ..report import format_text

    limits = FrontDoorLimits.from_env()
    redactor = Redactor.for_process(vllm_args)
    install_log_redaction(redactor)
    if options.auto:
        from ..plan.planner import best_profile

        profile = best_profile(vllm_args, target=target, vllm_version=version, config_folders=options.model_configs)
        log.info("--auto: starting %s (%s)", profile.flags, profile.reason)
        vllm_args = profile.argv
    verdict = check(vllm_args, target, version, options.model_configs)
    metrics.VERDICTS.labels(str(verdict.accepted).lower()).inc()
    print(redactor.text(format_text(verdict)), file=sys.stderr, flush=True)
    if not verdict.accepted and not options.skip_check:
        return 2
    if port_in_use(options.host, options.port):
        raise LauncherError(f"port {options.port} on {options.host} is already in use; pick another with --port")
    args = ServeArgs.parse(vllm_args, release)
    api_keys = api_keys_of(args)
    redactor.add(api_keys)
    child_args = child_args_of(args)
    vllm = VllmProcess(child_args, free_port(), env=env, redact=redactor.text)
    state = FrontDoorState(
        upstream=f"http://127.0.0.1:{vllm.port}", api_keys=api_keys, limits=limits, redactor=redactor
    )
    state.status = {**verdict.as_dict(), "started_at": time.time(), "vllm_port": vllm.port}
    vllm.on_line = start_report(
        child_args, target, options.model_configs, state.status, options.record, redactor.text, vllm.env, release
    ).feed
    settings = ServeSettings(options.host, options.port, options.startup_timeout, options.drain_timeout)
    supervisor = Supervisor(vllm, state, settings, _served_model_name(args))

    @contextlib.asynccontextmanager
    async def lifespan(_app: object) -> AsyncIterator[None]:
        task = asyncio.create_task(supervisor.run())
        yield
        if not task.done():
            supervisor.stop_requested = True
            await asyncio.wait([task], timeout=settings.stop_grace + 5)

    app = create_app(state, lifespan, cors_of(args))
    config = server_config(app, options.host, options.port, limits, timeout_graceful_shutdown=5, lifespan="on")
    server = FrontDoorServer(config, supervisor)
    log.info("front door on http://%s:%d (vLLM on 127.0.0.1:%d)", options.host, options.port, vllm.port)
    try:
        server.run()
    finally:
        vllm.stop(settings.stop_grace)
    return supervisor.exit_code
