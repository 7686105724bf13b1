"""What real vLLM did on an H100 (bench/results/h100-ground-truth.json) still holds for today's `launcher check`.

Every recorded case is re-checked here, on CPU, on its committed shrunk config (bench/gpu/models/<case>/) with
the arguments and VLLM_* environment it ran with, as `launcher check --target cuda:h100 --vllm-version 0.26.0`
(with the case's GPU count). A rule change that would accept what vLLM refused on the GPU, or refuse what it
served, fails here. A disagreement that is known and documented (`known_disagreement` in bench/gpu/cases.yaml)
is an expected failure: it fails the suite once it is fixed, so the note is removed with the fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.check import platforms
from launcher.check.verdict import check

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "h100-ground-truth.json"
CASES_FILE = ROOT / "bench" / "gpu" / "cases.yaml"


def _recorded() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    results = json.loads(RESULTS.read_text())
    known = {c["id"]: c.get("known_disagreement") for c in yaml.safe_load(CASES_FILE.read_text())["cases"]}
    params = []
    for case in results["cases"]:
        if "launcher" not in case or case["vllm"]["outcome"] in ("timeout", "cancelled"):
            continue  # no ground truth: the harness broke, or vLLM neither answered nor failed in time
        marks = [pytest.mark.xfail(strict=True, reason=known[case["id"]])] if known.get(case["id"]) else []
        params.append(pytest.param(case, id=case["id"], marks=marks))
    return results, params


RESULTS_BODY, CASES = _recorded()


def test_results_cover_the_issue() -> None:
    """At least 15 cases ran on the GPU, from one run header (GPU, driver, vLLM, torch, date)."""
    assert len(CASES) >= 15
    for key in ("gpu", "driver", "vllm", "torch", "date"):
        assert RESULTS_BODY[key], key
    assert RESULTS_BODY["vllm"] == "0.26.0"


@pytest.mark.parametrize("case", CASES)
def test_verdict_matches_vllm_on_the_gpu(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    gpus = case["gpus"]
    monkeypatch.setattr(platforms, "resolve", lambda target, gpu_count=None: platforms.from_target(target, gpus))
    verdict = check(["--model", str(ROOT / case["model_dir"]), *case["args"]], target="cuda:h100",
                    vllm_version="0.26.0", environ=RESULTS_BODY["env"])
    served = case["vllm"]["served"]
    findings = [f"{f.severity} {f.rule}" for f in verdict.findings]
    assert verdict.accepted is served, (
        f"vLLM {'served' if served else 'refused'} this on the GPU ({case['vllm']['first_error']}); "
        f"today's check {'accepts' if verdict.accepted else 'rejects'} it: {findings}")


def test_docs_table_is_generated_from_the_results() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.gpu.render", "--check"], cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_committed_model_dirs_are_what_prepare_writes() -> None:
    """The shrunk configs are deterministic: the committed ones are what bench/gpu/models.py makes today."""
    sys.path.insert(0, str(ROOT))
    from bench.gpu import models

    for case in models.load_cases():
        committed = models.model_dir(case) / "config.json"
        assert committed.is_file(), f"run python -m bench.gpu.ground_truth prepare ({case['id']})"
        assert json.loads(committed.read_text()) == models.shrunk_config(case), case["id"]
