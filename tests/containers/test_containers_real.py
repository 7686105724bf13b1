"""The CPU image on a real Docker engine, real vLLM inside, the local SmolLM2 mounted read-only (no download).

`make test-containers` (CI: after `make test`, on the engine `make docker-engine` starts; the image from
`make image-cpu`). Two vLLM starts in all: one `docker run` shared by the drop-in tests and ended by the
`docker stop` test, one `docker-compose --profile cpu up -d`; the refusal starts no vLLM.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.common import LOCAL_MODEL
from tests.harness.container_process import (
    MODEL_INSIDE,
    ROOT,
    Container,
    compose_binary,
    docker,
    docker_binary,
    engine_problem,
    http_status,
)

ENGINE_PROBLEM = engine_problem()
pytestmark = [
    pytest.mark.containers,
    pytest.mark.slow,
    pytest.mark.skipif(ENGINE_PROBLEM is not None, reason=ENGINE_PROBLEM or ""),
    pytest.mark.skipif(not (LOCAL_MODEL / "config.json").is_file(), reason="run `make model` first"),
]

DRAIN_TIMEOUT_S = 60  # the launcher's default --drain-timeout
REFUSAL_WITHIN_S = 30  # "within seconds": the check alone is under 1 s; the rest is the engine creating the container
STREAM_TOKENS = 160


def unique(name: str) -> str:
    return f"vllm-launch-test-{name}-{os.getpid()}"


@pytest.fixture(scope="module", autouse=True)
def model_is_readable_by_the_image_user() -> None:
    """The image runs as 10001: the mounted files must be world-readable (tools/prepare_model.py makes them so)."""
    unreadable = [p.name for p in LOCAL_MODEL.iterdir() if not p.stat().st_mode & 0o004]
    assert not unreadable, f"{unreadable} in {LOCAL_MODEL} are not world-readable: `chmod a+r` them or `make model`"


@pytest.fixture(scope="module")
def drop_in() -> Iterator[Container]:
    """The documented `docker run ... vllm-launch:cpu --model /models/SmolLM2-135M-Instruct ...`, until ready."""
    container = Container(unique("run"))
    try:
        container.start()
        container.wait_ready()
        print(f"\ncontainer start-to-ready: {container.ready_after_s} s (docker run to /ready 200 on the host)")
        yield container
    finally:
        container.remove()


def openai_client(url: str):  # noqa: ANN201 - openai is a test extra
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


# --- refusal: no vLLM ----------------------------------------------------------------------------------------------


def test_refused_combination_exits_2_in_seconds_with_the_finding() -> None:
    name = unique("refused")
    args = [
        "--model",
        MODEL_INSIDE,
        "--served-model-name",
        "smollm2",
        "--max-model-len",
        "2048",
        "--gpu-memory-utilization",
        "0.3",
        "--quantization",
        "fp8",
    ]
    container = Container(name)
    try:
        start = time.monotonic()
        container.start(args)
        code = docker("wait", name, timeout=REFUSAL_WITHIN_S * 2).stdout.strip()
        seconds = time.monotonic() - start
        logs = container.logs(tail=None)
        assert code == "2", logs
        assert seconds < REFUSAL_WITHIN_S, f"refused after {seconds:.1f} s"
        print(f"\nrefusal: exit 2 {seconds:.1f} s after docker run")
        assert "REJECTED:" in logs and "error [cpu-fp8-quantization]" in logs
        assert "fix: remove --quantization fp8" in logs
        assert "starting vLLM" not in logs and "[vllm]" not in logs, "a vLLM process was started"
    finally:
        container.remove()


# --- docker run: the drop-in ---------------------------------------------------------------------------------------


def test_answers_completions_and_chat_through_the_openai_client(drop_in: Container) -> None:
    client = openai_client(drop_in.url)
    completion = client.completions.create(model="smollm2", prompt="The capital of France is", max_tokens=8)
    assert completion.choices[0].text.strip() and completion.usage.completion_tokens == 8
    chat = client.chat.completions.create(
        model="smollm2", messages=[{"role": "user", "content": "Say hi"}], max_tokens=8
    )
    assert chat.choices[0].message.content


def test_runs_as_a_non_root_user(drop_in: Container) -> None:
    uid = docker("exec", drop_in.name, "id", "-u").stdout.strip()
    assert uid.isdigit() and uid != "0"
    assert drop_in.state(".Config.User") == "10001"


def test_health_goes_from_starting_to_healthy(drop_in: Container) -> None:
    drop_in.wait_healthy(timeout=90)  # the first check after /ready turned 200: interval 30 s
    assert drop_in.health_states[0] == "starting" and drop_in.health_states[-1] == "healthy", drop_in.health_states
    assert "unhealthy" not in drop_in.health_states


def test_docker_stop_lets_an_inflight_stream_finish_then_exits_0(drop_in: Container) -> None:
    """Last of the drop-in tests: it ends the shared container."""
    client = openai_client(drop_in.url)
    stream = client.completions.create(
        model="smollm2",
        prompt="Count to a thousand:",
        max_tokens=STREAM_TOKENS,
        stream=True,
        extra_body={"ignore_eos": True},
    )
    chunks = [next(stream)]  # the stream is in flight
    stopped: dict[str, float | subprocess.CompletedProcess[str]] = {}

    def stop() -> None:
        begin = time.monotonic()
        stopped["result"] = docker("stop", drop_in.name, timeout=120, check=False)
        stopped["seconds"] = time.monotonic() - begin

    stopper = threading.Thread(target=stop)
    stopper.start()
    deadline = time.monotonic() + 5
    while http_status(f"{drop_in.url}/ready") != 503 and time.monotonic() < deadline:
        time.sleep(0.1)  # SIGTERM arrived: /ready goes 503 first
    chunks.extend(stream)
    stopper.join(timeout=150)
    assert len(chunks) == STREAM_TOKENS, "the stream was cut"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert stopped["result"].returncode == 0, stopped["result"]
    assert drop_in.state(".State.ExitCode") == "0", drop_in.logs()
    assert stopped["seconds"] < DRAIN_TIMEOUT_S, f"docker stop took {stopped['seconds']:.0f} s"
    print(f"\ndocker stop with a stream in flight: {stopped['seconds']:.1f} s, exit 0")
    logs = "\n".join(drop_in.launcher_lines())
    assert "draining: 1 request(s) in flight" in logs and "drained: no request in flight" in logs, logs[-3000:]


# --- docker-compose ------------------------------------------------------------------------------------------------


@pytest.fixture
def compose(tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    binary = compose_binary()
    if not binary:
        pytest.skip("no docker-compose and no `docker compose`: `make docker-engine` installs docker-compose")
    from launcher.serve.vllm_process import free_port

    env = {**os.environ, "COMPOSE_PROJECT_NAME": unique("compose"), "PORT": str(free_port())}
    for secret in ("HF_TOKEN", "VLLM_API_KEY"):
        env.pop(secret, None)
    try:
        yield binary, env
    finally:  # whatever happened: no container, network or volume left
        subprocess.run(
            [*binary, "--profile", "cpu", "down", "-v", "--timeout", "5"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=180,
        )


def test_compose_up_healthy_answers_and_down_drains(compose: tuple[list[str], dict[str, str]], tmp_path: Path) -> None:
    binary, env = compose

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*binary, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)

    started = time.monotonic()
    up = run("--profile", "cpu", "up", "-d")
    assert up.returncode == 0, up.stdout + up.stderr
    (container_id,) = run("--profile", "cpu", "ps", "-q").stdout.split()
    container = Container(container_id, started=started, port=int(env["PORT"]))
    container.wait_ready()
    print(f"\ncompose start-to-ready: {container.ready_after_s} s")
    container.wait_healthy(timeout=90)
    assert container.health_states[0] == "starting" and container.health_states[-1] == "healthy"
    answer = openai_client(container.url).completions.create(model="smollm2", prompt="Hello", max_tokens=4)
    assert answer.choices[0].text

    # down removes the container: follow its logs and wait for its exit code before that happens.
    log_path = tmp_path / "compose.log"
    client = str(docker_binary())
    with open(log_path, "w") as log:
        follower = subprocess.Popen([client, "logs", "-f", container_id], stdout=log, stderr=subprocess.STDOUT)
        waiter = subprocess.Popen([client, "wait", container_id], stdout=subprocess.PIPE, text=True)
        begin = time.monotonic()
        down = run("--profile", "cpu", "down", timeout=DRAIN_TIMEOUT_S + 60)
        seconds = time.monotonic() - begin
        exit_code = waiter.communicate(timeout=30)[0].strip()
        follower.wait(timeout=30)
    logs = log_path.read_text()
    assert down.returncode == 0, down.stdout + down.stderr
    assert exit_code == "0", logs[-3000:]
    assert seconds < DRAIN_TIMEOUT_S, f"docker-compose down took {seconds:.0f} s"
    print(f"\ndocker-compose down: {seconds:.1f} s, exit 0")
    assert "signal 15: stop accepting requests and drain" in logs and "drained: no request in flight" in logs
    assert not run("--profile", "cpu", "ps", "-q").stdout.strip()
