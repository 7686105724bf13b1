"""No two rules of the compatibility table contradict each other: where an error rule rejects a flag, no rule
says "nothing required" (or "nothing to change") about the same inputs.

Every pair (error, nothing-required) that speaks of a common args.*, derived.* or env.* fact (outside `not:`) is
evaluated over the fact space the table names: each fact either rule reads takes the values the table's conditions
mention on it (each literal and its neighbours, for ranges and multiples); the vLLM release is every release the
table knows and a later patch release of each (vllm.* follows from the release, table.* from the table); the other
facts keep a Llama-3.1-8B on an H100's values. A pair that both apply to one point of that space is a
contradiction, printed with the facts that trigger it.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from packaging.specifiers import SpecifierSet

from launcher.check import engine
from launcher.check.arguments import ServeArgs
from launcher.check.derive import build_facts
from launcher.check.model_facts import load_model
from launcher.check.platforms import from_target
from launcher.check.schema import load_schema
from launcher.check.versions import version_data
from tests.harness.common import model_dir

TABLE = engine.load_table()
RULES = {rule.id: rule for rule in TABLE["parsed_rules"]}
RAW = {entry["id"]: entry for entry in TABLE["rules"]}
MAX_POINTS = 200_000


def says_nothing_required(rule: engine.Rule) -> bool:
    return "nothing required" in rule.fix or "nothing to change" in rule.fix


def conditions(when: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(path, operator, operand) of every condition in a `when`, `any:` and `not:` included."""
    for path, test in when.items():
        if path == "any":
            for alternative in test:
                yield from conditions(alternative)
        elif path == "not":
            yield from conditions(test)
        else:
            for op, operand in test.items() if isinstance(test, Mapping) else [("eq", test)]:
                yield path, op, operand


LITERALS: dict[str, list[tuple[str, Any]]] = {}
for entry in TABLE["rules"]:
    for path, op, operand in conditions(entry["when"]):
        LITERALS.setdefault(path, []).append((op, operand))


def releases() -> list[str]:
    known = list(TABLE["vllm_versions"])
    patches = [f"{v.rsplit('.', 1)[0]}.3" for v in known]
    return sorted(set(known + patches), key=lambda v: tuple(int(p) for p in v.split(".")))


def domain(path: str) -> list[Any]:
    if path == "vllm.version":
        return releases()
    if path == "platform.kind":
        return ["cuda", "rocm", "cpu"]
    fact = load_schema().find(path, "compatibility")
    assert fact is not None, path
    values: list[Any] = [None] if fact.nullable else []
    if fact.type == "bool":
        return [True, False, *values]
    literals = LITERALS.get(path, [])
    found: list[Any] = []
    for op, operand in literals:
        if isinstance(operand, str) and operand.startswith("@"):
            continue
        items = operand if isinstance(operand, list) else [operand]
        for item in items:
            if fact.type in ("int", "float") and isinstance(item, int | float) and not isinstance(item, bool):
                step = 0.05 if fact.type == "float" else 1
                found += [item, item - step, item + step]
                if op in ("multiple_of", "not_multiple_of"):
                    found += [item * 3, item * 2 + 1]
            elif fact.type == "str" and isinstance(item, str):
                found.append(item)
            elif fact.type == "list" and op in ("contains", "not_contains"):
                found += [[item], []]
    if fact.type == "str":
        found.append("something-else")
    if fact.type in ("int", "float") and not found:
        found = [1, 16, 128]
    unique: list[Any] = []
    for value in found + values:
        if value not in unique:
            unique.append(value)
    return unique


def base_facts() -> dict[str, Any]:
    args = ServeArgs.parse(["--model", model_dir("meta-llama__Llama-3.1-8B-Instruct")])
    model = load_model(args.model or "")
    platform = from_target("cuda:h100")
    return build_facts(args, model, platform, version_data("0.26.0", TABLE), TABLE, {})


BASE = base_facts()


def place(facts: dict[str, Any], path: str, value: Any) -> None:
    holder = facts
    *parents, leaf = path.split(".")
    for part in parents:
        holder = holder.setdefault(part, {})
    holder[leaf] = value


def consistent(point: Mapping[str, Any]) -> bool:
    """A CPU has no capability or gfx, a CUDA GPU no gfx, a ROCm GPU no capability."""
    kind = point.get("platform.kind")
    if kind == "cpu" and (point.get("platform.capability") is not None or point.get("platform.gfx") is not None):
        return False
    if kind == "cuda" and point.get("platform.gfx") is not None:
        return False
    return not (kind == "rocm" and point.get("platform.capability") is not None)


