"""The peak activation vLLM 0.26 measures in its memory profile, term by term from its code.

gpu_worker.py determine_available_memory wraps model_runner.profile_run() in memory_profiling(), which resets
torch's peak statistics first: what it logs as "peak activation" is the allocator's peak during profile_run
less what was allocated before it (weights, the runner's persistent input buffers). profile_run is

    [multimodal: the encoder on a dummy batch; its outputs kept in encoder_cache until the end]
    hidden_states = _dummy_run(max_num_batched_tokens)       # one forward pass of T tokens, N = min(T, seqs)
    _dummy_sampler_run(hidden_states[logits_indices])        # the sampler over N dummy requests

so the peak is the largest of the forward pass's transient tensors (its MLP, or an MLA layer's attention) and the
sampler's, on top of what the forward leaves allocated (the fused-MoE workspace, the cuBLAS workspace, the hidden
states it returns).

Which model runner runs it matters (config/vllm.py use_v2_model_runner): the V2 runner (gpu/model_runner.py)
is the default for models without experts and for DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES; its sampler works
on the bf16 logits in place. The V1 runner (gpu_model_runner.py, every other MoE model) calls the V1 sampler
twice (the second time with a generator, forward_native): bf16 logits, their fp32 copy, softmax probs and
the exponential noise q, all [N, vocab], plus topk_topp_triton's cached [SMs, vocab] fp32 buffer.

Terms (bytes, T tokens, H hidden, I intermediate per rank, a = activation bytes):
- dense MLP: residual + MLP input + gate_up [T, 2I] + act [T, I] + down output = T (3H + 3I) a; with
  --enforce-eager (Python's references decide what is alive) one [T, H] more where the MLP keeps its gate_up output
  bound through down_proj (Qwen2MLP, Gemma3MLP: `gate_up, _ = ...; x = self.act_fn(gate_up)`), and one more where
  the norms return new tensors while the model's loop still holds the layer's input (GemmaRMSNorm: its float32
  weight rules out the in-place fused_add_rms_norm); both derived per architecture (data/vllm/<release>.json
  `activation`, tools/derive_vllm_facts.py activation_liveness)
- fused MoE (TritonExperts.workspace_shapes, modular_kernel._allocate_buffers through the workspace manager,
  kept): T DP topk (max(I_e, H) + max(2 I_e, H)) a, I_e the experts' width on this rank (I / (TP x DP)
  without EP); none for the monolithic gpt-oss MXFP4 kernels
- V1 sampler: N V (2 + 4 + 4 + 4) + min(SMs, N) V 4; V2 sampler: N V a
- MLA attention (layers/attention/mla_attention.py MLAAttention.forward_impl): the profile run has no attention
  metadata, and each MLA layer allocates a stand-in for the worst-case up-projected context of chunked prefill,
  [W, heads / TP, qk_nope + v_head] with W = MLACommonMetadataBuilder.determine_chunked_prefill_workspace_size
  (min(max(8 max_model_len, 4 seqs block), 64Ki) tokens, at least seqs x block), beside the layer's input and
  residual [T, H], its query [T, heads / TP, qk_nope + qk_rope] and output [T, heads / TP, v_head]; a MoE layer
  before it has left the fused-MoE workspace allocated
- cuBLAS workspace (32 MiB on Hopper and newer, from torch's allocator): counted once a bf16 GEMM ran
- multimodal (V1 runner): encoder outputs of T tokens x out_hidden x (1 + deepstack levels), and the dummy
  pixel values (fp32 from the HF processor) of their T x merge^2 patches
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .model_size import ExpertSplit, Shape
from .vllm_parser import release_facts

GIB = 1024**3
MIB = 1024**2
# torch's default cuBLAS workspace (CUBLAS_WORKSPACE_CONFIG :4096:8) on compute capability >= 9.0; older: :4096:2:16:8.
CUBLAS_WORKSPACE = {9: 32 * MIB, 0: 9 * MIB}
DEFAULT_MULTIPROCESSORS = 132  # H100 / H200 SXM
ACTIVATION_RELEASE = "0.26.0"  # the release whose profile run this module follows


def eager_extra_hidden(architectures: list[str]) -> int:
    """How many [T, H] tensors an eager decoder layer of these architectures keeps beyond LlamaDecoderLayer's."""
    facts = release_facts(ACTIVATION_RELEASE).get("activation") or {}
    return sum(
        any(a in facts.get(key, []) for a in architectures) for key in ("mlp_keeps_gate_up", "out_of_place_norm")
    )


