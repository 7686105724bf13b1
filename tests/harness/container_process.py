"""Run the CPU image on a real Docker engine, for tests/containers/test_containers_real.py and bench/containers.py.

The `docker run` command is the one docs/containers.md documents for vllm-launch:cpu, with three changes a test
needs: a name and -d instead of --rm (the exit code and the logs outlive the container), a free host port on
127.0.0.1 instead of 8000, and $PWD spelled out.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "containers.md"
IMAGE = os.environ.get("LAUNCHER_TEST_IMAGE", "vllm-launch:cpu")
MODEL_INSIDE = "/models/SmolLM2-135M-Instruct"


def docker_binary() -> str | None:
    """Debian's client (DOCKER overrides): another `docker` earlier on PATH may want buildx for every build."""
    explicit = os.environ.get("DOCKER")
    if explicit:
        return explicit
    return "/usr/bin/docker" if Path("/usr/bin/docker").is_file() else shutil.which("docker")


def compose_binary() -> list[str] | None:
    """docker-compose 1.29 (what `make docker-engine` installs), else Compose v2 as `docker compose`."""
    if found := shutil.which("docker-compose"):
        return [found]
    docker = docker_binary()
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    binary = docker_binary()
    assert binary, "no docker client"
    result = subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {shlex.join(args)} -> {result.returncode}\n{result.stdout}{result.stderr}")
    return result


def engine_problem() -> str | None:
    """Why no container test can run here, or None."""
    if not docker_binary():
        return "no docker client: `make docker-engine` installs docker.io and starts dockerd"
    info = docker("info", "-f", "{{.ServerVersion}}", timeout=30, check=False)
    if info.returncode != 0:
        return f"no Docker engine answers ({info.stderr.strip()[:120]}): `make docker-engine` starts one"
    if docker("image", "inspect", IMAGE, check=False).returncode != 0:
        return f"{IMAGE} is not built: `make image-cpu`"
    return None


def documented_cpu_run() -> list[str]:
    """The `docker run ... vllm-launch:cpu ...` command of docs/containers.md's Commands section, as words."""
    section = DOCS.read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    for block in re.findall(r"```bash\n(.*?)```", section, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:2] == ["docker", "run"] and "vllm-launch:cpu" in words:
                return words
    raise AssertionError("docs/containers.md documents no `docker run ... vllm-launch:cpu` command")


def run_command(name: str, vllm_args: list[str] | None = None, detach: bool = True) -> list[str]:
    """The documented command for a test: named, on a free 127.0.0.1 port, --rm dropped, -d when detached."""
    words = documented_cpu_run()
    image_at = words.index("vllm-launch:cpu")
    options, args = words[2:image_at], words[image_at + 1 :]
    assert options.count("--rm") == 1 and options.count("-p") == 1
    options.remove("--rm")
    options[options.index("-p") + 1] = "127.0.0.1::8000"
    options = [word.replace("$PWD", str(ROOT)) for word in options]
    return ["run", *(["-d"] if detach else []), "--name", name, *options, IMAGE, *(vllm_args or args)]


def http_status(url: str, timeout: float = 5) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


@dataclass
class Container:
    name: str
    started: float = 0.0
    port: int = 0
    health_states: list[str] = field(default_factory=list)
    ready_after_s: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, vllm_args: list[str] | None = None) -> Container:
        self.started = time.monotonic()
        docker(*run_command(self.name, vllm_args))
        mapping = docker("port", self.name, "8000/tcp").stdout.split()[0]  # 127.0.0.1:49154
        self.port = int(mapping.rsplit(":", 1)[1])
        return self

    def state(self, field_path: str) -> str:
        return docker("inspect", "-f", "{{" + field_path + "}}", self.name).stdout.strip()

    def health(self) -> str:
        return self.state(".State.Health.Status")

    def record_health(self) -> str:
        status = self.health()
        if not self.health_states or self.health_states[-1] != status:
            self.health_states.append(status)
        return status

    def wait_ready(self, timeout: float = 1800) -> float:
        """Poll /ready from the host until 200: seconds since `docker run`. The default timeout is the launcher's
        --startup-timeout and the images' HEALTHCHECK start period: a 135M model starts in 3 to 6 minutes on 2 cores,
        but on a machine busy with other vLLM starts its torch.compile warm-up alone took over 12."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.state(".State.Running") != "true":
                raise AssertionError(f"{self.name} exited with {self.state('.State.ExitCode')}:\n{self.logs()}")
            self.record_health()
            if http_status(f"{self.url}/ready") == 200:
                self.ready_after_s = round(time.monotonic() - self.started, 1)
                return self.ready_after_s
            time.sleep(1)
        raise AssertionError(f"{self.name} not ready {timeout:.0f} s after docker run:\n{self.logs()}")

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.record_health() == "healthy":
                return
            time.sleep(1)
        raise AssertionError(f"{self.name}: health {self.health_states} after {timeout:.0f} s")

    def logs(self, tail: int | None = 60) -> str:
        """Its last `tail` lines (None: all), stdout and stderr together."""
        result = docker("logs", "--tail", "all" if tail is None else str(tail), self.name, check=False)
        return result.stdout + result.stderr

    def launcher_lines(self) -> list[str]:
        """The launcher's own log lines, without vLLM's ([vllm]-prefixed) ones."""
        return [line for line in self.logs(tail=None).splitlines() if " launcher." in line]

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False)
