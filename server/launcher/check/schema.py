"""The fact schema (data/facts.yaml): every fact path a rule may read, its type and its producer."""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from typing import Any

import yaml

from ..resources import data_file

PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list, tuple),
    "map": (dict,),
    "any": (object,),
}


@dataclass(frozen=True)
class Fact:
    path: str
    type: str  # a key of PYTHON_TYPES
    nullable: bool
    producer: str
    tables: tuple[str, ...]  # empty: every table

    def admits(self, value: Any) -> bool:
        """Whether `value` is of this fact's type (a bool is no int, an int is a float)."""
        if value is None:
            return self.nullable
        if isinstance(value, bool) and self.type not in ("bool", "any"):
            return False
        return isinstance(value, PYTHON_TYPES[self.type])


@dataclass(frozen=True)
class FactSchema:
    facts: dict[str, Fact]
    patterns: tuple[tuple[str, Fact], ...]  # (path prefix, fact) for families such as env.VLLM_*

    def find(self, path: str, table: str) -> Fact | None:
        """The declared fact at `path` that `table` may read; a key below a map fact is of type any."""
        fact = self.facts.get(path)
        if fact is None:
            for prefix, family in self.patterns:
                if path.startswith(prefix) and len(path) > len(prefix):
                    fact = Fact(path, family.type, family.nullable, family.producer, family.tables)
        if fact is None:
            parent, _, _ = path.rpartition(".")
            while parent and fact is None:
                holder = self.facts.get(parent)
                if holder is not None and holder.type == "map":
                    fact = Fact(path, "any", True, holder.producer, holder.tables)
                parent, _, _ = parent.rpartition(".")
        if fact is not None and fact.tables and table not in fact.tables:
            return None
        return fact

    def suggest(self, path: str, table: str) -> str:
        """' (did you mean X?)' for a misspelled path, else ''."""
        known = [p for p, f in self.facts.items() if not f.tables or table in f.tables]
        close = difflib.get_close_matches(path, known, n=1)
        return f" (did you mean {close[0]}?)" if close else ""


def parse_schema(data: dict[str, Any]) -> FactSchema:
    facts: dict[str, Fact] = {}
    patterns: list[tuple[str, Fact]] = []
    for group in data["groups"]:
        prefix, producer, tables = group["prefix"], group["producer"], tuple(group.get("tables", ()))
        if "pattern" in group:
            kind = str(group["type"])
            family = Fact(f"{prefix}.{group['pattern']}*", kind.rstrip("?"), kind.endswith("?"), producer, tables)
            patterns.append((f"{prefix}.{group['pattern']}", family))
            continue
        for name, kind in group["facts"].items():
            kind = str(kind)
            if kind.rstrip("?") not in PYTHON_TYPES:
                raise ValueError(f"data/facts.yaml: {prefix}.{name} has unknown type {kind!r}")
            path = f"{prefix}.{name}"
            if path in facts:
                raise ValueError(f"data/facts.yaml declares {path} twice")
            facts[path] = Fact(path, kind.rstrip("?"), kind.endswith("?"), producer, tables)
    return FactSchema(facts, tuple(patterns))


@functools.cache
def load_schema() -> FactSchema:
    with data_file("facts.yaml").open(encoding="utf-8") as handle:
        return parse_schema(yaml.safe_load(handle))
