"""vLLM serve arguments: parsed with vLLM's own spellings, passed through untouched.

Accepts what `vllm serve` and `python -m vllm.entrypoints.openai.api_server` accept:
`--flag value`, `--flag=value`, underscores or dashes (`--max_model_len`), the short
aliases (`-tp`, `-pp`, `-dp`, `-q`) and a leading positional model (`vllm serve MODEL`).
Flags the launcher does not know are kept as they are and handed to vLLM. Given the target release, an
abbreviation its parser takes (`--max-model-le`, `-qfp8`) is read as the full flag, as vLLM reads it.
"""

from __future__ import annotations

import argparse
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import LauncherError
from . import vllm_parser

ALIASES = {
    "tp": "tensor-parallel-size",
    "pp": "pipeline-parallel-size",
    "dp": "data-parallel-size",
    "q": "quantization",
}


@functools.cache
def _union_spec() -> vllm_parser.FlagSpec:
    """Every derived release's flags, for callers that do not name a release (a flag that takes no value in one
    release is read as such)."""
    options: dict[str, dict[str, object]] = {}
    for release in vllm_parser.known_releases():
        for option, action in vllm_parser.flag_spec(release).options.items():
            if option not in options or action["nargs"] == 0:
                options[option] = action
    return vllm_parser.FlagSpec("any", options)


def flag_spec(release: str | None) -> vllm_parser.FlagSpec:
    """The flags of `release`'s parser (data/vllm/<release>.json), or of all derived releases."""
    return _union_spec() if release is None else vllm_parser.flag_spec(release)


def canonical(flag: str) -> str:
    """`--max_model_len` and `-tp` become `max-model-len` and `tensor-parallel-size`; in `--hf_overrides.rope_theta`
    only the flag's part is respelled, as vLLM does (FlexibleArgumentParser.parse_args): the key is the config's."""
    name, dot, key = flag.lstrip("-").partition(".")
    name = name.replace("_", "-")
    return f"{name}.{key}" if dot else ALIASES.get(name, name)


def _spelled(raw: str) -> str:
    """The option string vLLM's parser sees: `--max_model_len` becomes `--max-model-len`; `-tp` stays."""
    return "--" + raw[2:].replace("_", "-") if raw.startswith("--") else raw


def _looks_like_flag(token: str) -> bool:
    return token.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", token)


@dataclass
class Option:
    """One flag as the user wrote it, and its values (empty for a boolean flag)."""

    name: str
    values: list[str] = field(default_factory=list)

    def argv(self) -> list[str]:
        return [f"--{self.name}", *self.values]