@dataclass(frozen=True)
class Activation:
    """vLLM's profiled peak, and the terms it is made of (bytes)."""

    runner: str  # "v1" or "v2"
    forward: float  # transient tensors of the largest decoder layer
    sampler: float  # transient tensors of the dummy sampler run
    hidden: float  # the hidden states _dummy_run returns, alive through the sampler run
    workspace: float  # the fused-MoE workspace, allocated in the forward pass and kept
    cublas_in_forward: float  # the cuBLAS workspace, when a bf16 GEMM runs before the forward's peak
    cublas: float  # the cuBLAS workspace, allocated by the lm_head at the latest
    encoder: float  # multimodal encoder outputs and inputs, held through the profile
    attention: float = 0.0  # an MLA layer's transient tensors in the profile run, the MoE workspace included

    @property
    def peak(self) -> float:
        forward_phase = self.forward + self.workspace + self.cublas_in_forward
        attention_phase = self.attention + self.cublas_in_forward
        sampler_phase = self.sampler + self.hidden + self.workspace + self.cublas
        return max(forward_phase, attention_phase, sampler_phase) + self.encoder

    @property
    def gib(self) -> float:
        return self.peak / GIB


def runner_facts(release: str | None) -> dict[str, Any]:
    """The release's model-runner facts (data/vllm/<release>.json `model_runner`, tools/derive_vllm_facts.py
    model_runner_facts); without a release, the one this module's profile follows."""
    return (
        release_facts(release or ACTIVATION_RELEASE).get("model_runner")
        or release_facts(ACTIVATION_RELEASE)["model_runner"]
    )


def model_runner(
    model_config: Mapping[str, Any], shape: Shape, environ: Mapping[str, str], release: str | None = None
) -> str:
    """Which GPU model runner the release picks (config/vllm.py use_v2_model_runner): VLLM_USE_V2_MODEL_RUNNER when
    set, else the release's default: V1 (0.17), V2 unless MoE (not listed) or hybrid (0.26), V2 (0.32 and later)."""
    forced = environ.get("VLLM_USE_V2_MODEL_RUNNER")
    if forced is not None and forced.strip() != "":
        return "v2" if forced.strip().lower() in ("1", "true") else "v1"
    facts = runner_facts(release)
    if facts["default"] != "v2_unless_moe_or_hybrid":
        return str(facts["default"])
    if _is_hybrid(model_config):
        return "v1"
    architectures = model_config.get("architectures") or []
    if not shape.experts or any(a in facts["default_v2_architectures"] for a in architectures):
        return "v2"
    return "v1"


def _is_hybrid(config: Mapping[str, Any]) -> bool:
    """Mamba/linear-attention hybrids (ModelConfig.is_hybrid): the V1 runner."""
    text = config.get("text_config") or config
    types = text.get("layer_types") or text.get("layers_block_type") or []
    return any(str(t) in ("mamba", "linear_attention", "mamba2") for t in types)


def cublas_workspace(capability: float | None) -> int:
    return CUBLAS_WORKSPACE[9] if (capability or 9.0) >= 9.0 else CUBLAS_WORKSPACE[0]


def encoder_bytes(vision: Mapping[str, Any], tokens: int) -> float:
    """Encoder outputs of `tokens` multimodal tokens, kept in encoder_cache, and their dummy pixel values."""
    out_hidden = int(vision.get("out_hidden_size") or 0)
    if not out_hidden:
        return 0.0
    levels = 1 + len(vision.get("deepstack_visual_indexes") or [])
    merge = int(vision.get("spatial_merge_size") or 1)
    patch = int(vision.get("patch_size") or 14)
    values = int(vision.get("in_channels") or 3) * int(vision.get("temporal_patch_size") or 1) * patch * patch
    return tokens * out_hidden * levels * 2 + tokens * merge * merge * values * 4


