"""YAML with line numbers: mappings, lists and strings remember where they stand in the file.

PyYAML's composer knows each node's position; these constructors keep it on the values they build, so a finding
can point at `deploy.yaml:42` instead of "somewhere in the Deployment". Merge keys (`<<: *anchor`) resolve as
usual, and the merged values keep the anchor's lines: where the value is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import LauncherError


class Text(str):
    """A YAML string and where it stands: its file, first and last line (1-based)."""

    file: str = ""
    line: int = 0
    end_line: int = 0


# A YAML mapping as the formats read it: a Map from load_all, or a plain dict (a test's, kubectl's JSON).
Doc = dict[Any, Any]


class Map(dict[Any, Any]):
    """A YAML mapping; `lines[key]` is the line of each key, `line` the mapping's own."""

    file: str = ""
    line: int = 0
    lines: dict[Any, int]
    files: dict[Any, str]  # keys merged in from another file (compose overrides)

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class Seq(list[Any]):
    """A YAML sequence; `lines[i]` is the line of item i."""

    file: str = ""
    line: int = 0
    lines: list[int]

    def line_of(self, index: int) -> int:
        return self.lines[index] if 0 <= index < len(self.lines) else self.line


class _Loader(yaml.SafeLoader):
    file = ""


def _map(loader: _Loader, node: yaml.MappingNode) -> Map:
    loader.flatten_mapping(node)
    result = Map()
    result.file, result.line, result.lines, result.files = loader.file, node.start_mark.line + 1, {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _seq(loader: _Loader, node: yaml.SequenceNode) -> Seq:
    result = Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.file, result.line = loader.file, node.start_mark.line + 1
    result.lines = [child.start_mark.line + 1 for child in node.value]
    return result


def _str(loader: _Loader, node: yaml.ScalarNode) -> Text:
    result = Text(loader.construct_scalar(node))
    result.file, result.line, result.end_line = loader.file, node.start_mark.line + 1, node.end_mark.line + 1
    return result


def _tagged(loader: _Loader, _suffix: str, node: yaml.Node) -> Any:
    """Application tags (`!Ref`, `!reference`): read the value under the tag, as plain YAML."""
    if isinstance(node, yaml.MappingNode):
        return _map(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return _seq(loader, node)
    assert isinstance(node, yaml.ScalarNode)  # the third kind of node
    return _str(loader, node)


_Loader.add_constructor("tag:yaml.org,2002:map", _map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _seq)
_Loader.add_constructor("tag:yaml.org,2002:str", _str)
_Loader.add_multi_constructor("!", _tagged)


_SOURCES: dict[str, list[str]] = {}


def source_lines(name: str) -> list[str]:
    """The lines of a text load_all read (kustomize output and stdin have no file to reopen)."""
    return _SOURCES.get(name, [])


def load_all(text: str, name: str) -> Iterator[Any]:
    """Every document of a (multi-document) YAML text; LauncherError with file:line when it is not YAML."""
    _SOURCES[name] = text.splitlines()
    loader = _Loader(text)
    loader.file = name
    try:
        while loader.check_data():
            yield loader.get_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{name}:{mark.line + 1}" if mark else name
        raise LauncherError(f"{where}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise LauncherError(f"{name}: not valid YAML ({exc})") from None
    finally:
        loader.dispose()


@dataclass(frozen=True)
class Loc:
    """file:line of a value."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def loc(holder: Any, key: Any = None, fallback: Loc | None = None) -> Loc:
    """Where `holder[key]` (or, without a key, the holder itself) is written; `fallback` when unknown."""
    file = getattr(holder, "file", "")
    if not file:
        return fallback or Loc("", 0)
    if key is not None and isinstance(holder, Map):
        return Loc(holder.files.get(key, file), holder.line_of(key))
    if key is not None and isinstance(holder, Seq):
        return Loc(file, holder.line_of(key))
    return Loc(file, getattr(holder, "line", 0))


def get(holder: Any, *path: Any) -> Any:
    """holder[a][b]... or None when a step is missing or not a container."""
    value = holder
    for step in path:
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value):
            value = value[step]
        else:
            return None
    return value
