"""data/facts.yaml declares what the producers make: every fact a check or a pre-flight produces is declared with
its type, and every declared fact is produced somewhere (no stale entries)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from launcher.check import engine
from launcher.check.platforms import Platform
from launcher.check.schema import load_schema
from launcher.check.verdict import check
from launcher.deployments import checks
from launcher.deployments.preflight import Options, check_files

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "fixtures" / "models"
TARGETS = ("cuda:h100", "cuda:t4", "rocm:mi300x", "cpu:avx512")
ARGSETS = (
    [],
    ["-tp", "2", "--kv-cache-dtype", "fp8"],
    ["--quantization", "fp8", "-tp", "8", "--max-model-len", "4096"],
)


def leaves(facts: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in facts.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and path not in ("env", "table.quantization_accepted_for_checkpoint"):
            yield from leaves(value, path + ".")
        else:
            yield path, value


def table_facts() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for config in sorted(MODELS.glob("*/config.json")):
        for target in TARGETS:
            for extra in ARGSETS:
                verdict = check(["--model", str(config.parent), *extra], target, "0.26.0")
                found.append(("compatibility", verdict.facts))
    return found


@pytest.fixture(scope="module")
def produced(
    monkeypatch_module: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> list[tuple[str, dict[str, Any]]]:
    found = table_facts()
    # A CPU that was probed (NUMA node 0 known) makes the derived.cpu_* facts.
    cpu = Platform(
        "cpu:avx512",
        "cpu",
        "none",
        cpu_flags=["avx512f"],
        gpu_count=0,
        numa_total_gib=64.0,
        numa_available_gib=40.0,
        detected=True,
    )
    monkeypatch_module.setattr("launcher.check.platforms.detect", lambda: cpu)
    found.append(("compatibility", check(["--model", str(MODELS / "HuggingFaceTB__SmolLM2-135M-Instruct")]).facts))
    seen: list[dict[str, Any]] = []
    evaluate = engine.evaluate
    monkeypatch_module.setattr(
        checks.rules, "evaluate", lambda facts, rules=None: seen.append(facts) or evaluate(facts, rules)
    )
    fixtures = ROOT / "tests" / "fixtures" / "deployments"
    files = [str(f) for f in sorted(fixtures.glob("*.yaml"))]
    shutdown = tmp_path_factory.mktemp("facts") / "pod.yaml"  # plain vLLM with --shutdown-timeout
    shutdown.write_text(
        (fixtures / "pod-unknown-model.yaml")
        .read_text()
        .replace("acme/private-llm-70b", 'meta-llama/Llama-3.1-8B-Instruct", "--shutdown-timeout", "120')
    )
    check_files([*files, str(shutdown)], Options(config_folders=[MODELS]))
    found += [
        ("deployment_rules", {"deployment": f["deployment"], "args": f["args"]}) for f in seen if "deployment" in f
    ]
    return found


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_every_produced_fact_is_declared_with_its_type(produced: list[tuple[str, dict[str, Any]]]) -> None:
    schema = load_schema()
    for table, facts in produced:
        for path, value in leaves(facts):
            if path == "env":
                continue
            fact = schema.find(path, table)
            assert fact is not None, f"{path} is produced but not declared in data/facts.yaml"
            assert fact.admits(value), f"{path} = {value!r} is not a {fact.type}{'?' if fact.nullable else ''}"


def test_every_declared_fact_is_produced(produced: list[tuple[str, dict[str, Any]]]) -> None:
    made = {path for _, facts in produced for path, _ in leaves(facts)}
    declared = set(load_schema().facts)
    below = {path for path in declared if any(m.startswith(path + ".") for m in made)}  # a map fact's keys
    assert declared - made - below == set()
