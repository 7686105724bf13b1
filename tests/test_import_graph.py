"""The package's import graph shows its architecture: no cycles between launcher's modules; check/ imports nothing
from serve/, plan/, deployments/, tools/, the CLI or the reports; and of check/, only the gathering side
(gather.py and the probes it calls) touches the machine, the network or other processes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "server" / "launcher"
# Modules that reach the network, other processes or the hardware.
IO_MODULES = {
    "subprocess",
    "socket",
    "urllib",
    "http",
    "asyncio",
    "threading",
    "multiprocessing",
    "ctypes",
    "aiohttp",
    "uvicorn",
    "fastapi",
    "starlette",
    "psutil",
    "pynvml",
    "huggingface_hub",
    "requests",
    "httpx",
    "shutil",
}
# check/'s side that reads the outside world: config.json, the environment, the probes, the installed vLLM.
GATHERING = {
    "launcher.check.gather",
    "launcher.check.platforms",
    "launcher.check.model_facts",
    "launcher.check.versions",
}
FORBIDDEN_IN_CHECK = (
    "launcher.serve",
    "launcher.plan",
    "launcher.deployments",
    "launcher.tools",
    "launcher.cli",
    "launcher.report",
)


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, lazy: bool = True, root: Path = PACKAGE) -> set[str]:
    """Modules `path` imports (absolute), leaving out `if TYPE_CHECKING:` blocks; `lazy=False`: module level only."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            inner = top and not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import) and (top or lazy):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and (top or lazy):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child, inner)

    visit(tree, True)
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py") if "eval_tasks" not in path.parts}


def graph(lazy: bool = True) -> dict[str, set[str]]:
    return {name: {m for m in imports(path, lazy) if m in MODULES and m != name} for name, path in MODULES.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in edges[node]:
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in edges:
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_one() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("name", sorted(m for m in MODULES if m.startswith("launcher.check")))
def test_check_imports_no_serve_plan_deployments_or_io(name: str) -> None:
    found = imports(MODULES[name])
    assert not [m for m in found if m.startswith(FORBIDDEN_IN_CHECK)], f"{name} imports beyond check/"
    io = {m for m in found if m.split(".")[0] in IO_MODULES}
    if name in GATHERING:  # probes may import their libraries inside the probe, never at import time
        io = {m for m in imports(MODULES[name], lazy=False) if m.split(".")[0] in IO_MODULES}
    assert not io, f"{name} imports {sorted(io)}"
    if name not in GATHERING | {"launcher.check.verdict"}:
        assert "os" not in found, f"{name} reads the environment: only gather.py does"


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "launcher" / "check" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import subprocess\nfrom ..serve import supervisor\n\n\ndef f():\n    import pynvml\n")
    found = imports(bad, root=tmp_path / "launcher")
    assert {"subprocess", "launcher.serve", "launcher.serve.supervisor", "pynvml"} <= found
    assert "pynvml" not in imports(bad, lazy=False, root=tmp_path / "launcher")
