"""Published serve commands that must be accepted on the GPUs they name: no false reject of a documented recipe.

Sources: Qwen2.5's model card (YaRN through --hf-overrides, as served on an H200), the vLLM recipes for gpt-oss
(openai/gpt-oss-*, H100/H200, --async-scheduling), DeepSeek-V3/V3.2 (8 x H200, TP 8 or DP 8 with expert parallel),
the vLLM Llama 4 blog (Scout on 8 x H100 with 1M context, 8 x H200 with 3.6M), Gemma 3's card (27B on one H100),
Qwen3's card (FP8 MoE with the qwen3 reasoning parser), Mixtral (TP 2).
"""

import json

import pytest

from tests.harness.common import run_check

YARN = json.dumps(
    {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
        "max_position_embeddings": 131072,
    }
)

RECIPES = [
    # (model fixture, serve arguments, target GPU)
    ("Qwen__Qwen2.5-7B-Instruct", ["--hf-overrides", YARN, "--max-model-len", "131072"], "cuda:h200"),
    ("openai__gpt-oss-20b", ["--async-scheduling"], "cuda:h100"),
    ("openai__gpt-oss-20b", [], "cuda:h200"),
    ("deepseek-ai__DeepSeek-V3", ["--tensor-parallel-size", "8", "--trust-remote-code"], "cuda:h200"),
    ("deepseek-ai__DeepSeek-V3", ["--data-parallel-size", "8", "--enable-expert-parallel"], "cuda:h200"),
    ("deepseek-ai__DeepSeek-V3.2", ["-tp", "8"], "cuda:h200"),
    (
        "meta-llama__Llama-4-Scout-17B-16E-Instruct",
        ["--tensor-parallel-size", "8", "--max-model-len", "1000000"],
        "cuda:h100",
    ),
    (
        "meta-llama__Llama-4-Scout-17B-16E-Instruct",
        [
            "--tensor-parallel-size",
            "8",
            "--max-model-len",
            "3600000",
            "--override-generation-config",
            '{"attn_temperature_tuning": true}',
        ],
        "cuda:h200",
    ),
    ("google__gemma-3-27b-it", [], "cuda:h100"),
    ("google__gemma-3-27b-it", ["--max-model-len", "131072", "-tp", "2"], "cuda:h100"),
    ("Qwen__Qwen3-30B-A3B-FP8", ["--reasoning-parser", "qwen3"], "cuda:h100"),
    ("mistralai__Mixtral-8x7B-v0.1", ["--tensor-parallel-size", "2"], "cuda:h100"),
]


@pytest.mark.parametrize("release", ["0.26.0", "0.33.0"])
@pytest.mark.parametrize(("model", "args", "target"), RECIPES, ids=[f"{r[0]} {' '.join(r[1])[:40]}" for r in RECIPES])
def test_published_recipe_is_accepted(model: str, args: list[str], target: str, release: str) -> None:
    verdict = run_check(model, *args, target=target, version=release)
    assert verdict.accepted, [f"[{f.rule}] {f.message}" for f in verdict.findings if f.severity == "error"]
