"""What real vLLM did on a GPU (bench/results/<gpu>-ground-truth.json: the H100's and the H200's) still holds for
today's `launcher check`.

Every recorded case with an outcome is re-checked here, on CPU, on its committed shrunk config
(bench/gpu/models/<case>/) with the arguments and VLLM_* environment it ran with, as `launcher check` on the
record's target (cuda:h100, cuda:h200, with the memory the launcher detected there) and the case's GPU count
(bench/gpu/replay.py). A rule change that would accept what vLLM refused on the GPU, or refuse what it served,
fails here. A case the launcher got wrong on the GPU stays listed: one fixed since (`fixed_after_run` in
bench/gpu/cases.yaml) must now match vLLM; one still open is an expected failure, so it fails the suite once the
rules are fixed and the note is then written with the fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.gpu import machine, models, replay

ROOT = Path(__file__).resolve().parents[2]

RECORDS = {path.name.removesuffix("-ground-truth.json"): json.loads(path.read_text()) for path in replay.records()}
SPECS = replay.case_specs()


def _params() -> list[Any]:
    params = []
    for gpu, record in RECORDS.items():
        for case in record["cases"]:
            if not replay.has_outcome(case):
                continue  # no ground truth: the harness broke, or vLLM neither answered nor failed in time
            spec = SPECS.get(case["id"], {})
            open_reason = spec.get("known_disagreement") or (
                None
                if case["agree"] or spec.get("fixed_after_run")
                else f"open on the {gpu.upper()}: vLLM {case['vllm']['outcome']}: {case['vllm']['first_error']}"
            )
            marks = [pytest.mark.xfail(strict=True, reason=open_reason)] if open_reason else []
            params.append(pytest.param(gpu, case, id=f"{gpu}-{case['id']}", marks=marks))
    return params


def test_records_cover_the_issues() -> None:
    """The H100 run (>= 15 cases) and the H200 run (>= 30 one-GPU cases with an outcome), each from one header."""
    assert {"h100", "h200"} <= set(RECORDS), sorted(RECORDS)
    for gpu, record in RECORDS.items():
        for key in ("gpu", "driver", "vllm", "torch", "date"):
            assert record[key], (gpu, key)
        assert record["vllm"] == "0.26.0"
    assert sum(replay.has_outcome(c) for c in RECORDS["h100"]["cases"]) >= 15
    h200 = RECORDS["h200"]
    assert sum(replay.has_outcome(c) and c["gpus"] == 1 for c in h200["cases"]) >= 30
    assert h200["capability"] == "9.0" and h200["memory_mib"] and h200["launcher_platform"]["target"] == "cuda:h200"


def test_records_list_every_disagreement() -> None:
    """A record's `disagreements` are exactly its cases with an outcome that the launcher got wrong."""
    for gpu, record in RECORDS.items():
        if "disagreements" not in record:
            continue  # the H100 record predates the list; its table in docs/ground-truth.md lists them
        wrong = {c["id"] for c in record["cases"] if replay.has_outcome(c) and not c["agree"]}
        assert {d["id"] for d in record["disagreements"]} == wrong, gpu


@pytest.mark.parametrize(("gpu", "case"), _params())
def test_verdict_matches_vllm_on_the_gpu(gpu: str, case: dict[str, Any]) -> None:
    verdict = replay.verdict_today(RECORDS[gpu], case)
    served = case["vllm"]["served"]
    findings = [f"{f.severity} {f.rule}" for f in verdict.findings]
    assert verdict.accepted is served, (
        f"vLLM {'served' if served else 'refused'} this on the {gpu.upper()} ({case['vllm']['first_error']}); "
        f"today's check {'accepts' if verdict.accepted else 'rejects'} it: {findings}"
    )


@pytest.mark.parametrize("renderer", ["bench.gpu.render", "bench.gpu.render_performance"])
def test_docs_tables_are_generated_from_the_results(renderer: str) -> None:
    done = subprocess.run([sys.executable, "-m", renderer, "--check"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_committed_model_dirs_are_what_prepare_writes() -> None:
    """The shrunk configs are deterministic: the committed ones are what bench/gpu/models.py makes today."""
    for case in models.load_cases():
        committed = models.model_dir(case) / "config.json"
        assert committed.is_file(), f"run python -m bench.gpu.ground_truth prepare ({case['id']})"
        assert json.loads(committed.read_text()) == models.shrunk_config(case), case["id"]


def test_harness_results_are_named_by_gpu() -> None:
    from bench.gpu import machine

    assert machine.slug("NVIDIA H200") == "h200"
    assert machine.slug("NVIDIA H100 80GB HBM3") == "h100"
    assert machine.results_path("NVIDIA H200", "front-door").name == "h200-front-door.json"


def test_every_case_has_valid_harness_arguments() -> None:
    """Shared cases get SHARED_ARGS; a case that sets --gpu-memory-utilization alone must run exclusive."""
    from bench.gpu import ground_truth

    for case in models.load_cases():
        args = ground_truth.case_args(case)
        assert args[-len(ground_truth.HARNESS_ARGS) :] == ground_truth.HARNESS_ARGS
        if ground_truth.is_exclusive(case):
            assert "--gpu-memory-utilization" in case.get("args", []), case["id"]  # what it tests
        else:
            assert "--kv-cache-memory-bytes" in args, case["id"]
    with pytest.raises(ValueError, match="exclusive"):
        ground_truth.case_args({"id": "x", "args": ["--gpu-memory-utilization", "0.5"]})


def test_packages_a_pth_file_would_add_are_on_the_childrens_path(tmp_path: Path) -> None:
    """nvidia-cutlass-dsl's `cutlass` lives where its .pth points; --target installs never run .pth files."""
    dsl = tmp_path / "nvidia_cutlass_dsl" / "dsl_packages" / "cutlass"
    dsl.mkdir(parents=True)
    (dsl / "__init__.py").write_text("WHERE = 'dsl_packages'\n")
    env = machine.child_env(environ={"SITE": str(tmp_path), "PATH": os.environ["PATH"]})
    done = subprocess.run(
        [sys.executable, "-c", "import cutlass; print(cutlass.WHERE)"], env=env, capture_output=True, text=True
    )
    assert done.stdout.strip() == "dsl_packages", done.stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    assert machine.python_path({"SITE": str(bare)}).split(os.pathsep)[2:] == [str(bare)]
