"""A bounded soak through the real launcher (stand-in vLLM): zero errors, no memory growth, alive after."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import soak

pytestmark = pytest.mark.slow


def test_soak_64_streams_45_seconds(tmp_path: Path) -> None:
    report = soak(streams=64, seconds=45, tokens=128, token_ms=10, log_dir=tmp_path)
    assert report["errors"] == 0
    assert report["requests"] > 500, report
    assert report["launcher_alive_after"]
    assert report["rss_growth_mib"] < 10, report
