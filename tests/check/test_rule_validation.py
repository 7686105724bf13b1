"""The rule engine checks its tables at load against the fact schema (data/facts.yaml): a misspelled fact path,
operator or placeholder, an operand of the wrong type or a version range that matches no release fails with the
rule id and the bad name, before any check runs."""

from __future__ import annotations

from typing import Any

import pytest

from launcher.check import engine
from launcher.check.schema import load_schema
from launcher.errors import RuleTableError

VERSIONS = ["0.17.0", "0.26.0", "0.33.0"]


def rule(**changes: Any) -> dict[str, Any]:
    base = {
        "id": "probe-rule",
        "severity": "error",
        "message": "{model.name} at TP {args.tensor_parallel_size}",
        "fix": "use -tp 1",
        "source": "s",
        "when": {"args.tensor_parallel_size": {"gt": 1}},
    }
    return {**base, **changes}


def parse(entry: dict[str, Any], table: str = "compatibility") -> None:
    engine.parse_rules([entry], table, VERSIONS)


def test_a_valid_rule_loads() -> None:
    parse(rule())
    parse(rule(when={"not": {"model.is_mla": True}, "any": [{"vllm.version": {"version": ">=0.26"}}]}))


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        (
            {"when": {"args.tensor_paralel_size": {"gt": 1}}},
            "unknown fact 'args.tensor_paralel_size' (did you mean args.tensor_parallel_size?)",
        ),
        (
            {"when": {"args.tensor_parallel_size": {"not_multiple": 16}}},
            "unknown operator 'not_multiple' (did you mean not_multiple_of?)",
        ),
        ({"when": {"any": [{"model.is_mla": True}, {"model.is_mal": True}]}}, "unknown fact 'model.is_mal'"),
        ({"when": {"not": {"platform.gfxx": "gfx942"}}}, "unknown fact 'platform.gfxx'"),
        (
            {"when": {"args.quantization": {"not_in": "@vllm.quantization_method"}}},
            "unknown fact 'vllm.quantization_method'",
        ),
        ({"message": "{model.nam} is too large"}, "message placeholder names the unknown fact 'model.nam'"),
        ({"fix": "pass {args.kv_cache_dtyp}"}, "fix placeholder names the unknown fact 'args.kv_cache_dtyp'"),
        ({"message": "a {} placeholder"}, "empty placeholder"),
        ({"message": "an unclosed {model.name"}, "message:"),
        ({"vllm": ">=0.40"}, "matches no vLLM release the table knows"),
        ({"vllm": "newest"}, "bad version specifier"),
        ({"platforms": ["cuda", "tpu"]}, "platforms names 'tpu'"),
        ({"when": {"model.is_mla": "yes"}}, "model.is_mla is a bool: it never equals 'yes'"),
        ({"when": {"model.name": {"lt": 3}}}, "model.name is a str: lt compares numbers"),
        ({"when": {"args.tensor_parallel_size": {"in": [1, "2"]}}}, "in lists '2'"),
        ({"when": {"model.is_mla": {"present": "no"}}}, "present takes true or false"),
        ({"when": {"vllm.version": {"version": "soon"}}}, "bad version specifier 'soon'"),
        ({"when": {"deployment.grace_s": {"lt": 30}}}, "unknown fact 'deployment.grace_s'"),  # not in this table
    ],
)
def test_a_bad_rule_fails_at_load_with_its_id_and_the_bad_name(changes: dict[str, Any], says: str) -> None:
    with pytest.raises(RuleTableError) as caught:
        parse(rule(**changes))
    assert str(caught.value).startswith("rule probe-rule: ") and says in str(caught.value)


def test_deployment_facts_belong_to_the_deployment_table() -> None:
    parse(rule(when={"deployment.grace_s": {"lt": 30}}, message="{deployment.grace_text}"), "deployment_rules")


def test_not_holds_when_its_map_does_not() -> None:
    facts = {"model": {"is_mla": False, "head_dim": 128}, "vllm": {"version": "0.26.3"}}
    assert engine.when_holds(facts, {"not": {"model.is_mla": True}})
    assert not engine.when_holds(facts, {"not": {"model.head_dim": 128, "vllm.version": {"version": ">=0.26"}}})
    assert engine.when_holds(facts, {"not": {"model.head_dim": 128, "vllm.version": {"version": "<0.26"}}})
    assert engine.when_paths({"a.b": 1, "not": {"c.d": 2}, "any": [{"e.f": 3}]}) == ["a.b", "c.d", "e.f"]


def test_every_map_fact_and_family_resolves() -> None:
    schema = load_schema()
    assert schema.find("env.VLLM_USE_V1", "compatibility") is not None
    assert schema.find("env.HF_TOKEN", "compatibility") is None
    assert schema.find("table.fp8_methods.online", "compatibility") is not None
    assert schema.find("table.fp8_methods.online", "deployment_rules") is None


def test_text_variants_are_validated_and_chosen_by_their_fact() -> None:
    variants = {"by": "platform.kind", "rocm": "on ROCm {platform.gfx}", "default": "elsewhere"}
    (loaded,) = engine.parse_rules([rule(fix=variants)], "compatibility", VERSIONS)
    assert engine.render(loaded.fix, {"platform": {"kind": "rocm", "gfx": "gfx942"}}) == "on ROCm gfx942"
    assert engine.render(loaded.fix, {"platform": {"kind": "cuda"}}) == "elsewhere"
    with pytest.raises(RuleTableError, match="rule probe-rule: fix as variants needs"):
        parse(rule(fix={"by": "platform.kind", "rocm": "x"}))
    with pytest.raises(RuleTableError, match="fix.rocm placeholder names the unknown fact 'platform.gfxx'"):
        parse(rule(fix={"by": "platform.kind", "rocm": "{platform.gfxx}", "default": "x"}))
    with pytest.raises(RuleTableError, match="rule texts: shm_fix placeholder names the unknown fact"):
        engine.validate_texts({"shm_fix": "{deployment.shm_gb}"}, "deployment_rules")
