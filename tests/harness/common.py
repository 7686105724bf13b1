"""What the tests share: the repository's paths, the fixtures' model directories and a one-call check."""

from __future__ import annotations

import os
from pathlib import Path

from launcher.check.verdict import Verdict, check

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "fixtures" / "models"
LOCAL_MODEL = Path(os.environ.get("LAUNCHER_TEST_MODEL", ROOT / "models" / "SmolLM2-135M-Instruct"))
API_KEY = "test-key-not-secret"


def model_dir(name: str) -> str:
    path = MODELS / name
    assert (path / "config.json").is_file(), f"fixture {name} is missing"
    return str(path)


def run_check(model: str, *args: str, target: str = "cuda:h100", version: str = "0.26.0") -> Verdict:
    return check(["--model", model_dir(model), *args], target=target, vllm_version=version)


def rule_ids(verdict: Verdict) -> set[str]:
    return {finding.rule for finding in verdict.findings}
