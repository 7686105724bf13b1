"""Ground truth on this CPU: what `launcher check` says against what raw vLLM (no launcher) really does.

A refused combination must really fail in vLLM, and an accepted one must really be served; otherwise a
rule in server/launcher/data/compatibility.yaml is wrong. All vLLM processes start together when the module starts
(the refused ones die early and leave the cores to the served one), so the file takes about as long as
one vLLM start under load; each test then waits for its own process. Logs: <tmp>/ground-truth*/*.log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from launcher.check.verdict import Verdict, check
from tests.harness.common import LOCAL_MODEL, rule_ids
from tests.harness.raw_vllm import FAILS_WITHIN, READY_WITHIN, RawVllm, build_head16_checkpoint, cpu_cases

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (LOCAL_MODEL / "config.json").is_file(),
        reason=f"{LOCAL_MODEL} is missing: run `make model` (make test does it first)",
    ),
]


@dataclass
class Case:
    argv: list[str]
    verdict: Verdict
    log_path: Path
    vllm: RawVllm | None = None

    def errors(self) -> set[str]:
        return {f.rule for f in self.verdict.findings if f.severity == "error"}

    def start(self) -> RawVllm:
        self.vllm = RawVllm(self.argv, self.log_path).start()
        return self.vllm


def verdict_now(argv: list[str]) -> Verdict:
    """The check a user would run here, on this machine as it is now, with no VLLM_* variables."""
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("VLLM_")]:
            patch.delenv(key)
        return check(argv)


def report(name: str, vllm: RawVllm, outcome: str) -> str:
    """What happened, for the -s output and assertion messages: times since start, exit code, root cause."""
    ready = f"ready after {vllm.ready_seconds:.1f} s, " if vllm.ready_seconds else ""
    exited = f"exited with {vllm.returncode()} after {vllm.exit_seconds:.1f} s" if vllm.exit_seconds else "running"
    return f"{name}: {outcome}; vLLM {ready}{exited}\n  " + "\n  ".join(vllm.exception_lines()[:3] or vllm.tail())


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Case]]:
    head16 = build_head16_checkpoint(tmp_path_factory.mktemp("models") / "tiny-llama-head16")
    log_dir = tmp_path_factory.mktemp("ground-truth")
    found = {
        name: Case(case.argv, verdict_now(case.argv), log_dir / f"{name}.log")
        for name, case in cpu_cases(head16).items()
    }
    try:
        # The served one first: it is the longest.
        for name, case in sorted(found.items(), key=lambda item: item[0] != "served"):
            # An accepted 0.92 would take most of the node's memory: it runs last, alone, in its test.
            if name != "default-memory" or not case.verdict.accepted:
                case.start()
        yield found
    finally:
        for case in found.values():
            if case.vllm is not None:
                case.vllm.stop()


def test_fp8_on_cpu_is_refused_and_vllm_dies(cases: dict[str, Case]) -> None:
    case = cases["fp8"]
    assert case.errors() == {"cpu-fp8-quantization"}, case.verdict.as_dict()
    assert case.vllm is not None
    outcome = case.vllm.wait(FAILS_WITHIN)
    print(report("fp8", case.vllm, outcome))
    assert outcome == "exited", f"vLLM with --quantization fp8 on CPU is {outcome}: the rule may be wrong"
    assert case.vllm.returncode() != 0
    # The CPU build has no FP8 quantization kernel (the op is a stub taking no arguments): the engine core dies
    # in its start-up. On a heavily loaded machine the core's own traceback was once missing from the log (the
    # API server reported "Failed core proc(s): {}"), so the root cause line is not required, the failure is.
    assert "Engine core initialization failed" in case.vllm.tail()[-1], case.vllm.tail()
    log = case.vllm.log_text()
    assert "static_scaled_fp8_quant" in log or "Failed core proc(s)" in log, case.vllm.tail()


def test_head_size_16_on_cpu_is_refused_and_the_first_request_crashes(cases: dict[str, Case]) -> None:
    case = cases["head16"]
    assert case.errors() == {"cpu-head-size"}, case.verdict.as_dict()
    assert case.vllm is not None
    outcome = case.vllm.wait(READY_WITHIN)
    assert outcome != "timeout", report("head16", case.vllm, outcome)
    if outcome == "ready":  # what vLLM 0.32.0 does: it loads and says ready, then the first request kills it
        reply = case.vllm.complete("Hello")
        code_after = case.vllm.wait_exit(60)
        print(
            f"head16: ready, then the first completion answered {reply.status} after {reply.seconds:.1f} s; "
            f"vLLM then exited with {code_after}"
        )
        assert reply.status is None or reply.status >= 500, f"vLLM served head size 16 on CPU: {reply}"
        again = case.vllm.complete("Hello") if code_after is None else None
        assert again is None or again.status is None or again.status >= 500, "the crash was not fatal"
    print(report("head16", case.vllm, outcome))
    assert "Unsupported CPU attention configuration: head_dim=16" in case.vllm.log_text(), case.vllm.tail()


def test_accepted_combination_is_served(cases: dict[str, Case]) -> None:
    case = cases["served"]
    assert case.verdict.accepted and not case.errors(), case.verdict.as_dict()
    assert case.vllm is not None
    outcome = case.vllm.wait(READY_WITHIN)
    assert outcome == "ready", report("served", case.vllm, outcome)
    reply = case.vllm.complete("The capital of France is")
    print(f"served: ready after {case.vllm.ready_seconds:.1f} s; completion {reply.status}: {reply.text!r}")
    assert reply.status == 200 and reply.text and reply.text.strip(), reply


def test_default_memory_utilization_verdict_matches_vllm(cases: dict[str, Case]) -> None:
    """--gpu-memory-utilization 0.92 on CPU: free memory varies, so only assert that both sides agree."""
    case = cases["default-memory"]
    if case.vllm is None:  # accepted: now that the other cases are done, ask again and run it alone
        case.verdict = verdict_now(case.argv)
        case.start()
    assert case.vllm is not None
    outcome = case.vllm.wait(READY_WITHIN if case.verdict.accepted else FAILS_WITHIN)
    served = outcome == "ready" and case.vllm.complete("Hello").status == 200
    print(
        f"default-memory: launcher {'accepted' if case.verdict.accepted else 'refused'} "
        f"({sorted(rule_ids(case.verdict))}); " + report("vLLM", case.vllm, outcome)
    )
    assert case.verdict.accepted == served, (case.verdict.as_dict(), case.vllm.tail())
    if not served:
        assert "cpu-memory-utilization" in case.errors()
        assert "less than desired CPU memory utilization" in case.vllm.log_text(), case.vllm.tail()
