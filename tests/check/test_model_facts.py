"""config.json facts: MLA and sparse MLA, multimodal text_config, checkpoint quantization, context limits."""

import json
from pathlib import Path

import pytest

from launcher.check.model_facts import load_model
from launcher.errors import LauncherError
from tests.harness.common import model_dir


def facts(name: str) -> dict:
    return load_model(model_dir(name)).facts()


def test_deepseek_mla_and_sparse_mla() -> None:
    v3, v32 = facts("deepseek-ai__DeepSeek-V3"), facts("deepseek-ai__DeepSeek-V3.2")
    assert v3["is_mla"] and not v3["is_sparse_mla"]
    assert v32["is_mla"] and v32["is_sparse_mla"]
    assert v3["attention_head_size"] == 512 + 64
    assert v3["max_model_len_limit"] == 4096 * 40  # yarn: original_max_position_embeddings x factor


def test_multimodal_reads_text_and_vision_config() -> None:
    vl = facts("Qwen__Qwen3-VL-235B-A22B-Instruct")
    assert vl["num_attention_heads"] == 64 and vl["head_dim"] == 128
    assert vl["vision_intermediate_size"] == 4304 and vl["vision_hidden_size"] == 1152
    kimi = facts("moonshotai__Kimi-K2.5")
    assert kimi["checkpoint_quant_method"] == "compressed-tensors"
    assert kimi["checkpoint_quant_bits"] == 4 and kimi["is_mla"]


def test_modelopt_quantization_comes_from_hf_quant_config() -> None:
    assert facts("nvidia__Llama-3.1-70B-Instruct-FP8")["checkpoint_quant_method"] == "modelopt"


def test_head_dim_derived_when_absent() -> None:
    assert facts("meta-llama__Llama-3.1-8B-Instruct")["head_dim"] == 128


def test_llama3_rope_is_not_multiplied() -> None:
    assert facts("meta-llama__Llama-3.1-8B-Instruct")["max_model_len_limit"] == 131072


def test_missing_and_malformed_configs(tmp_path: Path) -> None:
    with pytest.raises(LauncherError, match="has no config.json"):
        load_model(str(tmp_path))
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(LauncherError, match="not valid JSON"):
        load_model(str(tmp_path))
    with pytest.raises(LauncherError, match="does not exist"):
        load_model(str(tmp_path / "absent"))


def test_hf_cache_and_config_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert load_model("org/name").source == str(snapshot)
    folder = tmp_path / "configs" / "org2__other"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    assert load_model("org2/other", [tmp_path / "configs"]).source == str(folder)
    with pytest.raises(LauncherError, match="was not found"):
        load_model("org3/none")
