"""bench/gpu/quantize_eval.py's arithmetic and bench/gpu/quant_bundle.py's resolution and packing, without vLLM.

The harness runs once on the GPU machine (issue #7); what it computes from the per-round results (FP8 / BF16, the
median and spread over rounds), which wheels the bundle carries, and how its parts go together again are checked
here, so that a wrong ratio or a broken install cannot come back from a loan that is hard to repeat.
"""

from __future__ import annotations

import json
import random
import tarfile
from pathlib import Path
from typing import IO, cast

import pytest

from bench.gpu import front_door, quant_bundle, quantize_eval


def side(steady: float, whole: float, client: float, ttft: float = 10.0, itl: float = 2.0) -> dict[str, float]:
    return {
        "server_steady_output_throughput": steady,
        "server_output_throughput": whole,
        "output_throughput": client,
        "p50_ttft_ms": ttft,
        "p50_itl_ms": itl,
        "p99_itl_ms": 2 * itl,
        "server_steady_seconds": 31.0,
    }


def test_round_ratio_is_fp8_over_bf16() -> None:
    ratios = quantize_eval.round_ratios(side(1000, 900, 950, 20, 4), side(1100, 990, 1045, 15, 3))
    assert ratios["throughput_ratio"] == 1.1  # vLLM's own count over the steady window
    assert ratios["server_whole_run_throughput_ratio"] == 1.1
    assert ratios["client_throughput_ratio"] == 1.1
    assert (ratios["p50_ttft_ratio"], ratios["p50_itl_ratio"], ratios["p99_itl_ratio"]) == (0.75, 0.75, 0.75)


def test_a_failed_or_empty_side_gives_no_ratio_rather_than_a_wrong_one() -> None:
    assert quantize_eval.round_ratios({"error": "no result"}, side(1, 1, 1)) == {}
    partial = quantize_eval.round_ratios({"output_throughput": 100.0}, {**side(1, 1, 1), "output_throughput": 120.0})
    assert partial == {"client_throughput_ratio": 1.2}  # the server's counter had no samples on one side


def test_summary_median_spread_and_shortest_window() -> None:
    rounds = []
    for index, fp8 in enumerate((1100.0, 1050.0, 1200.0)):
        bf16_run, fp8_run = side(1000, 1000, 1000), side(fp8, fp8, fp8)
        fp8_run["server_steady_seconds"] = 30.0 + index
        ratios = quantize_eval.round_ratios(bf16_run, fp8_run)
        rounds.append({"order": list(quantize_eval.SIDES), "bf16": bf16_run, "fp8": fp8_run, "compare": ratios})
    failed = {"order": ["bf16", "fp8"], "bf16": {"error": "x"}, "fp8": side(1, 1, 1), "compare": {}}
    rounds.append(failed)  # left out, not counted as 0
    summary = front_door.summary(rounds)
    assert summary["rounds"] == 3
    figure = summary["throughput_ratio"]
    assert figure["per_round"] == [1.1, 1.05, 1.2]
    assert (figure["median"], figure["min"], figure["max"]) == (1.1, 1.05, 1.2)
    assert figure["spread"] == pytest.approx(0.15)
    assert summary["shortest_steady_seconds"] == 30.0
    assert front_door.summary([]) == {}


def test_rounds_alternate_a_b_b_a() -> None:
    assert [front_door.round_order(quantize_eval.SIDES, i) for i in range(4)] == [
        ("bf16", "fp8"),
        ("fp8", "bf16"),
        ("bf16", "fp8"),
        ("fp8", "bf16"),
    ]


def test_eval_summary_keeps_scores_items_and_recovery() -> None:
    run = {
        "results": {"launcher_arithmetic": {"exact_match,first-number": 0.25, "exact_match_stderr,first-number": 0.02}},
        "n-samples": {"launcher_arithmetic": {"original": 300, "effective": 300}},
        "n-shot": {"launcher_arithmetic": 5},
        "versions": {"launcher_arithmetic": 1.0},
        "limit": 300,
        "seconds": 12.5,
        "model": "/m",
        "url": "http://127.0.0.1:1",
    }
    fp8 = {**run, "results": {"launcher_arithmetic": {"exact_match,first-number": 0.21}}}
    report = {"tasks": ["launcher_arithmetic"], "base": run, "compare": fp8, "recovery": {"t/m": 0.84}}
    summary = quantize_eval.eval_summary(report)
    assert summary["recovery"] == {"t/m": 0.84}
    assert summary["bf16"]["results"] == run["results"] and summary["fp8"]["results"] == fp8["results"]
    assert summary["bf16"]["n-samples"]["launcher_arithmetic"]["effective"] == 300
    assert "url" not in summary["bf16"]
    assert "fp8" not in quantize_eval.eval_summary({"tasks": [], "base": run})  # no --compare: BF16 only


def test_same_tokenizer_means_same_vocabulary_and_added_tokens(tmp_path: Path) -> None:
    one, two = tmp_path / "a", tmp_path / "b"
    for folder in (one, two):
        folder.mkdir()
    body = {"model": {"vocab": {"a": 0}, "merges": []}, "added_tokens": [{"id": 1}], "normalizer": None}
    (one / "tokenizer.json").write_text(json.dumps(body))
    (two / "tokenizer.json").write_text(json.dumps({**body, "normalizer": {"type": "NFC"}}, indent=2))
    assert quantize_eval.tokenizers_identical(one, two) is True  # saved again, other settings: the same ids
    (two / "tokenizer.json").write_text(json.dumps({**body, "model": {"vocab": {"b": 0}, "merges": []}}))
    assert quantize_eval.tokenizers_identical(one, two) is False
    assert quantize_eval.tokenizers_identical(one, tmp_path / "none") is None


