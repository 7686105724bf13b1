"""`launcher quantize`: the real llm-compressor oneshot on SmolLM2-135M (CPU), the checkpoint it writes, the
verdicts on it, and the refusals (before any weight is loaded)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from launcher.check.model_facts import load_model
from launcher.check.verdict import check
from launcher.errors import LauncherError
from launcher.tools import evaluation, quantize
from tests.harness.common import API_KEY, LOCAL_MODEL, model_dir
from tests.harness.launcher_process import LauncherProcess

LINEAR_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def launcher(*argv: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "launcher.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def needs_local_model() -> None:
    if not (LOCAL_MODEL / "config.json").is_file():
        pytest.skip("run `make model` first")


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One real quantization of the local model, shared by this module's slow tests."""
    needs_local_model()
    python = quantize.quant_python()
    assert quantize._has_llmcompressor(python), f"llm-compressor missing for {python}: run `make quantize-env`"
    output = tmp_path_factory.mktemp("quantize") / "SmolLM2-135M-Instruct-FP8-Dynamic"
    result = launcher("quantize", str(LOCAL_MODEL), "--output", str(output), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


@pytest.mark.slow
def test_config_is_compressed_tensors_fp8_dynamic_with_lm_head_ignored(quantized: tuple[Path, object]) -> None:
    output, _ = quantized
    quant = json.loads((output / "config.json").read_text())["quantization_config"]
    assert quant["quant_method"] == "compressed-tensors"
    assert quant["format"] == "float-quantized"
    assert quant["ignore"] == ["lm_head"]
    (group,) = quant["config_groups"].values()
    assert group["targets"] == ["Linear"]
    assert group["weights"].items() >= {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": False}.items()
    assert (
        group["input_activations"].items()
        >= {"num_bits": 8, "type": "float", "strategy": "token", "dynamic": True}.items()
    )
    assert (output / "tokenizer.json").is_file() and (output / "tokenizer_config.json").is_file()


@pytest.mark.slow
def test_linear_weights_are_fp8_e4m3_and_the_embedding_stays_bf16(quantized: tuple[Path, object]) -> None:
    output, _ = quantized
    dtypes = quantize.tensor_dtypes(output)
    linear = {
        name: dtype
        for name, dtype in dtypes.items()
        if name.endswith(".weight") and name.removesuffix(".weight").endswith(LINEAR_SUFFIXES)
    }
    assert len(linear) == 30 * 7  # 30 layers x q, k, v, o, gate, up, down
    assert set(linear.values()) == {"F8_E4M3"}
    assert all(f"{name.removesuffix('.weight')}.weight_scale" in dtypes for name in linear)
    assert dtypes["model.embed_tokens.weight"] == "BF16"
    assert dtypes.get("lm_head.weight", "BF16") == "BF16"  # tied to the embedding: not stored, or kept BF16


@pytest.mark.slow
def test_size_ratio_and_report(quantized: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    output, result = quantized
    report = json.loads((output / quantize.REPORT).read_text())
    ratio = report["size_after_bytes"] / report["size_before_bytes"]
    assert 0.5 <= ratio <= 0.65, ratio  # 210 Linear layers at 1 byte, the 28M-parameter embedding at 2
    assert report["layers_quantized"] == 210 and report["layers_kept"] == ["lm_head"]
    assert report["weight_tensors_by_dtype"]["F8_E4M3"] == 210
    assert report["quant_method"] == "compressed-tensors" and report["scheme"] == "FP8_DYNAMIC"
    assert "layers quantized: 210 Linear" in result.stdout and "layers kept:      1 (lm_head)" in result.stdout
    assert not list(output.parent.glob(".*partial*")), "the temporary folder was left behind"


@pytest.mark.slow
def test_checkpoint_passes_the_check_and_fp8_flag_is_a_conflict(quantized: tuple[Path, object]) -> None:
    output, _ = quantized
    h100 = check(["--model", str(output)], target="cuda:h100", vllm_version="0.32.0")
    assert h100.accepted, h100.as_dict()
    assert h100.facts["model"]["checkpoint_quant_method"] == "compressed-tensors"
    conflict = check(["--model", str(output), "--quantization", "fp8"], target="cuda:h100", vllm_version="0.32.0")
    assert not conflict.accepted
    assert {f.rule for f in conflict.findings if f.severity == "error"} == {"quantization-conflicts-with-checkpoint"}
    # Measured: CPU vLLM 0.32 serves this checkpoint (ChannelWiseTorchFP8ScaledMMLinearKernel); docs/quantize.md.
    cpu = check(
        ["--model", str(output), "--max-model-len", "2048"],
        target="cpu:avx512",
        vllm_version="0.32.0",
        environ={"VLLM_CPU_KVCACHE_SPACE": "2"},
    )
    assert "cpu-fp8-quantization" not in {f.rule for f in cpu.findings}, cpu.as_dict()


@pytest.mark.slow
def test_quantizing_the_result_again_is_refused(quantized: tuple[Path, object]) -> None:
    output, _ = quantized
    result = launcher("quantize", str(output))
    assert result.returncode == 2
    assert "is already quantized (compressed-tensors (float-quantized), 8-bit weights)" in result.stderr


# -- refusals: one line, exit 2, nothing loaded -----------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        (model_dir("Qwen__Qwen3-30B-A3B-FP8"), [], "is already quantized (fp8"),
        (model_dir("moonshotai__Kimi-K2.5"), [], "is already quantized (compressed-tensors"),
        (model_dir("nvidia__Llama-3.1-70B-Instruct-FP8"), [], "is already quantized (modelopt"),
        (model_dir("meta-llama__Llama-3.1-405B-Instruct"), [], "does not fit in host memory for quantization"),
        (model_dir("synthetic__tiny-llama-head16"), [], "has config.json but no weights"),
        (model_dir("synthetic__tiny-llama-head16"), ["--scheme", "W4A16"], "--scheme W4A16 is not one"),
        ("/nonexistent/model", [], "does not exist"),
    ],
)
def test_refusals_are_one_line_exit_2(model: str, args: list[str], message: str) -> None:
    result = launcher("quantize", model, *args)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_memory_estimate_is_parameters_x_2_bytes_x_2_5() -> None:
    with pytest.raises(LauncherError, match=r"405\.\dB parameters x 2 bytes x 2.5 = 18\d\d\.\d GiB needed"):
        quantize.plan(model_dir("meta-llama__Llama-3.1-405B-Instruct"), available_gib=64)
    needs_local_model()
    assert quantize.parameter_count(quantize.load_model(str(LOCAL_MODEL)), LOCAL_MODEL) == 134_515_008
    with pytest.raises(LauncherError, match="0.6 GiB needed, 0.5 GiB available"):
        quantize.plan(str(LOCAL_MODEL), available_gib=0.5)


def test_existing_output_and_missing_llmcompressor_are_refused(tmp_path: Path) -> None:
    needs_local_model()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "config.json").write_text("{}")
    result = launcher("quantize", str(LOCAL_MODEL), "--output", str(tmp_path / "taken"))
    assert result.returncode == 2 and "already exists and is not empty" in result.stderr
    result = launcher(
        "quantize", str(LOCAL_MODEL), "--output", str(tmp_path / "new"), env={"LAUNCHER_QUANT_PYTHON": sys.executable}
    )  # .venv: vLLM's pins, no llm-compressor
    assert result.returncode == 2 and "llm-compressor is not installed" in result.stderr, result.stderr
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".*partial*"))


