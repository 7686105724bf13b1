"""Evaluate data/compatibility.yaml: one generic loop over rules written as data.

A rule's `when` maps fact paths (`args.quantization`, `model.is_mla`, `platform.capability`,
`derived.vision_intermediate_per_rank`, ...) to a value (equality) or to operators:
in, not_in, eq, ne, lt, le, gt, ge, multiple_of, not_multiple_of, contains, not_contains,
present. An operand written "@path" is read from the facts. All conditions must hold;
`any:` holds a list of such maps of which one must. A fact that is absent (None) makes its
condition false, except `present: false`. `platforms` and `vllm` (a version specifier such as
">=0.17,<0.33") narrow where the rule applies.
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ..resources import data_file

SEVERITIES = ("error", "warning", "info")
MISSING = object()


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    fix: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "message": self.message, "fix": self.fix,
                "source": self.source}


def lookup(facts: Mapping[str, Any], path: str) -> Any:
    value: Any = facts
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _multiple(value: Any, base: Any) -> bool:
    return float(value) % float(base) == 0


OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda v, o: v == o,
    "ne": lambda v, o: v != o,
    "in": lambda v, o: v in o,
    "not_in": lambda v, o: v not in o,
    "lt": lambda v, o: v < o,
    "le": lambda v, o: v <= o,
    "gt": lambda v, o: v > o,
    "ge": lambda v, o: v >= o,
    "multiple_of": _multiple,
    "not_multiple_of": lambda v, o: not _multiple(v, o),
    "contains": lambda v, o: o in v,
    "not_contains": lambda v, o: o not in v,
}


def _operand(facts: Mapping[str, Any], operand: Any) -> Any:
    if isinstance(operand, str) and operand.startswith("@"):
        return lookup(facts, operand[1:])
    return operand


def condition_holds(facts: Mapping[str, Any], path: str, test: Any) -> bool:
    value = lookup(facts, path)
    if not isinstance(test, Mapping):
        test = {"eq": test}
    for op, raw in test.items():
        if op == "present":
            if (value not in (MISSING, None)) != bool(raw):
                return False
            continue
        operand = _operand(facts, raw)
        if value in (MISSING, None) or operand in (MISSING, None):
            return False
        if op not in OPERATORS:
            raise ValueError(f"unknown operator {op!r} on {path}")
        if not OPERATORS[op](value, operand):
            return False
    return True


def when_holds(facts: Mapping[str, Any], when: Mapping[str, Any]) -> bool:
    for path, test in when.items():
        if path == "any":
            if not any(when_holds(facts, alternative) for alternative in test):
                return False
        elif not condition_holds(facts, path, test):
            return False
    return True


class _FactFormatter(string.Formatter):
    """str.format with dotted fact paths: "{model.name} at TP {args.tensor_parallel_size}"."""

    def __init__(self, facts: Mapping[str, Any]):
        self.facts = facts

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        value = lookup(self.facts, field_name)
        if value is MISSING:
            raise KeyError(field_name)
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        if isinstance(value, float) and value.is_integer() and "per_rank" in field_name:
            value = int(value)
        return value, field_name


def render(template: str, facts: Mapping[str, Any]) -> str:
    return _FactFormatter(facts).format(template.strip())


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    message: str
    fix: str
    source: str
    when: Mapping[str, Any]
    platforms: tuple[str, ...] = ()
    vllm: str = ""

    def applies(self, facts: Mapping[str, Any]) -> bool:
        if self.platforms and lookup(facts, "platform.kind") not in self.platforms:
            return False
        if self.vllm and Version(str(lookup(facts, "vllm.version"))) not in SpecifierSet(self.vllm):
            return False
        return when_holds(facts, self.when)

    def finding(self, facts: Mapping[str, Any]) -> Finding:
        return Finding(self.id, self.severity, render(self.message, facts), render(self.fix, facts), self.source)


class RuleTableError(ValueError):
    """data/compatibility.yaml is malformed; raised at load so a bad table never half-works."""


def parse_rules(raw: list[Mapping[str, Any]]) -> list[Rule]:
    rules, seen = [], set()
    for entry in raw:
        missing = {"id", "severity", "message", "fix", "source", "when"} - set(entry)
        if missing:
            raise RuleTableError(f"rule {entry.get('id', '?')} lacks {', '.join(sorted(missing))}")
        if entry["id"] in seen:
            raise RuleTableError(f"rule id {entry['id']} is used twice")
        if entry["severity"] not in SEVERITIES:
            raise RuleTableError(f"rule {entry['id']}: severity must be one of {SEVERITIES}")
        try:
            SpecifierSet(entry.get("vllm", ""))
        except InvalidSpecifier:
            raise RuleTableError(f"rule {entry['id']}: bad vllm specifier {entry['vllm']!r}") from None
        seen.add(entry["id"])
        rules.append(Rule(entry["id"], entry["severity"], entry["message"], entry["fix"], entry["source"],
                          entry["when"], tuple(entry.get("platforms", ())), entry.get("vllm", "")))
    return rules


@functools.cache
def load_table() -> dict[str, Any]:
    with data_file("compatibility.yaml").open(encoding="utf-8") as handle:
        table = yaml.safe_load(handle)
    table["parsed_rules"] = parse_rules(table["rules"])
    return table


def evaluate(facts: Mapping[str, Any], rules: list[Rule] | None = None) -> list[Finding]:
    """Every finding whose rule applies, errors first, in table order within a severity."""
    rules = load_table()["parsed_rules"] if rules is None else rules
    findings = [rule.finding(facts) for rule in rules if rule.applies(facts)]
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