def top_level_filter(path: str, values: list[Any], rules: list[engine.Rule]) -> list[Any]:
    """The values for which every top-level condition of both rules on `path` holds (both must apply)."""
    kept = values
    for rule in rules:
        test = rule.when.get(path)
        if test is None or (
            isinstance(test, Mapping) and any(isinstance(o, str) and o.startswith("@") for o in test.values())
        ):
            continue
        kept = [v for v in kept if engine.condition_holds(_alone(path, v), path, test)]
    return kept


def _alone(path: str, value: Any) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    place(facts, path, value)
    return facts


def co_firing(a: engine.Rule, b: engine.Rule) -> dict[str, Any] | None:
    """A point of the fact space where both rules apply, or None."""
    paths = sorted(
        {"platform.kind", "vllm.version", *engine.when_paths(a.when), *engine.when_paths(b.when)}
        | {op[1:] for r in (a, b) for _, _, op in conditions(r.when) if isinstance(op, str) and op.startswith("@")}
    )
    paths = [p for p in paths if p == "vllm.version" or p.split(".")[0] not in ("vllm", "table")]  # from the release
    domains = {p: top_level_filter(p, domain(p), [a, b]) for p in paths}
    domains["platform.kind"] = [
        k for k in domains["platform.kind"] if all(not r.platforms or k in r.platforms for r in (a, b))
    ]
    domains["vllm.version"] = [
        v for v in domains["vllm.version"] if all(not r.vllm or v in SpecifierSet(r.vllm) for r in (a, b))
    ]
    size = 1
    for values in domains.values():
        size *= len(values)
    assert size <= MAX_POINTS, f"{a.id} x {b.id}: {size} points; narrow the domains"
    for combination in itertools.product(*domains.values()):
        point = dict(zip(domains, combination, strict=True))
        if not consistent(point):
            continue
        facts = copy.deepcopy(BASE)
        facts["vllm"] = {**version_data(point["vllm.version"], TABLE)}
        for path, value in point.items():
            place(facts, path, value)
        if a.applies(facts) and b.applies(facts):
            return point
    return None


def positive_paths(when: Mapping[str, Any]) -> set[str]:
    """The facts a rule is about: its conditions outside `not:` (an exclusion is not what the rule speaks of)."""
    paths: set[str] = set()
    for key, value in when.items():
        if key == "any":
            paths |= {p for alternative in value for p in positive_paths(alternative)}
        elif key != "not":
            paths.add(key)
    return paths


def shares_a_flag(a: engine.Rule, b: engine.Rule) -> bool:
    about = {p for p in positive_paths(a.when) if p.split(".")[0] in ("args", "derived", "env")}
    return bool(about & positive_paths(b.when))


PAIRS = [
    (a, b)
    for a in RULES.values()
    if a.severity == "error"
    for b in RULES.values()
    if says_nothing_required(b) and shares_a_flag(a, b)
]


def test_the_pairs_cover_the_known_contradiction() -> None:
    ids = {(a.id, b.id) for a, b in PAIRS}
    assert ("kv-fp8-e5m2-flashinfer-hopper", "kv-fp8-e5m2-falls-back") in ids


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=[f"{a.id}+{b.id}" for a, b in PAIRS])
def test_no_error_rule_and_nothing_required_rule_apply_together(a: engine.Rule, b: engine.Rule) -> None:
    point = co_firing(a, b)
    assert point is None, f"{a.id} (error) and {b.id} ({b.fix!r}) both apply to {point}"


def test_the_search_finds_a_restated_range_that_drifts() -> None:
    """The table as it was: kv-fp8-e5m2-falls-back excluded the FlashInfer-on-Hopper releases by a hand-typed list
    (0.26.0 to 0.26.2), so on 0.26.3 both rules applied."""
    old = {
        **RAW["kv-fp8-e5m2-falls-back"],
        "when": {
            "args.kv_cache_dtype": "fp8_e5m2",
            "model.is_mla": False,
            "any": [
                {"platform.capability": {"lt": 9.0}},
                {"platform.capability": {"ge": 10.0}},
                {"model.attention_head_size": {"not_in": [64, 128, 256, 512]}},
                {"vllm.version": {"not_in": ["0.26.0", "0.26.1", "0.26.2"]}},
            ],
        },
    }
    (falls_back,) = engine.parse_rules([old], "compatibility", TABLE["vllm_versions"])
    point = co_firing(RULES["kv-fp8-e5m2-flashinfer-hopper"], falls_back)
    assert point is not None and point["vllm.version"] == "0.26.3"
