"""The KV cache as vLLM's hybrid allocator lays it out: per-layer specs, layer groups, blocks and the token count.

This follows vllm/v1/core/kv_cache_utils.py and vllm/v1/kv_cache_interface.py (vLLM 0.26 and 0.32 agree on
everything below):

- every attention layer has a spec: full attention, sliding window, chunked local attention or MLA, with a
  page of `block_size` tokens (`page_bytes`);
- get_kv_cache_groups: one group when every layer has the same spec, or the same kind (UniformTypeKVCacheSpecs);
  otherwise layers with equal specs form buckets, split into groups of the smallest bucket's size (the
  largest one's when it is under 1.5 x the smallest: gpt-oss 12 sliding + 13 full), the last one padded;
- get_kv_cache_config_from_groups: a block is one page of every layer of the widest group, and
  num_blocks = available memory // bytes per block;
- get_max_concurrency_for_kv_cache_config: a request of --max-model-len tokens takes, in every group,
  cdiv(its max memory, page) blocks: max-model-len / block_size for full attention and MLA,
  cdiv(min(window - 1 + in-flight tokens, max-model-len), block_size) + 1 for a sliding window,
  cdiv(min(chunk + in-flight tokens, max-model-len), block_size) for chunked local attention, where the
  in-flight tokens are --max-num-batched-tokens x the concurrent batches (2 with async scheduling, the GPU
  default; 1 on the CPU, which turns async scheduling off);
- "GPU KV cache size: N tokens" = int(num_blocks / blocks per request x max-model-len), and
  "Maximum concurrency for L tokens per request" = num_blocks / blocks per request.

With --disable-hybrid-kv-cache-manager, sliding-window and chunked layers next to full ones are allocated as
full attention (unify_hybrid_kv_cache_specs). Not modelled: block-outermost packing of layers whose pages
differ in size (DeepSeek-V3.2's indexer, mamba states); those are sized per token instead (`pack_by_token`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

FULL, SLIDING, CHUNKED, MLA = "full_attention", "sliding_window", "chunked_local_attention", "mla"


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class LayerSpec:
    """One attention layer's KV cache on one GPU: its kind, tokens per block and bytes per block."""

    kind: str
    block_size: int
    page_bytes: int
    window: int | None = None  # the sliding window, or the attention chunk size

    def blocks_per_request(self, max_model_len: int, in_flight_tokens: int) -> int:
        """Blocks one --max-model-len request holds at most (the spec's max_memory_usage_bytes / page)."""
        if self.kind == SLIDING and self.window:
            return cdiv(min(self.window - 1 + in_flight_tokens, max_model_len), self.block_size) + 1
        if self.kind == CHUNKED and self.window:
            return cdiv(min(self.window + in_flight_tokens, max_model_len), self.block_size)
        return cdiv(max_model_len, self.block_size)

    def as_full(self) -> LayerSpec:
        return replace(self, kind=MLA if self.kind == MLA else FULL, window=None)


@dataclass(frozen=True)
class Group:
    """A KV cache group: `layers` layers of one spec sharing a block table (`slots` counts the padding)."""

    spec: LayerSpec
    layers: int
    slots: int

    @property
    def bytes_per_block(self) -> int:
        return self.layers * self.spec.page_bytes


@dataclass(frozen=True)
class Capacity:
    groups: tuple[Group, ...]
    bytes_per_block: int
    num_blocks: int
    blocks_per_request: int
    max_model_len: int

    @property
    def max_concurrency(self) -> float:
        return self.num_blocks / self.blocks_per_request if self.blocks_per_request else 0.0

    @property
    def tokens(self) -> int:
        """What vLLM logs as "KV cache size: N tokens"."""
        return int(self.max_concurrency * self.max_model_len)

    @property
    def request_bytes(self) -> int:
        """KV cache one --max-model-len request needs."""
        return self.blocks_per_request * self.bytes_per_block


def _unify_page_sizes(specs: Sequence[LayerSpec]) -> list[LayerSpec]:
    """unify_kv_cache_spec_page_size: smaller pages grow their block size to the largest page."""
    largest = max(s.page_bytes for s in specs)
    unified = []
    for spec in specs:
        if spec.page_bytes == largest:
            unified.append(spec)
        elif largest % spec.page_bytes == 0:
            ratio = largest // spec.page_bytes
            unified.append(replace(spec, block_size=spec.block_size * ratio, page_bytes=largest))
        else:  # vLLM pads a non-MLA attention page to the largest one
            unified.append(replace(spec, page_bytes=largest))
    return unified


def groups(specs: Sequence[LayerSpec], hybrid: bool = True) -> list[Group]:
    """get_kv_cache_groups for the layers of the whole model, in layer order."""
    if not specs:
        return []
    specs = list(specs)
    kinds = {s.kind for s in specs}
    if not hybrid and kinds & {FULL, MLA} and kinds & {SLIDING, CHUNKED}:
        specs = [s.as_full() for s in specs]
    if len(set(specs)) == 1:
        return [Group(specs[0], len(specs), len(specs))]
    if len({(s.kind, s.window, s.block_size) for s in specs}) == 1:  # UniformTypeKVCacheSpecs: one group
        widest = max(specs, key=lambda s: s.page_bytes)
        return [
            Group(replace(widest, page_bytes=sum(s.page_bytes for s in specs) // len(specs)), len(specs), len(specs))
        ]
    if len({s.page_bytes for s in specs}) > 1:
        specs = _unify_page_sizes(specs)
    buckets = Counter(specs)  # insertion order: the first layer of each spec
    smallest, largest = min(buckets.values()), max(buckets.values())
    size = largest if largest < smallest * 1.5 else smallest
    found = []
    for spec, count in buckets.items():
        parts = cdiv(count, size)
        for i in range(parts):
            layers = len(range(i, count, parts))  # layers[i::parts]
            found.append(Group(spec, layers, size))
    return found


def capacity(found: Sequence[Group], available_bytes: int, max_model_len: int, in_flight_tokens: int) -> Capacity:
    """num_blocks and the per-request blocks of these groups in `available_bytes` of KV cache memory."""
    if not found:
        return Capacity((), 0, 0, 0, max_model_len)
    per_block = max(g.bytes_per_block for g in found)
    per_request = sum(g.spec.blocks_per_request(max_model_len, in_flight_tokens) for g in found)
    blocks = max(0, available_bytes) // per_block
    return Capacity(tuple(found), per_block, blocks, per_request, max_model_len)


def pack_by_token(bytes_per_token: float, available_bytes: int, max_model_len: int, block_size: int) -> Capacity:
    """A model whose layout the groups above do not cover: one group of `bytes_per_token` per token."""
    page = max(1, math.ceil(bytes_per_token * block_size))
    spec = LayerSpec(FULL, block_size, page)
    return capacity([Group(spec, 1, 1)], available_bytes, max_model_len, 0)
