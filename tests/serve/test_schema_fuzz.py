"""Schema fuzzing of the front door's /v1 routes from vLLM's own OpenAPI document (schemathesis).

Every generated request goes through the front door and, as a control, straight to vLLM. The front door
must never answer 5xx where vLLM did not (no 5xx of its own), and must answer with vLLM's status class.
Bodies are capped (max_tokens, n) so that fuzzing a CPU model stays bounded in time.
"""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, reject, settings

from tests.harness.common import API_KEY
from tests.harness.launcher_process import LauncherProcess, http

pytestmark = pytest.mark.slow

FUZZED_PATHS = ("/v1/completions", "/v1/chat/completions", "/v1/models")
# Some generated chat bodies (hundreds of random tool schemas) keep CPU vLLM busy for minutes; those are skipped.
DIRECT_TIMEOUT = 20


@pytest.fixture(scope="session")
def vllm_openapi(front_door: LauncherProcess):  # noqa: ANN201 - a schemathesis schema
    port = front_door.status()["vllm_port"]
    document = json.loads(http("GET", f"http://127.0.0.1:{port}/openapi.json")[2])
    document["paths"] = {path: spec for path, spec in document["paths"].items() if path in FUZZED_PATHS}
    assert set(document["paths"]) == set(FUZZED_PATHS)
    return schemathesis.openapi.from_dict(document)


def bounded(body: object) -> object:
    """Keep generation short on a CPU: at most 8 tokens, 2 choices, no best-of.

    A body without a token limit would generate up to the context length (minutes on a CPU), so one is added.
    """
    if isinstance(body, dict):
        if body.get("max_tokens") is None and body.get("max_completion_tokens") is None:
            body["max_tokens"] = 8
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(body.get(key), int) and body[key] > 8:
                body[key] = 8
        for key in ("n", "best_of"):
            if isinstance(body.get(key), int) and body[key] > 2:
                body[key] = 2
    return body


def test_front_door_adds_no_server_errors(front_door: LauncherProcess, vllm_openapi) -> None:  # noqa: ANN001
    # schemathesis's own pytest plugin does not run under pytest 9; its strategies drive hypothesis directly.
    direct_url = f"http://127.0.0.1:{front_door.status()['vllm_port']}"
    headers = {"Authorization": f"Bearer {API_KEY}"}
    seen: list[tuple[str, int, int]] = []
    slow: list[str] = []
    for result in vllm_openapi.get_all_operations():
        operation = result.ok()

        label = operation.label

        @given(case=operation.as_strategy())
        @settings(
            max_examples=10, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
        )
        def exchange(case) -> None:  # noqa: ANN001
            case.body = bounded(case.body)
            try:
                direct = case.call(base_url=direct_url, timeout=DIRECT_TIMEOUT)
            except requests.Timeout:
                slow.append(label)  # noqa: B023 - vLLM itself chews on it (giant tool schemas): not ours to judge
                reject()
            through = case.call(base_url=front_door.url, headers=headers, timeout=DIRECT_TIMEOUT * 3)
            seen.append((label, through.status_code, direct.status_code))  # noqa: B023 - called before the loop moves on
            if through.status_code >= 500:
                assert direct.status_code >= 500, (case.as_curl_command(), through.status_code, through.text[:300])
            assert through.status_code // 100 == direct.status_code // 100, (
                through.status_code,
                direct.status_code,
                through.text[:300],
                direct.text[:300],
            )

        exchange()
    assert {label for label, _, _ in seen} == {op.ok().label for op in vllm_openapi.get_all_operations()}
    assert len(seen) >= 20, (seen, slow)
