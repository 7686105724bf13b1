"""`launcher check --from FILE...`: the pre-flight for deployment files.

Finds every workload that starts vLLM (our image, vLLM's image, or a `vllm serve` / `python -m
vllm.entrypoints.openai.api_server` command) in compose files, Kubernetes manifests (kustomize output and
kustomization folders included), KServe InferenceServices, the vLLM production stack's Helm values and our
presets, and checks each: the compatibility table on its arguments, then the deployment rules. One module per
format (compose, kubernetes, kserve, helm, preset); facts.py says what the rules read about a workload,
checks.py runs both tables on it, located.py is the YAML loader that keeps line numbers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import LauncherError
from ..platform import from_target
from . import compose, helm, kubernetes, preset
from .checks import Options, Result, check_workload
from .located import load_all
from .workload import Workload

__all__ = ["Options", "Report", "check_files", "collect", "format_text"]


@dataclass
class Report:
    results: list[Result]
    files: list[str]

    @property
    def accepted(self) -> bool:
        return all(result.accepted for result in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "files": self.files,
                "workloads": [result.as_dict() for result in self.results]}


def _kubectl() -> str | None:
    beside = Path(sys.executable).parent / "kubectl"
    return str(beside) if beside.exists() else shutil.which("kubectl")


def read(path: str) -> tuple[str, str]:
    """(name, YAML text) of a file, of stdin (`-`), or of a kustomization folder rendered by kubectl kustomize."""
    if path == "-":
        return "<stdin>", sys.stdin.read()
    source = Path(path)
    if source.is_dir():
        if not any((source / name).is_file() for name in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
            raise LauncherError(f"{path} is a folder without a kustomization.yaml; pass the YAML files in it")
        kubectl = _kubectl()
        if kubectl is None:
            raise LauncherError(f"{path} is a kustomization and kubectl is not installed: run `kubectl kustomize "
                                f"{path} | launcher check --from -`")
        rendered = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=120)
        if rendered.returncode != 0:
            raise LauncherError(f"kubectl kustomize {path} failed: {rendered.stderr.strip()}")
        return f"{path.rstrip('/')} (kustomize)", rendered.stdout
    try:
        return path, source.read_text(encoding="utf-8")
    except OSError as exc:
        raise LauncherError(f"cannot read {path}: {exc.strerror}") from None


def collect(paths: list[str]) -> tuple[list[Workload], list[str]]:
    """The workloads of the files, in file order; compose files given together are one project."""
    found: list[Workload] = []
    compose_docs = []
    names = []
    for path in paths:
        name, text = read(path)
        names.append(name)
        for doc in load_all(text, name):
            if not isinstance(doc, dict):
                continue
            if compose.is_compose(doc):
                compose_docs.append((doc, name))
            elif "apiVersion" in doc and "kind" in doc:
                found += kubernetes.workloads(doc, name)
            elif "servingEngineSpec" in doc:
                found += helm.workloads(doc, name)
            elif preset.is_preset(doc):
                found += preset.workloads(doc, name)
    found += compose.workloads(compose_docs)
    order = {name: i for i, name in enumerate(names)}
    found.sort(key=lambda w: (order.get(w.file, len(order)), w.at.line))
    return found, names


def check_files(paths: list[str], options: Options) -> Report:
    if options.target:
        from_target(options.target)  # an unknown --target is bad input, not a finding
    workloads, names = collect(paths)
    return Report([check_workload(workload, options) for workload in workloads], names)


def format_text(report: Report) -> str:
    lines = []
    for result in report.results:
        w = result.workload
        head = "ACCEPTED" if result.accepted else "REJECTED"
        where = f"{w.kind} {w.name}" + (f", container {w.container}" if w.container not in ("-", w.name) else "")
        on = f" on {', '.join(result.platforms)}, vLLM {result.vllm_version}" if result.platforms else ""
        lines.append(f"{w.at}: {head}: {where}: {result.model or '?'}{on}")
        for finding in result.findings:
            lines.append(f"  {finding.at}: {finding.severity} [{finding.rule}] {finding.message}")
            lines.append(f"    fix: {finding.fix}")
    if not report.results:
        lines.append(f"no vLLM workload found in {', '.join(report.files)}")
    else:
        rejected = sum(not r.accepted for r in report.results)
        lines.append(f"{len(report.results)} workload(s), {rejected} rejected")
    return "\n".join(lines)
