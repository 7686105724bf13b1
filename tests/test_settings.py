"""launcher.settings: every LAUNCHER_* variable the package reads is declared there, and a bad value is one line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import settings
from launcher.errors import LauncherError

ROOT = Path(__file__).resolve().parents[1]


def test_every_launcher_variable_in_the_package_is_declared() -> None:
    used = set()
    for path in (ROOT / "server" / "launcher").rglob("*.py"):
        used |= set(re.findall(r"\bLAUNCHER_[A-Z_]+\b", path.read_text()))
    constants = {"LAUNCHER_IMAGE", "LAUNCHER_LIVE_PATHS"}  # module constants, not variables
    assert used - constants == set(settings.BY_NAME)


def test_unset_or_empty_is_the_default() -> None:
    assert settings.get("LAUNCHER_PORT", {}) == 8000
    assert settings.get("LAUNCHER_PORT", {"LAUNCHER_PORT": ""}) == 8000
    assert settings.get("LAUNCHER_MODEL_CONFIGS", {"LAUNCHER_MODEL_CONFIGS": "a:b:"}) == [Path("a"), Path("b")]
    assert settings.get("LAUNCHER_DRAIN_TIMEOUT", {"LAUNCHER_DRAIN_TIMEOUT": "0"}) == 0.0


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("LAUNCHER_PORT", "http", "is not a valid port"),
        ("LAUNCHER_PORT", "70000", "must be a TCP port"),
        ("LAUNCHER_MAX_BODY_BYTES", "-1", "must be above 0"),
        ("LAUNCHER_BODY_TIMEOUT", "nan", "must be a number of seconds above 0"),
        ("LAUNCHER_STARTUP_TIMEOUT", "soon", "is not a valid seconds"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str, says: str) -> None:
    with pytest.raises(LauncherError) as caught:
        settings.get(name, {name: value})
    assert str(caught.value).startswith(f"{name}={value!r} {says}")
    assert "\n" not in str(caught.value)


def test_a_bad_value_is_one_line_and_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "launcher.cli", "serve", "--", "--model", "m"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "LAUNCHER_PORT": "http"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "LAUNCHER_PORT='http'" in result.stderr