def test_default_output_is_next_to_the_model_and_lm_head_is_kept() -> None:
    needs_local_model()
    plan = quantize.plan(str(LOCAL_MODEL), available_gib=64)
    assert plan.output == LOCAL_MODEL.resolve().parent / "SmolLM2-135M-Instruct-FP8-Dynamic"
    assert plan.ignore == ["lm_head"] and plan.scheme_name == "FP8_DYNAMIC"


def test_host_memory_reads_memavailable(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20971520 kB\n")
    assert quantize.host_available_gib(meminfo) <= 20.0


# SmolLM2-135M's widest product per token (gate_up: 576 -> 2 x 1536) at vLLM's 17-row padding, and how long one may
# take for the FP8 server below to answer within its budget: 30 layers x 4 products a step, a few hundred steps.
FP8_PROBE_SHAPE = (17, 576, 1536)
FP8_PROBE_BUDGET_S = 0.05


def per_tensor_scaled_mm_seconds() -> float:
    """One torch._scaled_mm as vLLM's CPU FP8 kernel calls it (ChannelWiseTorchFP8ScaledMMLinearKernel: per-tensor
    dummy scales, float32 out; vllm/model_executor/kernels/linear/scaled_mm/pytorch.py), timed on this CPU, one
    thread as vLLM's worker runs. The speed depends on the CPU: on an AMX Xeon of this workplace torch 2.13 takes
    about 0.46 s for it (35x its row-scaled twin), and a 16-token completion about 10 minutes."""
    import time

    import torch

    rows, inner, cols = FP8_PROBE_SHAPE
    a = torch.randn(rows, inner).to(torch.float8_e4m3fn)
    b = torch.randn(cols, inner).to(torch.float8_e4m3fn).t()
    one = torch.ones(1, dtype=torch.float32)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.float32)
        return time.perf_counter() - started
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def fp8_serves_in_time() -> None:
    """Skips, with the measured reason, where this CPU's FP8 product is too slow to serve the checkpoint."""
    seconds = per_tensor_scaled_mm_seconds()
    if seconds > FP8_PROBE_BUDGET_S:
        pytest.skip(
            f"torch._scaled_mm with per-tensor scales (vLLM's CPU FP8 path) takes {seconds:.2f} s for one "
            f"{'x'.join(map(str, FP8_PROBE_SHAPE))} product on this CPU (budget {FP8_PROBE_BUDGET_S} s): serving the "
            "FP8 checkpoint would take hours here; the checkpoint itself is checked by the tests above"
        )