@dataclass
class ServeArgs:
    """The parsed serve arguments, in the order given; a flag given twice is kept twice and read as vLLM's parser
    reads it (the last value wins: vllm_parser's rebuilt parser is the authority, this is only the split)."""

    options: list[Option]
    release: str | None = None  # the derived vLLM release whose parser split them (vllm_parser.release_for)

    @classmethod
    def parse(cls, argv: Iterable[str], release: str | None = None) -> ServeArgs:
        """Split argv into options the way `release`'s parser does (which flags take none or several values), after
        spelling out the abbreviations that parser takes (vllm_parser.full_spellings: `--max-model-le` is
        --max-model-len). Without a release no abbreviation is resolved: which prefixes are unambiguous depends on
        the release."""
        spec = flag_spec(release)
        tokens = list(argv) if release is None else vllm_parser.full_spellings(list(argv), release)
        options: list[Option] = []
        i = 0
        if tokens and not _looks_like_flag(tokens[0]):
            options.append(Option("model", [tokens[0]]))
            i = 1
        while i < len(tokens):
            token = tokens[i]
            if not _looks_like_flag(token):
                raise LauncherError(
                    f"unexpected argument {token!r}: the model goes first or after --model, "
                    "every other value after its flag"
                )
            raw, eq, inline = token.partition("=")
            name = spec.long_name(_spelled(raw)) or canonical(raw)
            i += 1
            if eq:
                options.append(Option(name, [inline]))
                continue
            if spec.takes_no_value(_spelled(raw)):
                options.append(Option(name))
                continue
            values: list[str] = []
            while i < len(tokens) and not _looks_like_flag(tokens[i]):
                values.append(tokens[i])
                i += 1
                if not spec.takes_many(_spelled(raw)):
                    break
            options.append(Option(name, values))
        return cls(options, release)

    # -- reading -----------------------------------------------------------------------------------

    def get(self, name: str) -> str | None:
        for option in reversed(self.options):
            if option.name == name:
                return option.values[0] if option.values else ""
        return None

    def has(self, name: str) -> bool:
        return any(option.name == name for option in self.options)

    def flag(self, name: str) -> bool:
        """A boolean flag: on when its last spelling is `--name`, off when it is `--no-name` or neither is given (a
        repeated flag is read as argparse reads it: the last occurrence wins)."""
        twin = name[3:] if name.startswith("no-") else f"no-{name}"
        last = next((o.name for o in reversed(self.options) if o.name in (name, twin)), None)
        return last == name

    def get_int(self, name: str, default: int | None = None) -> int | None:
        value = self.get(name)
        if value is None or value in ("", "auto", "-1"):
            return default
        try:
            number = vllm_parser.human_readable_int(value)
        except (ValueError, argparse.ArgumentTypeError):
            raise LauncherError(f"--{name} takes a whole number (such as 4096, 32k or 32K), not {value!r}") from None
        if number < 1:
            raise LauncherError(f"--{name} takes a positive whole number, not {value!r}")
        return number

    def get_float(self, name: str, default: float | None = None) -> float | None:
        value = self.get(name)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise LauncherError(f"--{name} takes a number, not {value!r}") from None

    # -- writing -----------------------------------------------------------------------------------

    def argv(self) -> list[str]:
        """The arguments in canonical `--flag value` form, in the order given."""
        return [token for option in self.options for token in option.argv()]

    def without(self, *names: str) -> ServeArgs:
        return ServeArgs([o for o in self.options if o.name not in names], self.release)

    def with_option(self, name: str, *values: str) -> ServeArgs:
        return ServeArgs([*self.without(name).options, Option(name, list(values))], self.release)

    # -- the values the rules read -------------------------------------------------------------------

    @property
    def model(self) -> str | None:
        return self.get("model")

    def facts(self, lowercase_quantization: bool = True) -> dict[str, Any]:
        """The serve arguments as rule facts, with vLLM's defaults where a flag is absent. vLLM lowercases
        --quantization (ModelConfig.validate_quantization_before, where the release's derived facts say so)."""
        quantization = self.get("quantization")
        if quantization and lowercase_quantization:
            quantization = quantization.lower()
        tp = self.get_int("tensor-parallel-size", 1) or 1
        pp = self.get_int("pipeline-parallel-size", 1) or 1
        utilization = self.get_float("gpu-memory-utilization")
        if utilization is not None and not 0 < utilization <= 1:
            raise LauncherError(f"--gpu-memory-utilization is a fraction in (0, 1], not {utilization}")
        return {
            "model": self.model,
            "quantization": quantization,
            "kv_cache_dtype": self.get("kv-cache-dtype") or "auto",
            "dtype": self.get("dtype") or "auto",
            "tensor_parallel_size": tp,
            "pipeline_parallel_size": pp,
            "world_size": tp * pp,
            "max_model_len": self.get_int("max-model-len"),
            "gpu_memory_utilization": 0.92 if utilization is None else utilization,
            "gpu_memory_utilization_given": utilization is not None,
            "load_format": self.get("load-format") or "auto",
            "trust_remote_code": self.flag("trust-remote-code"),
            "enforce_eager": self.flag("enforce-eager"),
            "allow_deprecated_quantization": self.flag("allow-deprecated-quantization"),
            "mm_encoder_tp_mode": self.get("mm-encoder-tp-mode") or "weights",
        }
