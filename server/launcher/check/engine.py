"""Evaluate data/compatibility.yaml: one generic loop over rules written as data.

A rule's `when` maps fact paths (`args.quantization`, `model.is_mla`, `platform.capability`,
`derived.vision_intermediate_per_rank`, ...) to a value (equality) or to operators:
in, not_in, eq, ne, lt, le, gt, ge, multiple_of, not_multiple_of, contains, not_contains,
version (a specifier such as ">=0.26,<0.27"), present. An operand written "@path" is read from the
facts. All conditions must hold; `any:` holds a list of such maps of which one must; `not:` a map
that must not hold. A fact that is absent (None) makes its condition false, except `present: false`.
`platforms` and `vllm` (a version specifier such as ">=0.17,<0.33") narrow where the rule applies.

Every rule is validated at load against the fact schema (data/facts.yaml, check/schema.py): fact
paths, operators, operand types, message/fix placeholders, platforms and version ranges.
"""

from __future__ import annotations

import difflib
import functools
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from ..errors import RuleTableError
from ..resources import data_file
from .schema import FactSchema, load_schema

SEVERITIES = ("error", "warning", "info")
PLATFORM_KINDS = ("cuda", "rocm", "cpu")
MISSING = object()


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: str
    message: str
    fix: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "message": self.message,
            "fix": self.fix,
            "source": self.source,
        }


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
    "version": lambda v, o: Version(str(v)) in SpecifierSet(str(o)),
}
NUMERIC_OPERATORS = {"lt", "le", "gt", "ge", "multiple_of", "not_multiple_of"}
MEMBER_OPERATORS = {"in", "not_in"}
CONTAINER_OPERATORS = {"contains", "not_contains"}


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
        elif path == "not":
            if when_holds(facts, test):
                return False
        elif not condition_holds(facts, path, test):
            return False
    return True


def when_paths(when: Mapping[str, Any]) -> list[str]:
    """The fact paths a `when` reads, in order, `any:` and `not:` included."""
    paths: list[str] = []
    for key, value in when.items():
        if key == "any":
            paths += [p for alternative in value for p in when_paths(alternative)]
        elif key == "not":
            paths += when_paths(value)
        else:
            paths.append(key)
    return paths


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


# A rule's message or fix: a template, or templates chosen by a fact's value: {by: fact.path, VALUE: ..., default: ...}.
Text = str | Mapping[str, str]


def choose(text: Text, facts: Mapping[str, Any]) -> str:
    """The template of `text` for these facts: itself, or the variant named by the `by` fact's value."""
    if isinstance(text, str):
        return text
    value = lookup(facts, text["by"])
    key = str(value).lower() if isinstance(value, bool) else str(value)
    return text.get(key, text["default"])


def render(template: Text, facts: Mapping[str, Any]) -> str:
    return _FactFormatter(facts).format(choose(template, facts).strip())


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    message: Text
    fix: Text
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