@pytest.mark.slow
def test_fp8_checkpoint_serves_on_cpu_and_compares_with_bf16(
    fp8_serves_in_time: None, quantized: tuple[Path, object], front_door: LauncherProcess, tmp_path: Path
) -> None:
    """Ground truth for the quiet cpu-fp8-quantization case: CPU vLLM 0.32 serves the compressed-tensors FP8
    checkpoint (slowly: minutes of warm-up, several times BF16's time per token), and eval compares it with BF16."""
    output, _ = quantized
    fp8 = LauncherProcess(output, tmp_path / "fp8.log", extra_args=["--api-key", API_KEY]).start()
    try:
        fp8.wait_ready(timeout=900)
        assert "CompressedTensorsW8A8Fp8" in fp8.log_path.read_text(errors="replace")
        report_file = tmp_path / "compare.json"
        result = launcher(
            "eval",
            "--base-url",
            front_door.url,
            "--model",
            "smollm2",
            "--api-key",
            API_KEY,
            "--limit",
            "14",
            "--compare",
            fp8.url,
            "--output",
            str(report_file),
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    finally:
        fp8.stop()
    report = json.loads(report_file.read_text())
    assert report["compare"]["url"] == fp8.url
    assert 0.0 <= evaluation.scores(report["compare"])["launcher_arithmetic/exact_match,first-number"] <= 1.0
    assert "recovery (compare / base)" in result.stdout


# -- the config it reads: the one the worker's from_pretrained loads (issue 19) ----------------------------------


def test_the_worker_config_is_config_json_even_beside_a_mistral_format_checkpoint(tmp_path: Path) -> None:
    from tests.check.test_config_source import PARAMS, consolidated, folder, llama

    both = folder(tmp_path / "both", config_json=llama(8192), params_json={**PARAMS, "max_position_embeddings": 32768})
    consolidated(both)
    assert load_model(str(both)).read.config_format == "mistral"  # vLLM's auto would read params.json here
    facts = quantize.worker_config(both)
    assert facts.read.config_format == "hf" and facts.config["max_position_embeddings"] == 8192
    alone = folder(tmp_path / "alone", params_json=PARAMS)
    with pytest.raises(LauncherError, match="has no config.json: launcher quantize loads the checkpoint with"):
        quantize.plan(str(alone))


def test_config_selecting_serve_flags_are_refused() -> None:
    """quantize has no --revision or --hf-config-path: the worker reads the directory as it is."""
    result = launcher("quantize", model_dir("synthetic__tiny-llama-head16"), "--revision", "v2")
    assert result.returncode == 2 and "unrecognized arguments: --revision v2" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
