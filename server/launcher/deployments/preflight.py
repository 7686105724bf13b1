"""`launcher check --from FILE...`: the pre-flight for deployment files.

Finds every workload that starts vLLM (our image, vLLM's image, or a `vllm serve` / `python -m
vllm.entrypoints.openai.api_server` command) in compose files, Kubernetes manifests (kustomize output and
kustomization folders included), KServe InferenceServices, the vLLM production stack's Helm values and our
presets, and checks each: the compatibility table on its arguments, then the deployment rules. One module per
format (compose, manifests, kserve, helm, preset; pods.py reads a PodSpec); facts.py says what the rules read about
a workload, checks.py runs both tables on it, located.py is the YAML loader that keeps line numbers.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..check.platforms import from_target
from ..errors import LauncherError
from . import compose, helm, kserve, manifests, preset
from .checks import Options, Result, check_workload
from .located import get, load_all
from .workload import Workload

__all__ = ["Options", "Report", "check_files", "collect"]


@dataclass
class Report:
    results: list[Result]
    files: list[str]

    @property
    def accepted(self) -> bool:
        return all(result.accepted for result in self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "files": self.files,
            "workloads": [result.as_dict() for result in self.results],
        }


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
            raise LauncherError(
                f"{path} is a kustomization and kubectl is not installed: run `kubectl kustomize "
                f"{path} | launcher check --from -`"
            )
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
                found += kubernetes_workloads(doc, name)
            elif "servingEngineSpec" in doc:
                found += helm.workloads(doc, name)
            elif preset.is_preset(doc):
                found += preset.workloads(doc, name)
    found += compose.workloads(compose_docs)
    order = {name: i for i, name in enumerate(names)}
    found.sort(key=lambda w: (order.get(w.file, len(order)), w.at.line))
    return found, names


def kubernetes_workloads(doc: dict[str, Any], file: str) -> list[Workload]:
    """A Kubernetes object: the items of a `List`, a KServe InferenceService, or a manifest with a PodSpec."""
    if doc.get("kind") == "List":
        items = [item for item in doc.get("items") or [] if isinstance(item, dict)]
        return [w for item in items for w in kubernetes_workloads(item, file)]
    if doc.get("kind") == "InferenceService":
        return kserve.inference_service(doc, str(get(doc, "metadata", "name") or "?"), file)
    return manifests.workloads(doc, file)


def check_files(paths: list[str], options: Options) -> Report:
    if options.target:
        from_target(options.target)  # an unknown --target is bad input, not a finding
    workloads, names = collect(paths)
    return Report([check_workload(workload, options) for workload in workloads], names)