class _Validator:
    """Checks one rule of one table against the fact schema; each problem raises with the rule id and the bad name."""

    def __init__(self, rule_id: str, table: str, schema: FactSchema):
        self.rule_id, self.table, self.schema = rule_id, table, schema

    def fail(self, problem: str) -> RuleTableError:
        return RuleTableError(f"rule {self.rule_id}: {problem}")

    def fact(self, path: str, where: str) -> Any:
        fact = self.schema.find(path, self.table)
        if fact is None:
            raise self.fail(
                f"{where} names the unknown fact {path!r}{self.schema.suggest(path, self.table)}; "
                "declare it in data/facts.yaml with its producer, or fix the name"
            )
        return fact

    def when(self, when: Any, where: str = "when") -> None:
        if not isinstance(when, Mapping) or (not when and where != "when"):
            raise self.fail(f"{where} must be a{' non-empty' if where != 'when' else ''} map of fact path -> test")
        for path, test in when.items():
            if path == "any":
                if not isinstance(test, list) or not test:
                    raise self.fail(f"{where}.any must be a non-empty list of maps")
                for alternative in test:
                    self.when(alternative, f"{where}.any")
            elif path == "not":
                self.when(test, f"{where}.not")
            else:
                self.condition(str(path), test)

    def condition(self, path: str, test: Any) -> None:
        fact = self.fact(path, "when")
        for op, operand in test.items() if isinstance(test, Mapping) else [("eq", test)]:
            if op == "present":
                if not isinstance(operand, bool):
                    raise self.fail(f"{path}: present takes true or false, not {operand!r}")
                continue
            if op not in OPERATORS:
                close = difflib.get_close_matches(str(op), [*OPERATORS, "present"], n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise self.fail(f"{path}: unknown operator {op!r}{hint}; known: {', '.join([*OPERATORS, 'present'])}")
            self.operand(path, fact, op, operand)

    def operand(self, path: str, fact: Any, op: str, operand: Any) -> None:
        ref = None
        if isinstance(operand, str) and operand.startswith("@"):
            ref = self.fact(operand[1:], f"{path}: {op}")
        if op in NUMERIC_OPERATORS:
            if fact.type not in ("int", "float", "any"):
                raise self.fail(f"{path} is a {fact.type}: {op} compares numbers")
            if ref is None and (isinstance(operand, bool) or not isinstance(operand, int | float)):
                raise self.fail(f"{path}: {op} takes a number, not {operand!r}")
        elif op in MEMBER_OPERATORS:
            if ref is None:
                if not isinstance(operand, list):
                    raise self.fail(f"{path}: {op} takes a list, not {operand!r}")
                bad = [item for item in operand if item is None or not fact.admits(item)]
                if bad:
                    raise self.fail(f"{path} is a {fact.type}: {op} lists {bad[0]!r}")
            elif ref.type not in ("list", "map", "any"):
                raise self.fail(f"{path}: {op} reads {operand} which is a {ref.type}, not a list")
        elif op in CONTAINER_OPERATORS:
            if fact.type not in ("list", "str", "map", "any"):
                raise self.fail(f"{path} is a {fact.type}: {op} needs a list or a string")
        elif op == "version":
            if ref is not None or not isinstance(operand, str):
                raise self.fail(f"{path}: version takes a specifier such as '>=0.26,<0.27'")
            self.specifier(operand, f"{path}: version")
        elif ref is None and (operand is None or not fact.admits(operand)):  # eq, ne
            raise self.fail(
                f"{path} is a {fact.type}{' or null' if fact.nullable else ''}: it never equals {operand!r}"
            )

    def specifier(self, spec: str, where: str, versions: Iterable[str] = ()) -> None:
        try:
            specifier = SpecifierSet(spec)
        except InvalidSpecifier:
            raise self.fail(f"{where}: bad version specifier {spec!r}") from None
        known = list(versions)
        if known and not any(Version(v) in specifier or _patch_in(v, specifier) for v in known):
            raise self.fail(f"{where}: {spec!r} matches no vLLM release the table knows ({', '.join(known)})")

    def text(self, name: str, template: Any) -> None:
        if isinstance(template, Mapping):
            if "by" not in template or "default" not in template:
                raise self.fail(f"{name} as variants needs `by: fact.path` and a `default` text")
            self.fact(str(template["by"]), f"{name}.by")
            for key, variant in template.items():
                if key != "by":
                    self.text(f"{name}.{key}", variant)
            return
        if not isinstance(template, str) or not template.strip():
            raise self.fail(f"{name} must be a non-empty string, or variants {{by: fact.path, VALUE: .., default: ..}}")
        try:
            fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        except ValueError as exc:
            raise self.fail(f"{name}: {exc} (write {{{{ and }}}} for literal braces)") from None
        for field in fields:
            if not field:
                raise self.fail(f"{name}: an empty placeholder {{}}; name a fact such as {{model.name}}")
            self.fact(field, f"{name} placeholder")


def validate_texts(texts: Mapping[str, Any], table: str, schema: FactSchema | None = None) -> None:
    """A table's shared text fragments (deployment_rules.yaml `texts`), checked like a rule's message."""
    check = _Validator("texts", table, load_schema() if schema is None else schema)
    for name, text in texts.items():
        check.text(str(name), text)


def _patch_in(version: str, specifier: SpecifierSet) -> bool:
    """Whether a later patch release of `version` (x.y.9) falls in `specifier` (">=0.26.3" on a table of 0.26.0)."""
    release = Version(version).release
    return Version(f"{release[0]}.{release[1]}.99") in specifier


def parse_rules(
    raw: list[Mapping[str, Any]],
    table: str = "compatibility",
    versions: Iterable[str] = (),
    schema: FactSchema | None = None,
) -> list[Rule]:
    """The rules of a table, each validated against the fact schema; RuleTableError at the first problem."""
    schema = load_schema() if schema is None else schema
    known_versions = list(versions)
    rules, seen = [], set()
    for entry in raw:
        missing = {"id", "severity", "message", "fix", "source", "when"} - set(entry)
        if missing:
            raise RuleTableError(f"rule {entry.get('id', '?')} lacks {', '.join(sorted(missing))}")
        if entry["id"] in seen:
            raise RuleTableError(f"rule id {entry['id']} is used twice")
        if entry["severity"] not in SEVERITIES:
            raise RuleTableError(f"rule {entry['id']}: severity must be one of {SEVERITIES}")
        check = _Validator(entry["id"], table, schema)
        check.specifier(entry.get("vllm", ""), "vllm", known_versions if entry.get("vllm") else ())
        unknown = [p for p in entry.get("platforms", ()) if p not in PLATFORM_KINDS]
        if unknown:
            raise check.fail(f"platforms names {unknown[0]!r}; known: {', '.join(PLATFORM_KINDS)}")
        check.when(entry["when"])
        check.text("message", entry["message"])
        check.text("fix", entry["fix"])
        seen.add(entry["id"])
        rules.append(
            Rule(
                entry["id"],
                entry["severity"],
                entry["message"],
                entry["fix"],
                entry["source"],
                entry["when"],
                tuple(entry.get("platforms", ())),
                entry.get("vllm", ""),
            )
        )
    return rules


@functools.cache
def load_table() -> dict[str, Any]:
    with data_file("compatibility.yaml").open(encoding="utf-8") as handle:
        table = yaml.safe_load(handle)
    table["parsed_rules"] = parse_rules(table["rules"], "compatibility", table["vllm_versions"])
    return table


def evaluate(facts: Mapping[str, Any], rules: list[Rule] | None = None) -> list[Finding]:
    """Every finding whose rule applies, errors first, in table order within a severity."""
    rules = load_table()["parsed_rules"] if rules is None else rules
    findings = [rule.finding(facts) for rule in rules if rule.applies(facts)]
    return sorted(findings, key=lambda f: SEVERITIES.index(f.severity))
