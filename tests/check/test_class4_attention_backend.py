"""Class 4: the attention backend vLLM's CUDA platform picks, per GPU generation, head size, dtype, KV cache dtype,
sinks, sliding window, MLA and sparse MLA, and the errors it stops with.

Sources (executed per capability by tools/derive_vllm_attention.py into launcher/data/vllm/<release>.json):
vllm/platforms/cuda.py CudaPlatformBase.get_attn_backend_cls / get_valid_backends / _get_backend_priorities;
vllm/v1/attention/backend.py AttentionBackend.validate_configuration; each backend's supports_* and
supports_combination (vllm/v1/attention/backends/flash_attn.py, flashinfer.py, triton_attn.py, mla/*.py); the
helpers they call on the device (vllm/v1/attention/backends/fa_utils.py get_flash_attn_version,
flash_attn_supports_sinks, flash_attn_supports_mla; vllm/v1/attention/ops/flashmla.py; vllm/utils/flashinfer.py
supports_trtllm_attention). Each case names the function that decides it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from launcher.check import vllm_parser
from launcher.check.attention_backend import AttentionQuery, select
from launcher.check.verdict import Verdict, check
from tests.harness.common import MODELS, ROOT

NO_VALID = "attention-no-valid-backend"
INVALID = "attention-backend-invalid"
SAMPLES = ROOT / "tests" / "check" / "data" / "vllm_attention"
GPU_MODELS = ROOT / "bench" / "gpu" / "models"

LLAMA = MODELS / "meta-llama__Llama-3.1-8B-Instruct"  # head 128, bfloat16
TINY = MODELS / "synthetic__tiny-llama-head16"  # head 16
HEAD_100 = GPU_MODELS / "llama3-8b-head-size-100"  # head 100: not a multiple of 8
GPT_OSS = MODELS / "openai__gpt-oss-20b"  # sinks, head 64, sliding + full layers
DEEPSEEK = MODELS / "deepseek-ai__DeepSeek-V3"  # MLA 512+64
DEEPSEEK_32 = MODELS / "deepseek-ai__DeepSeek-V3.2"  # sparse MLA (index_topk)
KIMI = MODELS / "moonshotai__Kimi-K2.5"  # MLA, DeepSeek dims
GEMMA = MODELS / "google__gemma-3-27b-it"  # multimodal: bidirectional attention over images (use_mm_prefix)
GEMMA_TEXT = GPU_MODELS / "gemma3-27b-text-bf16"  # its text model: sliding window 1024 on some layers

CASES = [
    # (model, args, target, release, the backend vLLM picks or the rule that refuses, source)
    (LLAMA, [], "cuda:h200", "0.26.0", "FLASH_ATTN", "cuda.py:_get_backend_priorities (FLASH_ATTN first off SM10x)"),
    (
        LLAMA,
        ["--kv-cache-dtype", "fp8"],
        "cuda:h200",
        "0.26.0",
        "FLASH_ATTN",
        "flash_attn.py:supports_kv_cache_dtype (fp8 needs FA3 and SM90: fa_utils.py get_flash_attn_version)",
    ),
    (
        LLAMA,
        ["--kv-cache-dtype", "fp8_e4m3"],
        "cuda:h100",
        "0.33.0",
        "FLASH_ATTN",
        "flash_attn.py:supports_kv_cache_dtype (0.33.0)",
    ),
    (
        LLAMA,
        ["--kv-cache-dtype", "fp8_e5m2"],
        "cuda:h200",
        "0.26.0",
        "FLASHINFER",
        "flash_attn.py:supports_kv_cache_dtype refuses e5m2; flashinfer.py supported_kv_cache_dtypes takes it",
    ),
    (
        LLAMA,
        ["--kv-cache-dtype", "fp8"],
        "cuda:a100",
        "0.26.0",
        "FLASHINFER",
        "flash_attn.py:supports_kv_cache_dtype (no FA3 on SM80: fp8 refused) -> flashinfer.py",
    ),
    (
        LLAMA,
        ["--dtype", "float32"],
        "cuda:h200",
        "0.26.0",
        "TRITON_ATTN",
        "flash_attn.py / flashinfer.py supported_dtypes (16-bit only); triton_attn.py takes float32",
    ),
    (
        LLAMA,
        [],
        "cuda:t4",
        "0.26.0",
        "TRITON_ATTN",
        "flash_attn.py:supports_compute_capability (>= 8.0), flashinfer.py (>= 8.0 in 0.26); auto is float16 there",
    ),
    (LLAMA, [], "cuda:b200", "0.26.0", "FLASHINFER", "cuda.py:_get_backend_priorities (FLASHINFER first on SM10x)"),
    (
        LLAMA,
        ["--kv-cache-dtype", "nvfp4"],
        "cuda:h200",
        "0.26.0",
        NO_VALID,
        "flashinfer.py:supports_kv_cache_dtype (nvfp4 only on SM10x with TRT-LLM attention)",
    ),
    (
        LLAMA,
        ["--kv-cache-dtype", "nvfp4"],
        "cuda:b200",
        "0.26.0",
        "FLASHINFER",
        "flashinfer.py:supports_kv_cache_dtype",
    ),
    (
        HEAD_100,
        [],
        "cuda:h200",
        "0.26.0",
        "TRITON_ATTN",
        "flash_attn.py:supports_head_size (multiple of 8), flashinfer.py get_supported_head_sizes (64/128/256/512)",
    ),
    (TINY, [], "cuda:a100", "0.26.0", "FLASH_ATTN", "flash_attn.py:supports_head_size (16 is a multiple of 8)"),
    (
        GPT_OSS,
        [],
        "cuda:h200",
        "0.26.0",
        "FLASH_ATTN",
        "flash_attn.py:supports_sink (FA3 on SM90: fa_utils.py flash_attn_supports_sinks) and supports_combination",
    ),
    (
        GPT_OSS,
        [],
        "cuda:a100",
        "0.26.0",
        "TRITON_ATTN",
        "flash_attn.py:supports_combination ('sink not supported on compute capability < 9.0'); flashinfer.py",
    ),
    (
        GPT_OSS,
        [],
        "cuda:b200",
        "0.26.0",
        "FLASHINFER",
        "flashinfer.py:supports_sink (TRT-LLM attention on SM100: utils/flashinfer.py supports_trtllm_attention)",
    ),
    (
        GPT_OSS,
        ["--attention-backend", "FLASH_ATTN"],
        "cuda:a100",
        "0.26.0",
        INVALID,
        "cuda.py:get_attn_backend_cls (the selected backend is validated alone)",
    ),
    (
        DEEPSEEK,
        ["-tp", "8"],
        "cuda:h200",
        "0.26.0",
        "FLASH_ATTN_MLA",
        "cuda.py:_get_backend_priorities (MLA on SM90: FLASH_ATTN_MLA first; fa_utils.py flash_attn_supports_mla)",
    ),
    (
        DEEPSEEK,
        ["-tp", "8", "--kv-cache-dtype", "fp8"],
        "cuda:h200",
        "0.26.0",
        "FLASHMLA",
        "mla/flashattn_mla.py supported_kv_cache_dtypes (16-bit) -> mla/flashmla.py (fp8)",
    ),
    (
        DEEPSEEK,
        ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"],
        "cuda:h200",
        "0.26.0",
        NO_VALID,
        "mla/*.py supported_kv_cache_dtypes: no MLA backend stores e5m2",
    ),
    (DEEPSEEK, ["-tp", "8"], "cuda:b200", "0.26.0", "FLASHINFER_MLA", "cuda.py:_get_backend_priorities (SM10x MLA)"),
    (KIMI, ["-tp", "8"], "cuda:h100", "0.33.0", "FLASH_ATTN_MLA", "cuda.py:_get_backend_priorities (0.33.0)"),
    (
        DEEPSEEK_32,
        ["-tp", "8"],
        "cuda:h200",
        "0.26.0",
        "FLASH_ATTN_MLA_SPARSE",
        "mla/flashattn_mla_sparse.py supports_combination (index_topk) ahead of FLASHMLA_SPARSE on SM90",
    ),
    (
        DEEPSEEK_32,
        ["-tp", "8", "--kv-cache-dtype", "fp8"],
        "cuda:h200",
        "0.26.0",
        "FLASHMLA_SPARSE",
        "mla/flashattn_mla_sparse.py supports_combination (16-bit KV only) -> mla/flashmla_sparse.py (fp8)",
    ),
    (
        DEEPSEEK_32,
        ["-tp", "8", "--kv-cache-dtype", "fp8_e4m3"],
        "cuda:h200",
        "0.26.0",
        NO_VALID,
        "mla/flashmla_sparse.py supported_kv_cache_dtypes (fp8, fp8_ds_mla; not the spelling fp8_e4m3)",
    ),
    (
        DEEPSEEK,
        ["-tp", "8"],
        "cuda:a100",
        "0.26.0",
        "TRITON_MLA",
        "mla/triton_mla.py (any capability); FlashAttention MLA / FlashMLA need SM90",
    ),
    (
        LLAMA,
        ["--attention-backend", "FLASHMLA"],
        "cuda:h200",
        "0.26.0",
        INVALID,
        "cuda.py:get_attn_backend_cls ('Selected backend ... is not valid': non-MLA, head size)",
    ),
    (
        LLAMA,
        ["--attention-config", '{"backend": "TRITON_ATTN"}'],
        "cuda:h200",
        "0.26.0",
        "TRITON_ATTN",
        "config/attention.py AttentionConfig.backend; cuda.py:get_attn_backend_cls",
    ),
    (GEMMA_TEXT, [], "cuda:h100", "0.26.0", "FLASH_ATTN", "flash_attn.py:supports_sliding_window (gemma3_text)"),
    (LLAMA, [], "cuda:h100", "0.17.1", "FLASH_ATTN", "cuda.py:_get_backend_priorities (0.17.1)"),
]


def _check(model: Path, args: list[str], target: str, release: str) -> Verdict:
    return check(["--model", str(model), *args], target=target, vllm_version=release)


@pytest.mark.parametrize(("model", "args", "target", "release", "expected", "source"), CASES)
def test_attention_backend(model: Path, args: list[str], target: str, release: str, expected: str, source: str) -> None:
    verdict = _check(model, args, target, release)
    derived = verdict.facts["derived"]
    rules = {f.rule for f in verdict.findings}
    assert derived["attention_backend_unknown"] is None, derived["attention_backend_unknown"]
    if expected in (NO_VALID, INVALID):
        assert expected in rules, (source, derived["attention_backend"])
        assert not verdict.accepted
        finding = next(f for f in verdict.findings if f.rule == expected)
        quoted = "No valid attention backend found for cuda" if expected == NO_VALID else "Selected backend"
        assert quoted in finding.message and derived["attention_backend_fix"] in finding.fix
    else:
        assert derived["attention_backend"] == expected, (source, derived["attention_backend_error"])
        assert not rules & {NO_VALID, INVALID}


def test_the_fix_names_the_flag() -> None:
    """The fix is the one flag change after which the selector finds a backend."""
    derived = _check(DEEPSEEK, ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"], "cuda:h200", "0.26.0").facts["derived"]
    assert derived["attention_backend_fix"] == "use --kv-cache-dtype auto (vLLM then picks FLASH_ATTN_MLA)"
    derived = _check(GPT_OSS, ["--attention-backend", "FLASH_ATTN"], "cuda:a100", "0.26.0").facts["derived"]
    assert derived["attention_backend_fix"].startswith("remove --attention-backend (vLLM then picks TRITON_ATTN)")


def test_backend_in_json_and_text() -> None:
    """`launcher check --format json` names the chosen backend (attention_backend), the text report has a line."""

    def launcher(output: str, *model: str) -> subprocess.CompletedProcess[str]:
        command = ["check", "--target", "cuda:h200", "--vllm-version", "0.26.0", "--format", output, "--", *model]
        return subprocess.run(
            [sys.executable, "-m", "launcher.cli", *command],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT / "server")},
        )

    done = launcher("json", "--model", str(GPT_OSS))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["attention_backend"] == "FLASH_ATTN"
    text = launcher("text", "--model", str(GPT_OSS)).stdout
    assert "attention backend: FLASH_ATTN (valid, in vLLM's priority order: FLASH_ATTN, TRITON_ATTN)" in text
    refused = _check(LLAMA, ["--kv-cache-dtype", "nvfp4"], "cuda:h200", "0.26.0")
    assert refused.as_dict()["attention_backend"] is None


def test_mm_prefix_models_are_not_guessed() -> None:
    """gemma3 (in the release's MM_PREFIX_LM_MODELS) asks the selector with use_mm_prefix, which FlashAttention
    takes only through FA4 (flash_attn.py supports_mm_prefix / supports_combination): not derived, so no backend is
    named and no rule fires, rather than a guess."""
    derived = _check(GEMMA, [], "cuda:h100", "0.26.0").facts["derived"]
    assert derived["attention_backend"] is None and derived["attention_backend_error"] is None
    assert "use_mm_prefix" in derived["attention_backend_unknown"]


def test_not_cuda_is_not_predicted() -> None:
    """ROCm and CPU keep their hand-written rules: no CUDA backend is named there."""
    derived = _check(LLAMA, [], "cpu:avx512", "0.26.0").facts["derived"]
    assert derived["attention_backend"] is None and derived["attention_backend_error"] is None


# -- vLLM's own answers: samples recorded by the derivation (get_attn_backend_cls executed per capability) ----------

REASONS = re.compile(r"(\w+): \[([^\]]*)\]")


def _samples(release: str) -> list[tuple[str, list[Any]]]:
    data = json.loads((SAMPLES / f"{release}.json").read_text())
    return [(capability, row) for capability, rows in data["samples"].items() for row in rows]


def _query(capability: str, row: list[Any]) -> AttentionQuery:
    shape, head, dtype, kv, sink, sliding, heads, explicit, _answer = row
    return AttentionQuery(
        capability=int(capability),
        head_size=head,
        dtype=dtype,
        kv_cache_dtype=kv,
        use_mla=shape != "mha",
        use_sparse=shape.endswith("-sparse"),
        has_sink=sink,
        has_sliding_window=sliding,
        num_heads=heads,
        model_shape=shape,
        backend=explicit,
    )


@pytest.mark.parametrize("release", ["0.17.1", "0.26.0", "0.33.0"])
def test_selector_agrees_with_vllm(release: str) -> None:
    """Every sample: the same backend, or the same refusal with, per backend, vLLM's reasons in its order (vLLM may
    add a supports_combination reason for inputs the derivation's grid skipped, as the backend is already refused)."""
    section = vllm_parser.release_facts(release)["attention"]
    exact = compared = 0
    for capability, row in _samples(release):
        answer = row[-1]
        got = select(section, _query(capability, row))
        if got.unknown:
            continue
        compared += 1
        if "backend" in answer:
            assert got.backend == answer["backend"], (capability, row, got)
            exact += 1
            continue
        want = answer["error"].removeprefix("ValueError: ")
        assert got.error is not None, (capability, row, got.backend)
        if got.error == want:
            exact += 1
            continue
        assert want.split(" Reason")[0] == got.error.split(" Reason")[0], (want, got.error)
        theirs, ours = dict(REASONS.findall(want)), dict(REASONS.findall(got.error))
        assert theirs.keys() == ours.keys(), (want, got.error)
        standard = set(section["validation"]["reasons"].values())
        for backend, reasons in ours.items():
            # a combination reason may repeat a standard one ("dtype not supported" in flashinfer_mla_sparse.py)
            mine = list(dict.fromkeys(r for r in reasons.split(", ") if r in standard))
            vllms = list(dict.fromkeys(r for r in theirs[backend].split(", ") if r in standard))
            assert mine == vllms, (backend, want, got.error)
    assert compared >= 1500 and exact / compared > 0.7, (compared, exact)


# -- ground truth: the backend real vLLM 0.26.0 logged on the H200 ---------------------------------------------------

LOGS = ROOT / "bench" / "results" / "h200-ground-truth-logs"
RECORD = ROOT / "bench" / "results" / "h200-ground-truth.json"


def _logged_backends() -> dict[str, str]:
    backends: dict[str, str] = {}
    for archive in sorted(LOGS.glob("*-vllm-logs.tar.gz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is None:
                    continue
                found = re.findall(r"Using (\w+) attention backend", handle.read().decode(errors="replace"))
                if found:
                    backends[Path(member.name).stem] = found[0]
    return backends


def _h200_cases() -> list[Any]:
    if not RECORD.exists():
        return []
    record = json.loads(RECORD.read_text())
    logged = _logged_backends()
    return [
        pytest.param(record, case, logged.get(case["id"]), id=case["id"])
        for case in record["cases"]
        if case["gpus"] == 1 and (case["id"] in logged or case["id"].startswith("attn-"))
    ]


@pytest.mark.parametrize(("record", "case", "logged"), _h200_cases())
def test_h200_ground_truth(record: dict[str, Any], case: dict[str, Any], logged: str | None) -> None:
    """The backend vLLM 0.26.0 logged ("Using X attention backend") on the H200, or its refusal, is predicted."""
    from bench.gpu import replay

    verdict = replay.verdict_today(record, case)
    derived = verdict.facts["derived"]
    if logged is not None:
        assert derived["attention_backend"] == logged, derived["attention_backend_error"]
    error = case["vllm"].get("first_error") or ""
    if "No valid attention backend" in error or "Selected backend" in error:
        # the record keeps vLLM's first error, cut at 400 characters ("...")
        assert (derived["attention_backend_error"] or "").startswith(
            error.removeprefix("ValueError: ").removesuffix("...")
        )
    elif case["vllm"]["outcome"] == "answered":
        assert derived["attention_backend_error"] is None


# -- the hand-written KV rules of data/compatibility.yaml, checked against the derived selection ---------------------

HAND_WRITTEN = [
    # (rule, model, args, target, release): each fires; the selector must refuse or pick as the rule says
    ("mla-kv-fp8-e5m2", DEEPSEEK, ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"], "cuda:h200", "0.26.0"),
    ("mla-kv-fp8-e5m2", DEEPSEEK, ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"], "cuda:b200", "0.33.0"),
    ("mla-kv-fp8-e5m2", DEEPSEEK, ["-tp", "8", "--kv-cache-dtype", "fp8_e5m2"], "cuda:a100", "0.17.1"),
    ("mla-sparse-kv-fp8-e4m3-hopper", DEEPSEEK_32, ["-tp", "8", "--kv-cache-dtype", "fp8_e4m3"], "cuda:h200", "0.26.0"),
]


@pytest.mark.parametrize(("rule", "model", "args", "target", "release"), HAND_WRITTEN)
def test_hand_written_selection_rules_agree(rule: str, model: Path, args: list[str], target: str, release: str) -> None:
    """Where a hand-written "No valid attention backend" rule fires, the derived selection refuses too."""
    verdict = _check(model, args, target, release)
    rules = {f.rule for f in verdict.findings}
    assert rule in rules and NO_VALID in rules, rules


def test_hand_written_fallback_rules_agree() -> None:
    """kv-fp8-e5m2-falls-back (FlashInfer or Triton), kv-fp8-e5m2-flash-attn-v017 (0.17 picks FlashAttention 3 for
    e5m2 on Hopper, which fails at run time) and mla-kv-fp8-hopper-ok (FlashMLA) say which backend vLLM picks."""
    assert _check(LLAMA, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:l40s", "0.26.0").facts["derived"][
        "attention_backend"
    ] in ("FLASHINFER", "TRITON_ATTN")
    assert (
        _check(LLAMA, ["--kv-cache-dtype", "fp8_e5m2"], "cuda:h100", "0.17.1").facts["derived"]["attention_backend"]
        == "FLASH_ATTN"
    )
    assert (
        _check(DEEPSEEK, ["-tp", "8", "--kv-cache-dtype", "fp8"], "cuda:h100", "0.26.0").facts["derived"][
            "attention_backend"
        ]
        == "FLASHMLA"
    )
