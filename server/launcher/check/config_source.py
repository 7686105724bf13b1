"""Which model config vLLM will read, decided as vLLM decides it, so the rules judge that config and no other.

vllm/config/model.py ModelConfig.__post_init__ (0.26.0, 0.33.0) calls vllm/transformers_utils/config.py get_config with
`hf_config_path or model`, `revision` and `config_format`:
- --hf-config-path: the config is read from that directory (or hub repo) instead of --model's.
- --revision: the hub revision of the config (0.33 resolves it per repo; a local directory is read as it is: its
  files are listed and opened without any revision, repo_utils.file_or_path_exists / list_repo_files).
- --config-format: `hf` reads config.json; `mistral` reads params.json (MistralConfigParser, remapped to HF keys by
  configs/mistral.py adapt_config_dict, config.json's keys as defaults); `auto` is `mistral` when the repo has
  consolidated*.safetensors and params.json (is_mistral_model_repo), else `hf` when it has config.json.
- --code-revision only picks the revision of remote code (a trust_remote_code config class), never config.json;
  --tokenizer, --tokenizer-revision and --tokenizer-mode only pick the tokenizer: none of them changes the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arguments import ServeArgs

# adapt_config_dict's _remap_general_mistral_args: Mistral key -> HF key, then HF key -> (Mistral key, default).
MISTRAL_RENAMES = {
    "dim": "hidden_size",
    "norm_eps": "rms_norm_eps",
    "n_kv_heads": "num_key_value_heads",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "hidden_dim": "intermediate_size",
}
MISTRAL_DEFAULT_MAX_POSITIONS = 128_000
# params.json sections adapt_config_dict remaps beyond the general keys; the check does not rebuild them.
MISTRAL_NOT_MODELLED = ("quantization", "qk_nope_head_dim", "moe", "yarn", "llama_4_scaling", "multimodal")


@dataclass(frozen=True)
class ConfigRequest:
    """What ModelConfig asks get_config for: where, at which revision, in which format."""

    model: str
    location: str  # --hf-config-path, else --model
    revision: str | None
    config_format: str  # as given: auto, hf, mistral (or a plugin's)

    @classmethod
    def from_parsed(cls, model: str, parsed: Any) -> ConfigRequest:
        """From the release parser's namespace (None: the defaults)."""
        location = getattr(parsed, "hf_config_path", None) or model
        return cls(model, location, getattr(parsed, "revision", None), getattr(parsed, "config_format", None) or "auto")

    @classmethod
    def from_args(cls, args: ServeArgs) -> ConfigRequest:
        """From the split serve arguments, where no release parser ran (the start's memory prediction)."""
        model = args.model or ""
        return cls(
            model, args.get("hf-config-path") or model, args.get("revision"), args.get("config-format") or "auto"
        )


@dataclass
class ConfigRead:
    """What the check read for the model config, and what it could not see (facts model.config_*)."""

    file: str
    config_format: str  # resolved: hf or mistral
    revision: str | None = None  # --revision as given
    revision_ignored: bool = False  # a local directory: vLLM reads its files as they are
    revision_unseen: bool = False  # a hub revision the check could not read: it judged another revision's config
    not_modelled: list[str] = field(default_factory=list)  # params.json sections the check did not rebuild

    def facts(self) -> dict[str, Any]:
        return {
            "config_file": self.file,
            "config_format": self.config_format,
            "config_revision": self.revision,
            "config_revision_ignored": self.revision_ignored,
            "config_revision_unseen": self.revision_unseen,
            "config_not_modelled": list(self.not_modelled),
            "config_not_modelled_text": ", ".join(self.not_modelled) or None,
        }


def is_mistral_format(directory: Path) -> bool:
    """get_config's `auto` on a local directory: consolidated*.safetensors and params.json (is_mistral_model_repo,
    file_or_path_exists)."""
    return (directory / "params.json").is_file() and any(directory.rglob("consolidated*.safetensors"))


def resolved_format(requested: str, directory: Path) -> str:
    if requested != "auto":
        return requested
    return "mistral" if is_mistral_format(directory) else "hf"


def _remap_sliding_window(config: dict[str, Any]) -> None:
    """configs/mistral.py _remap_mistral_sliding_window: a per-layer list becomes one window and layer_types."""
    window = config.get("sliding_window")
    if isinstance(window, list) and window:
        layers = int(config.get("num_hidden_layers") or len(window))
        pattern = window * (layers // len(window))
        config["layer_types"] = ["full_attention" if w is None else "sliding_attention" for w in pattern]
        config["sliding_window"] = next((w for w in window if w is not None), None)
    elif isinstance(window, int) and config.get("layer_types") is None:
        config["layer_types"] = ["sliding_attention"] * int(config.get("num_hidden_layers") or 0)


def mistral_config(params: dict[str, Any], hf_defaults: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """params.json as MistralConfigParser.parse and adapt_config_dict turn it into an HF config (vLLM 0.33.0): the
    general key remap, max_position_embeddings from params.json, else config.json's text config, else 128000, the
    sliding window, the architecture, then config.json's keys as defaults. Returns the config and the sections of
    params.json whose own remap (MoE, MLA, YaRN, vision, quantization) the check does not rebuild."""
    config = dict(params)
    not_modelled = [key for key in MISTRAL_NOT_MODELLED if config.get(key)]
    if config.get("vision_encoder"):
        not_modelled.append("vision_encoder")
    if config.get("max_position_embeddings") is None:
        text = hf_defaults.get("text_config") or hf_defaults
        config["max_position_embeddings"] = text.get("max_position_embeddings") or MISTRAL_DEFAULT_MAX_POSITIONS
    for key, new_key in MISTRAL_RENAMES.items():
        if key in config:
            config[new_key] = config.pop(key)
    config["model_type"] = config.pop("model_type", "transformer")
    config["hidden_act"] = config.pop("activation", "silu")
    config["tie_word_embeddings"] = config.pop("tied_embeddings", False)
    config["max_seq_len"] = config.pop("max_seq_len", config["max_position_embeddings"])
    _remap_sliding_window(config)
    moe = config.get("moe") or {}
    if config["model_type"] == "mamba":
        config["architectures"] = ["Mamba2ForCausalLM"]
    elif not (moe.get("num_shared_experts") or 0) > 0:  # Mistral Large 3 is remapped to deepseek_v3: not modelled
        config["architectures"] = ["MixtralForCausalLM" if moe else "MistralForCausalLM"]
    for key, value in hf_defaults.items():
        config.setdefault(key, value)
    return config, not_modelled
