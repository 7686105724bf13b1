"""Class 5: parallel layouts and scheduler invariants, on the values the target release's parser produced.

Sources: vllm/config/parallel.py ParallelConfig.__post_init__ ("enable_expert_parallel must be True to use EPLB.",
"EPLB requires tensor, prefill-context, or data parallelism"), vllm/config/scheduler.py
SchedulerConfig.verify_max_model_len ("max_num_batched_tokens (N) is smaller than max_model_len (M)" without chunked
prefill; "must be greater than or equal to max_num_seqs"), the same checks in 0.17.1, 0.26.0 and 0.33.0.
"""

import pytest

from tests.harness.common import rule_ids, run_check

MOE = "Qwen__Qwen3-30B-A3B-FP8"
DEEPSEEK = "deepseek-ai__DeepSeek-V3"
LLAMA = "meta-llama__Llama-3.1-8B-Instruct"
GEMMA = "google__gemma-3-27b-it"
EPLB_EP = "eplb-without-expert-parallel"
EPLB_ONE = "eplb-without-parallelism"
BATCH_LEN = "batched-tokens-below-max-model-len"
BATCH_SEQS = "batched-tokens-below-max-num-seqs"
BLOCK_MOE = "block-fp8-moe-per-rank"
CLASS5 = {EPLB_EP, EPLB_ONE, BATCH_LEN, BATCH_SEQS, BLOCK_MOE}

CASES = [
    # (model, args, release, the class-5 rules that fire)
    # Qwen3-30B-A3B-FP8: experts of width 768 in 128 x 128 FP8 blocks. Without EP each expert is split over TP x DP
    # ranks (fused_moe/config.py FusedMoEParallelConfig.make, flatten_tp_across_dp); with EP each rank holds whole
    # experts (fp8.py Fp8MoEMethod.create_weights checks intermediate_size_per_partition % block_n).
    (MOE, ["-tp", "2"], "0.26.0", set()),  # 384
    (MOE, ["-tp", "4"], "0.26.0", {BLOCK_MOE}),  # 192
    (MOE, ["-dp", "4"], "0.26.0", {BLOCK_MOE}),  # DP 4 splits the experts as TP 4 does
    (MOE, ["-tp", "2", "-dp", "2"], "0.17.1", {BLOCK_MOE}),
    (MOE, ["-tp", "4", "--enable-expert-parallel"], "0.26.0", set()),  # whole experts: 768
    (MOE, ["-dp", "4", "-ep"], "0.26.0", set()),
    (MOE, ["-dp", "2"], "0.26.0", set()),
    (MOE, ["-tp", "4"], "0.33.0", set()),  # 0.29+ refines the scale blocks (an info finding, not a refusal)
    (MOE, ["--enable-eplb", "-tp", "2"], "0.26.0", {EPLB_EP}),
    (MOE, ["--enable-eplb", "-tp", "2", "--enable-expert-parallel"], "0.26.0", set()),
    (MOE, ["--enable-eplb", "-ep"], "0.26.0", {EPLB_ONE}),
    (MOE, ["--enable-eplb", "-ep", "-dp", "2"], "0.33.0", set()),
    (DEEPSEEK, ["-dp", "8", "--enable-expert-parallel", "--enable-eplb"], "0.26.0", set()),
    (DEEPSEEK, ["-tp", "8", "--enable-eplb", "--disable-expert-parallel"], "0.33.0", {EPLB_EP}),
    (DEEPSEEK, ["-tp", "8", "--enable-eplb", "--no-enable-expert-parallel"], "0.26.0", {EPLB_EP}),
    (MOE, ["--no-enable-eplb", "-tp", "2"], "0.26.0", set()),
    (LLAMA, ["--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192"], "0.26.0", {BATCH_LEN}),  # vs 131072
    (
        LLAMA,
        ["--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192", "--max-model-len", "8192"],
        "0.26.0",
        set(),
    ),
    (LLAMA, ["--max-num-batched-tokens", "8192"], "0.26.0", set()),  # chunked prefill is on by default
    (
        LLAMA,
        ["--disable-chunked-prefill", "--max-num-batched-tokens", "16k", "--max-model-len", "32k"],
        "0.33.0",
        {BATCH_LEN},
    ),
    (
        LLAMA,
        ["--disable-chunked-prefill", "--max-num-batched-tokens", "32k", "--max-model-len", "32k"],
        "0.33.0",
        set(),
    ),
    (GEMMA, ["--no-enable-chunked-prefill", "--max-num-batched-tokens", "65536"], "0.26.0", {BATCH_LEN}),  # 131072
    (LLAMA, ["--max-num-batched-tokens", "64", "--max-num-seqs", "128"], "0.26.0", {BATCH_SEQS}),
    (LLAMA, ["--max-num-batched-tokens", "128", "--max-num-seqs", "128"], "0.33.0", set()),
    (LLAMA, ["--max-num-batched-tokens", "1k", "--max-num-seqs", "1024"], "0.17.1", {BATCH_SEQS}),  # 1000 < 1024
    (LLAMA, ["--max-num-batched-tokens", "1K", "--max-num-seqs", "1024"], "0.17.1", set()),  # 1024
]


@pytest.mark.parametrize(("model", "args", "release", "expected"), CASES)
def test_parallel_and_scheduler(model: str, args: list[str], release: str, expected: set[str]) -> None:
    verdict = run_check(model, *args, target="cuda:h200", version=release)
    assert rule_ids(verdict) & CLASS5 == expected, [f.message for f in verdict.findings]
    if expected:
        assert not verdict.accepted
