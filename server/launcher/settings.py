"""Every LAUNCHER_* environment variable, in one place: its type, default and meaning (docs/settings.md is generated
from this list). A bad value is a one-line error that names the variable, never a traceback at import or start.

Values are read when asked for, not at import, so a test or a preset that sets the environment is seen.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import LauncherError


class _OutOfRange(ValueError):
    """A value of the right type outside what the setting allows; its text says what is allowed."""


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise _OutOfRange("must be above 0")
    return value


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise _OutOfRange(f"must be at least {minimum}")
        return value

    return parse


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise _OutOfRange("must be a TCP port, 1 to 65535")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not value > 0:  # also refuses nan
        raise _OutOfRange("must be a number of seconds above 0")
    return value


def _seconds_or_zero(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise _OutOfRange("must be a number of seconds, 0 or more")
    return value


def _paths(raw: str) -> list[Path]:
    return [Path(part) for part in raw.split(os.pathsep) if part]


@dataclass(frozen=True)
class Setting:
    name: str
    parse: Callable[[str], Any]
    default: Any
    kind: str  # as the docs show it
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "LAUNCHER_TARGET",
        str,
        None,
        "target",
        "the platform to check for instead of detecting it, as --target "
        "(cuda:h100, rocm:mi300x, cpu:avx512, ...); --target wins",
    ),
    Setting(
        "LAUNCHER_MODEL_CONFIGS",
        _paths,
        [],
        "folders",
        "folders of <org>__<name>/config.json files searched "
        "for a hub id, after --model-configs (separated by the OS path separator)",
    ),
    Setting(
        "LAUNCHER_CONFIG_DIR",
        Path,
        None,
        "folder",
        "a folder of edited copies of the tables (compatibility.yaml, "
        "platforms.yaml, deployment_rules.yaml, argument_rules.yaml, vllm/<release>.json) read instead of the "
        "package's own",
    ),
    Setting(
        "LAUNCHER_PRESETS_DIR",
        Path,
        None,
        "folder",
        "where `launcher serve --preset NAME` finds NAME.yaml "
        "(default: the checkout's configs/presets/; the images set /opt/vllm-launch/presets)",
    ),
    Setting("LAUNCHER_HOST", str, "0.0.0.0", "address", "`launcher serve --host` default: the front door's address"),
    Setting("LAUNCHER_PORT", _port, 8000, "port", "`launcher serve --port` default: the front door's port"),
    Setting(
        "LAUNCHER_STARTUP_TIMEOUT",
        _seconds,
        1800.0,
        "seconds",
        "`launcher serve --startup-timeout` default: how long vLLM may take to answer its first generation",
    ),
    Setting(
        "LAUNCHER_DRAIN_TIMEOUT",
        _seconds_or_zero,
        60.0,
        "seconds",
        "`launcher serve --drain-timeout` default: how long in-flight requests get to finish after SIGTERM",
    ),
    # The front door's limits (serve/limits.py; the README's "Security" section explains each).
    Setting(
        "LAUNCHER_MAX_HEADER_BYTES",
        _at_least(1024),
        32 * 1024,
        "bytes",
        "request line + headers of one request (431 above it)",
    ),
    Setting("LAUNCHER_MAX_HEADERS", _at_least(8), 100, "count", "header fields in one request (431 above it)"),
    Setting(
        "LAUNCHER_MAX_REQUEST_LINE",
        _at_least(256),
        8 * 1024,
        "bytes",
        "the request target of one request (414 above it)",
    ),
    Setting(
        "LAUNCHER_HEADER_TIMEOUT",
        _seconds,
        10.0,
        "seconds",
        "from a connection's (or a request's) first byte to its last header; then 408 and the connection closes",
    ),
    Setting(
        "LAUNCHER_KEEP_ALIVE_TIMEOUT",
        _positive_int,
        5,
        "seconds",
        "how long an idle keep-alive connection stays open (uvicorn's timeout_keep_alive)",
    ),
    Setting(
        "LAUNCHER_MAX_CONNECTIONS",
        _at_least(4),
        2048,
        "count",
        "open client connections; past it the oldest idle one is closed (503 to the new one when all are busy); "
        "lowered to fit the file descriptor limit",
    ),
    Setting(
        "LAUNCHER_MAX_BODY_BYTES",
        _positive_int,
        32 * 1024 * 1024,
        "bytes",
        "the largest request body the front door reads (413 above it)",
    ),
    Setting(
        "LAUNCHER_BODY_TIMEOUT",
        _seconds,
        30.0,
        "seconds",
        "how long the front door waits for a whole request body to arrive (408 after it)",
    ),
    Setting(
        "LAUNCHER_MAX_BUFFERED_BYTES",
        _positive_int,
        256 * 1024 * 1024,
        "bytes",
        "request bodies held by all requests together (503 + Retry-After above it)",
    ),
    Setting(
        "LAUNCHER_UPSTREAM_CONNECTIONS",
        _positive_int,
        1024,
        "count",
        "connections to vLLM at once (more requests wait for one); lowered to fit the file descriptor limit",
    ),
    Setting(
        "LAUNCHER_UPSTREAM_TIMEOUT",
        _seconds,
        600.0,
        "seconds",
        "how long vLLM may take to answer a non-streaming request (504 after it); streams are not cut",
    ),
    Setting("LAUNCHER_VLLM_PYTHON", str, None, "interpreter", "the Python that runs vLLM (default: the launcher's)"),
    Setting(
        "LAUNCHER_VLLM_ENTRYPOINT",
        str,
        "vllm.entrypoints.openai.api_server",
        "module",
        "the module `python -m` starts as vLLM (tests point it at a fake)",
    ),
    Setting(
        "LAUNCHER_QUANT_PYTHON",
        str,
        None,
        "interpreter",
        "the Python with llm-compressor that `launcher "
        "quantize` runs (default: .venv-quant/bin/python here or in the checkout, else the launcher's)",
    ),
    Setting(
        "LAUNCHER_VLLM_VALIDATE",
        bool,
        False,
        "flag",
        "any non-empty value: `launcher check` also runs the installed vLLM's own parser and ModelConfig in-process "
        "when it is the target release (seconds, not milliseconds: check/vllm_inprocess.py)",
    ),
    Setting(
        "LAUNCHER_DEBUG",
        bool,
        False,
        "flag",
        "any non-empty value: an internal error raises with its traceback instead of the one-line message",
    ),
)
BY_NAME = {setting.name: setting for setting in SETTINGS}


def get(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The value of one LAUNCHER_* variable: parsed, or its default when unset or empty."""
    setting = BY_NAME[name]
    raw = (os.environ if environ is None else environ).get(name, "")
    if raw == "":
        return setting.default
    try:
        return setting.parse(raw)
    except ValueError as exc:
        reason = str(exc) if isinstance(exc, _OutOfRange) else f"is not a valid {setting.kind}"
        raise LauncherError(f"{name}={raw!r} {reason}: {setting.help}; unset it or fix the value") from None


def markdown_table() -> str:
    """docs/settings.md's table (tools/render_docs.py writes it; a test fails when it drifts)."""
    lines = ["| variable | kind | default | what it does |", "| --- | --- | --- | --- |"]
    for setting in SETTINGS:
        default = "unset" if setting.default in (None, []) else f"`{setting.default}`"
        lines.append(f"| `{setting.name}` | {setting.kind} | {default} | {setting.help} |")
    return "\n".join(lines)
