"""Which config the check judges: the one vLLM will read (check/config_source.py), on real files in tmp dirs.

vLLM 0.26.0 / 0.33.0 vllm/config/model.py ModelConfig.__post_init__ -> vllm/transformers_utils/config.py get_config:
--hf-config-path replaces --model as the config's location, --revision picks the hub revision (a local directory has
none), --config-format mistral (or auto beside consolidated*.safetensors) reads params.json; --tokenizer,
--tokenizer-mode and --code-revision do not change the config.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from launcher.check.arguments import ServeArgs
from launcher.check.config_source import ConfigRequest
from launcher.check.model_facts import load_model
from launcher.check.verdict import Verdict, check
from launcher.errors import LauncherError
from tests.harness.common import MODELS

ABOVE = "max-model-len-above-limit"


def llama(max_positions: int, **extra: Any) -> dict[str, Any]:
    """Llama-3.1-8B's real config.json with another context limit."""
    config = json.loads((MODELS / "meta-llama__Llama-3.1-8B-Instruct" / "config.json").read_text())
    config.pop("rope_scaling", None)
    return {**config, "max_position_embeddings": max_positions, **extra}


def folder(path: Path, **files: dict[str, Any]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        (path / name.replace("_json", ".json")).write_text(json.dumps(content))
    return path


def consolidated(path: Path) -> None:
    """A consolidated.safetensors with no tensors (8-byte header length, then the JSON header), as a Mistral-format
    repo ships its weights: what get_config's auto looks for."""
    (path / "consolidated.safetensors").write_bytes(struct.pack("<Q", 2) + b"{}")


def verdict(*argv: str) -> Verdict:
    return check(list(argv), target="cuda:h100", vllm_version="0.33.0", environ={})


def rules(result: Verdict) -> set[str]:
    return {f.rule for f in result.findings}


# -- --hf-config-path ------------------------------------------------------------------------------------------------


def test_hf_config_path_is_the_config_vllm_reads(tmp_path: Path) -> None:
    model = folder(tmp_path / "model", config_json=llama(2048))
    other = folder(tmp_path / "other", config_json=llama(8192))
    alone = verdict("--model", str(model), "--max-model-len", "4096")
    assert ABOVE in rules(alone) and not alone.accepted
    redirected = verdict("--model", str(model), "--hf-config-path", str(other), "--max-model-len", "4096")
    assert redirected.accepted, [f.message for f in redirected.findings]
    assert redirected.facts["model"]["config_file"] == str(other / "config.json")
    assert redirected.facts["model"]["max_model_len_limit"] == 8192


def test_hf_config_path_that_does_not_exist_is_bad_input(tmp_path: Path) -> None:
    model = folder(tmp_path / "model", config_json=llama(2048))
    with pytest.raises(LauncherError, match="does not exist"):
        verdict("--model", str(model), "--hf-config-path", str(tmp_path / "missing" / "dir"))


# -- --revision ------------------------------------------------------------------------------------------------------


def test_revision_on_a_local_directory_is_ignored_as_vllm_ignores_it(tmp_path: Path) -> None:
    model = folder(tmp_path / "model", config_json=llama(2048))
    result = verdict("--model", str(model), "--revision", "v2", "--max-model-len", "4096")
    assert {"config-revision-ignored", ABOVE} <= rules(result)
    assert "config-revision-unseen" not in rules(result)
    assert next(f for f in result.findings if f.rule == "config-revision-ignored").severity == "info"


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache holding org/model at two revisions: main (2048 positions) and the tag v2 (8192)."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--model"
    folder(repo / "snapshots" / ("a" * 40), config_json=llama(2048))
    folder(repo / "snapshots" / ("b" * 40), config_json=llama(8192))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    (repo / "refs" / "v2").write_text("b" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo


@pytest.mark.parametrize("revision", ["v2", "b" * 40])
def test_a_cached_revision_is_read(hub_cache: Path, revision: str) -> None:
    assert ABOVE in rules(verdict("--model", "org/model", "--max-model-len", "4096"))
    result = verdict("--model", "org/model", "--revision", revision, "--max-model-len", "4096")
    assert result.accepted, [f.message for f in result.findings]
    assert result.facts["model"]["config_file"] == str(hub_cache / "snapshots" / ("b" * 40) / "config.json")
    assert not {"config-revision-unseen", "config-revision-ignored"} & rules(result)


def test_a_revision_the_check_cannot_see_is_said_not_judged_silently(hub_cache: Path) -> None:
    result = verdict("--model", "org/model", "--revision", "v3", "--max-model-len", "4096")
    unseen = next(f for f in result.findings if f.rule == "config-revision-unseen")
    assert unseen.severity == "warning"
    assert "v3" in unseen.message and str(hub_cache / "snapshots" / ("a" * 40) / "config.json") in unseen.message
    assert result.facts["model"]["config_revision_unseen"] is True


# -- --config-format -------------------------------------------------------------------------------------------------

PARAMS = {
    "dim": 4096,
    "n_layers": 32,
    "head_dim": 128,
    "hidden_dim": 14336,
    "n_heads": 32,
    "n_kv_heads": 8,
    "norm_eps": 1e-05,
    "vocab_size": 32768,
    "rope_theta": 1000000.0,
}


def test_mistral_format_reads_params_json(tmp_path: Path) -> None:
    model = folder(tmp_path / "mistral", params_json={**PARAMS, "max_position_embeddings": 32768})
    result = verdict("--model", str(model), "--config-format", "mistral", "--tokenizer-mode", "mistral")
    model_facts = result.facts["model"]
    assert model_facts["config_file"] == str(model / "params.json") and model_facts["config_format"] == "mistral"
    assert (model_facts["hidden_size"], model_facts["num_hidden_layers"], model_facts["num_key_value_heads"]) == (
        4096,
        32,
        8,
    )
    assert model_facts["architecture"] == "MistralForCausalLM"
    assert model_facts["max_model_len_limit"] == 32768
    assert model_facts["max_model_len_source"].startswith("params.json")
    assert ABOVE in rules(verdict("--model", str(model), "--config-format", "mistral", "--max-model-len", "65536"))


def test_auto_format_is_mistral_beside_consolidated_weights(tmp_path: Path) -> None:
    """get_config's auto: params.json and consolidated*.safetensors -> mistral, though config.json is there too."""
    model = folder(tmp_path / "both", params_json={**PARAMS, "max_position_embeddings": 32768}, config_json=llama(8192))
    assert verdict("--model", str(model)).facts["model"]["config_format"] == "hf"
    consolidated(model)
    auto = verdict("--model", str(model))
    assert auto.facts["model"]["config_format"] == "mistral"
    assert auto.facts["model"]["max_model_len_limit"] == 32768
    assert verdict("--model", str(model), "--config-format", "hf").facts["model"]["max_model_len_limit"] == 8192


def test_params_json_without_positions_takes_config_json_s_then_128000(tmp_path: Path) -> None:
    """MistralConfigParser.parse: _maybe_retrieve_max_pos_from_hf, default 128_000."""
    with_hf = folder(tmp_path / "a", params_json=PARAMS, config_json=llama(16384))
    assert verdict("--model", str(with_hf), "--config-format", "mistral").facts["model"]["max_model_len_limit"] == 16384
    alone = folder(tmp_path / "b", params_json=PARAMS)
    assert verdict("--model", str(alone), "--config-format", "mistral").facts["model"]["max_model_len_limit"] == 128000


def test_mistral_sections_the_check_does_not_rebuild_are_a_warning(tmp_path: Path) -> None:
    moe = {"num_experts": 8, "num_experts_per_tok": 2}
    model = folder(tmp_path / "moe", params_json={**PARAMS, "moe": moe, "max_position_embeddings": 32768})
    result = verdict("--model", str(model), "--config-format", "mistral")
    partly = next(f for f in result.findings if f.rule == "config-format-partly-modelled")
    assert partly.severity == "warning" and "moe" in partly.message
    assert result.facts["model"]["architecture"] == "MixtralForCausalLM"


def test_mistral_format_without_params_json_is_bad_input(tmp_path: Path) -> None:
    model = folder(tmp_path / "hf", config_json=llama(8192))
    with pytest.raises(LauncherError, match="params.json"):
        verdict("--model", str(model), "--config-format", "mistral")


def test_params_json_alone_needs_the_mistral_format(tmp_path: Path) -> None:
    model = folder(tmp_path / "params-only", params_json=PARAMS)
    with pytest.raises(LauncherError, match="--config-format mistral"):
        verdict("--model", str(model))


# -- flags that do not change the config -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags",
    [
        ["--tokenizer", "{other}"],
        ["--tokenizer-mode", "mistral"],
        ["--tokenizer-revision", "v2"],
        ["--code-revision", "v2", "--trust-remote-code"],
    ],
)
def test_tokenizer_and_code_revision_do_not_change_the_config(tmp_path: Path, flags: list[str]) -> None:
    model = folder(tmp_path / "model", config_json=llama(2048))
    other = folder(tmp_path / "other", config_json=llama(8192))
    result = verdict("--model", str(model), *[f.format(other=other) for f in flags], "--max-model-len", "4096")
    assert result.facts["model"]["config_file"] == str(model / "config.json")
    assert ABOVE in rules(result)
    assert not {"config-revision-ignored", "config-revision-unseen"} & rules(result)


def test_the_start_prediction_reads_the_same_config(tmp_path: Path) -> None:
    """launcher serve's memory prediction has only the split arguments (no release parser): the same request."""
    model = folder(tmp_path / "model", config_json=llama(2048))
    other = folder(tmp_path / "other", config_json=llama(8192, num_hidden_layers=16))
    args = ServeArgs.parse(["--model", str(model), "--hf_config_path", str(other), "--revision", "v2"])
    request = ConfigRequest.from_args(args)
    assert (request.location, request.revision, request.config_format) == (str(other), "v2", "auto")
    loaded = load_model(str(model), None, request)
    assert loaded.facts()["num_hidden_layers"] == 16 and loaded.facts()["config_revision_ignored"] is True