def mla_profile_workspace_tokens(max_len: int, max_seqs: int, block_size: int) -> int:
    """MLACommonMetadataBuilder.determine_chunked_prefill_workspace_size (vLLM 0.26), without DCP."""
    return max(min(max(8 * max_len, 4 * max_seqs * block_size), 64 * 1024), max_seqs * block_size)


def mla_attention_bytes(
    shape: Shape, tokens: int, tp: int, act_bytes: float, max_len: int, max_seqs: int, block_size: int
) -> float:
    """The transient tensors of one MLA layer's attention in the profile run (MLAAttention.forward_impl with no
    attention metadata), and the layer's input and residual."""
    heads = shape.heads / tp
    stand_in = mla_profile_workspace_tokens(max_len, max_seqs, block_size) * heads
    stand_in *= shape.qk_nope_head_dim + shape.v_head_dim
    query = tokens * heads * (shape.qk_nope_head_dim + shape.qk_rope_head_dim)
    output = tokens * heads * shape.v_head_dim
    latent = tokens * ((shape.q_lora_rank or 0) + shape.latent + shape.qk_rope_head_dim)
    return (stand_in + query + output + latent + 2 * tokens * shape.hidden) * act_bytes


def peak_activation(
    shape: Shape,
    *,
    runner: str,
    tokens: int,
    max_seqs: int,
    max_len: int,
    block_size: int,
    tp: int,
    dp: int = 1,
    experts: ExpertSplit | None = None,
    act_bytes: float,
    bf16_layers: bool,
    monolithic_moe: bool,
    vision: Mapping[str, Any],
    capability: float | None,
    multiprocessors: int | None,
    eager_extra: int = 0,
) -> Activation:
    """The peak vLLM's profile_run reaches on one GPU (the last pipeline stage: it also runs the sampler);
    `eager_extra`: the [T, H] tensors an eager layer of this architecture keeps beyond Llama's (eager_extra_hidden),
    0 when torch.compile plans the buffers."""
    h, vocab = shape.hidden, shape.vocab
    reqs = min(tokens, max_seqs)
    cublas = cublas_workspace(capability)
    mlp = shape.intermediate / tp if shape.layers > shape.moe_layers else 0
    forward = tokens * ((3 + eager_extra) * h + 3 * mlp) * act_bytes
    workspace = 0.0
    if shape.moe_layers and not monolithic_moe:
        # Each expert's width on this rank (ExpertSplit: whole with EP, else split over TP x DP). With DP the naive
        # DP/EP prepare step all-gathers every DP rank's tokens before the experts run.
        local = shape.expert_intermediate / (experts or ExpertSplit.of(tp, dp, False)).shard_ranks
        gathered = tokens * dp
        workspace = gathered * shape.experts_per_token * (max(local, h) + max(2 * local, h)) * act_bytes
    if runner == "v1":
        rows = min(multiprocessors or DEFAULT_MULTIPROCESSORS, reqs)
        sampler: float = reqs * vocab * (2 + 4 + 4 + 4) + rows * vocab * 4
    else:
        sampler = reqs * vocab * act_bytes
    # The lm_head (and a MoE router) run through cuBLAS; a bf16 decoder layer does so before the MLP's peak.
    early = float(cublas) if bf16_layers or shape.moe_layers else 0.0
    encoder = encoder_bytes(vision, tokens) if runner == "v1" else 0.0
    attention = 0.0
    if shape.is_mla:
        moe_before = workspace if shape.moe_layers and shape.layers > 1 else 0.0
        attention = mla_attention_bytes(shape, tokens, tp, act_bytes, max_len, max_seqs, block_size) + moe_before
    hidden = tokens * h * act_bytes
    return Activation(runner, forward, sampler, hidden, workspace, early, cublas, encoder, attention)