# -- quant_bundle ------------------------------------------------------------------------------------------------


def reference(**dists: tuple[str, list[str]]) -> dict[str, dict[str, object]]:
    return {quant_bundle.norm(name): {"version": v, "requires": r} for name, (v, r) in dists.items()}


def test_resolve_takes_what_the_device_lacks_at_the_reference_version() -> None:
    ref = reference(
        llmcompressor=("0.14.0.1", ["compressed-tensors==0.19.0", "numpy>=2.0", "loguru>=0.7.2", "torch>=2.10"]),
        compressed_tensors=("0.19.0", ["pydantic>=2.0", "colorama; sys_platform == 'win32'"]),
        pydantic=("2.14.4", ["typing-inspection>=0.4.4", "email-validator; extra == 'email'"]),
        typing_inspection=("0.4.5", []),
        loguru=("0.7.3", ["aiocontextvars>=0.2.0; python_version < '3.7'"]),
        numpy=("2.4.6", []),
    )
    device = {"numpy": "2.5.2", "torch": "2.11.0", "compressed-tensors": "0.17.0"}
    found = quant_bundle.resolve("llmcompressor==0.14.0.1", ref, device)
    assert {name: info["version"] for name, info in found.items()} == {
        "compressed-tensors": "0.19.0",  # the device's 0.17.0 is outside ==0.19.0: the reference's goes along
        "llmcompressor": "0.14.0.1",
        "loguru": "0.7.3",
        "pydantic": "2.14.4",
        "typing-inspection": "0.4.5",
    }  # numpy and torch: the device's satisfy; colorama (win32), email-validator (extra), aiocontextvars: not wanted
    assert "device: 0.17.0" in found["compressed-tensors"]["why"]


def test_resolve_follows_the_extras_asked_for() -> None:
    ref = reference(lm_eval=("0.4.13", ["tenacity; extra == 'api'", "vllm>=0.18; extra == 'vllm'"]))
    ref.update(reference(tenacity=("9.2.1", [])))
    assert list(quant_bundle.resolve("lm-eval[api]==0.4.13", ref, {})) == ["lm-eval", "tenacity"]


def test_resolve_refuses_what_cannot_travel_or_is_missing() -> None:
    ref = reference(llmcompressor=("0.14.0.1", ["torch>=2.12"]), torch=("2.13.0", []))
    with pytest.raises(SystemExit, match="not something to bundle"):
        quant_bundle.resolve("llmcompressor", ref, {"torch": "2.11.0"})
    with pytest.raises(SystemExit, match="reference interpreter has none"):
        quant_bundle.resolve("llmcompressor", reference(llmcompressor=("0.14.0.1", ["loguru"])), {})


def test_wheel_tags_for_the_device() -> None:
    assert quant_bundle.runs_on_device(
        "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"
    )
    assert quant_bundle.runs_on_device("multiprocess-0.70.19-py312-none-any.whl")
    assert quant_bundle.runs_on_device("defusedxml-0.7.1-py2.py3-none-any.whl")
    assert not quant_bundle.runs_on_device("pydantic_core-2.50.5-cp311-cp311-manylinux_2_17_x86_64.whl")
    assert not quant_bundle.runs_on_device("x-1.0-cp312-cp312-manylinux_2_17_aarch64.whl")


def test_freeze_reads_pins_and_skips_comments(tmp_path: Path) -> None:
    (tmp_path / "lock.txt").write_text("# wheels\nPyYAML==6.0.3\n\ntyping_extensions==4.16.0\n")
    assert quant_bundle.freeze(tmp_path / "lock.txt") == {"pyyaml": "6.0.3", "typing-extensions": "4.16.0"}


def test_parts_go_together_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_archive (Python's lzma, no xz program) -> split into parts with their sums -> read back as one stream."""
    monkeypatch.setattr(quant_bundle, "GPU_DIR", tmp_path / ".gpu")
    monkeypatch.setattr(quant_bundle.shutil, "which", lambda _name: None)
    source = tmp_path / "weights.bin"
    source.write_bytes(random.Random(7).randbytes(5000))  # incompressible: several parts
    (tmp_path / "build").mkdir()
    archive = tmp_path / "build" / quant_bundle.ARCHIVE
    quant_bundle.write_archive(archive, [(source, "model/weights.bin")], {"model": "m"}, preset=1)
    parts = quant_bundle.split(archive, part_bytes=1000)
    assert len(parts) > 1 and all(p.stat().st_size <= 1000 for p in parts)
    assert [p.parent.name for p in parts] == [f"q{i + 1}" for i in range(len(parts))]
    sums = quant_bundle.read_sums(parts[0].parent / quant_bundle.SUMS)
    assert [name for _, name in sums] == [p.name for p in parts]
    assert all(quant_bundle.sha256(p) == digest for p, (digest, _) in zip(parts, sums, strict=True))
    members = {}
    with tarfile.open(fileobj=cast(IO[bytes], quant_bundle.Joined(parts)), mode="r|xz") as tar:
        for member in tar:
            handle = tar.extractfile(member)
            if handle is not None:
                members[member.name] = handle.read()
    assert members["model/weights.bin"] == source.read_bytes()
    assert json.loads(members[quant_bundle.MANIFEST]) == {"model": "m"}
