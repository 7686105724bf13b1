"""Class 1 of the verdict: the serve arguments as the target release's own parser reads them, as findings.

The rules are data/argument_rules.yaml; the parser is server/launcher/check/vllm_parser.py.
"""

from __future__ import annotations

import difflib
import functools
import operator
import re
from typing import Any

import yaml

from ..resources import data_file
from . import vllm_parser
from .engine import Finding


@functools.cache
def _rules() -> dict[str, Any]:
    with data_file("argument_rules.yaml").open(encoding="utf-8") as handle:
        data: dict[str, Any] = yaml.safe_load(handle)
    for rule in data["rules"]:
        rule["pattern"] = re.compile(rule["match"])
    return data


def _unknown_detail(message: str, release: str) -> str:
    """For each unrecognised flag: the releases whose parser has it, so the fix says removed or added."""
    flags = [
        token.partition("=")[0]
        for token in message.removeprefix("unrecognized arguments: ").split()
        if token.startswith("-")
    ]
    parts = []
    for flag in flags:
        elsewhere = vllm_parser.other_releases_with(flag, release)
        if elsewhere:
            parts.append(
                f"{flag} is not a flag of vLLM {release} (the parsers of {', '.join(elsewhere)} have it): "
                f"drop it, or target a release that has it"
            )
        else:
            parts.append(
                f"{flag} is not a flag of any vLLM release the launcher knows "
                f"({', '.join(vllm_parser.known_releases())}): check its spelling (`vllm serve --help=all`)"
            )
    return "; ".join(parts) or "drop the extra values: each flag takes the values vLLM's parser lists"


def refusal(message: str, release: str) -> Finding:
    data = _rules()
    rule = next(r for r in data["rules"] if r["pattern"].search(message))
    detail = _unknown_detail(message, release) if rule["id"] == "argument-unknown" else ""
    return Finding(
        rule["id"],
        "error",
        f"vllm serve (vLLM {release}): error: {message}",
        rule["fix"].format(release=release, detail=detail),
        data["source"],
    )


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def repeated_findings(parsed: vllm_parser.Parsed, release: str) -> list[Finding]:
    """A warning for each flag given more than once (the earlier value is ignored) and each dotted key set twice,
    with the duplicate keys vLLM itself logs."""
    data = _rules()["repeated"]
    fix = data["fix"].format(release=release)
    findings = []
    for dest, options in parsed.repeated(release).items():
        value = getattr(parsed.namespace, dest, None)
        logged = sorted(parsed.duplicates & set(options))
        findings.append(
            Finding(
                data["id"],
                "warning",
                f"{' then '.join(options)}: the same flag {len(options)} times; vLLM {release}'s parser keeps the "
                f"last ({options[-1]} -> {_shown(value)}) and ignores the earlier"
                + (f" (vLLM logs: Found duplicate keys {', '.join(logged)})" if logged else ""),
                fix,
                data["source"],
            )
        )
    dotted = sorted(key for key in parsed.duplicates if "." in key)
    if dotted:
        findings.append(
            Finding(
                data["id"],
                "warning",
                f"{', '.join(dotted)} set more than once: vLLM {release} merges the dotted keys and keeps the last "
                f"value of each (vLLM logs: Found duplicate keys {', '.join(dotted)})",
                fix,
                data["source"],
            )
        )
    return findings


BOUND_WORDS = {"ge": "greater than or equal to", "gt": "greater than", "le": "less than or equal to", "lt": "less than"}
BOUND_TESTS = {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}


def _given(parsed: vllm_parser.Parsed) -> dict[str, str]:
    """dest -> the option string the user gave for it last."""
    return {dest: option for dest, option in parsed.occurrences}


def _config_finding(kind: str, message: str, **fix: str) -> Finding:
    data = _rules()["config"]
    return Finding(data[kind]["id"], "error", message, data[kind]["fix"].format(**fix), data["source"])


def config_findings(parsed: vllm_parser.Parsed, release: str) -> list[Finding]:
    """What vLLM's config dataclasses refuse among the values the parser accepted (parser.config_fields of the
    release facts): a number outside its field's bounds, an unknown key in a JSON config argument, a plain string
    where the field takes an object. pydantic's wording, as vLLM prints it."""
    fields = vllm_parser.release_facts(release)["parser"].get("config_fields", {})
    findings = []
    for dest, option in _given(parsed).items():
        fact = fields.get(dest)
        value = getattr(parsed.namespace, dest, None)
        if fact is None or value is None:
            continue
        config_class, _, field = fact["config"].partition(".")
        head = f"vllm serve (vLLM {release}): 1 validation error for {config_class} {field}:"
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            for key, bound in fact.get("bounds", {}).items():
                if not BOUND_TESTS[key](value, bound):
                    words = f"{BOUND_WORDS[key]} {bound}"
                    findings.append(
                        _config_finding(
                            "out_of_range",
                            f"{head} Input should be {words} ({option} {value})",
                            option=option,
                            bound=words,
                        )
                    )
        if isinstance(value, dict) and fact.get("unknown_key_refused"):
            unknown = sorted(str(key) for key in value if key not in fact["keys"])
            if unknown:
                close = sorted({m for key in unknown for m in difflib.get_close_matches(key, fact["keys"], 2)})
                findings.append(
                    _config_finding(
                        "unknown_key",
                        f"vllm serve (vLLM {release}): error: argument {option}: {len(unknown)} validation "
                        f"error{'s' if len(unknown) > 1 else ''} for {fact['keys_class']} "
                        + " ".join(f"{key}: Unexpected keyword argument" for key in unknown),
                        keys=", ".join(unknown),
                        option=option,
                        config_class=fact["keys_class"],
                        release=release,
                        suggestion=f" (did you mean {' or '.join(close)}?)" if close else "",
                    )
                )
        if isinstance(value, str) and fact.get("string_refused"):
            findings.append(
                _config_finding(
                    "not_an_object",
                    f"{head} {value!r} is not a JSON object, and vLLM takes a dictionary or a callable there "
                    f"({fact.get('string_error', '')[:160]})",
                    option=option,
                )
            )
    return findings


def check_arguments(argv: list[str], version: str) -> tuple[list[Finding], Any]:
    """Findings of the target release's parser on argv, and its namespace (None when it refused)."""
    release = vllm_parser.release_for(version)
    try:
        parsed = vllm_parser.parse_recorded(argv, release)
    except vllm_parser.ArgumentsRefused as refused:
        return [refusal(str(refused), release)], None
    data = _rules()["deprecated"]
    spec = vllm_parser.flag_spec(release)
    findings = [
        Finding(
            data["id"],
            "warning",
            f"{option} is deprecated in vLLM {release}",
            data["fix"].format(option=option, release=release),
            _rules()["source"],
        )
        for option in dict.fromkeys(vllm_parser.used_options(argv, release))
        if spec.options[option].get("deprecated")
    ]
    return findings + repeated_findings(parsed, release) + config_findings(parsed, release), parsed.namespace
