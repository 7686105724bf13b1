"""The check itself: serve arguments + config.json + platform + vLLM version -> findings.

`check()` is `evaluate(gather(...))`: gather.py reads (once), derive.py combines, engine.py judges.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import engine as rules
from . import platforms
from .argument_findings import check_arguments
from .derive import build_facts
from .gather import Inputs, gather
from .model_facts import ModelFacts
from .platforms import Platform
from .versions import resolve_version
from .vllm_inprocess import vllm_findings


@dataclass
class Verdict:
    accepted: bool
    findings: list[rules.Finding]
    effective_args: list[str]
    model: ModelFacts | None  # None when the arguments were refused before the model was read
    platform: Platform
    vllm_version: str
    facts: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "findings": [f.as_dict() for f in self.findings],
            "effective_args": self.effective_args,
            "model": self.model.name if self.model else None,
            "platform": self.platform.describe(),
            "target": self.platform.target,
            "vllm_version": self.vllm_version,
            # class 4: the attention backend vLLM's CUDA platform picks (check/attention_backend.py); None off CUDA,
            # on a refusal, or where the release's attention facts do not cover the inputs
            "attention_backend": (self.facts.get("derived") or {}).get("attention_backend"),
        }


def evaluate(inputs: Inputs) -> Verdict:
    """The verdict on gathered inputs; pure (no file, environment or hardware is read)."""
    facts = build_facts(
        inputs.args, inputs.model, inputs.platform, inputs.vllm, inputs.table, inputs.env, inputs.parsed
    )
    findings = rules.evaluate(facts, inputs.table["parsed_rules"])
    accepted = not any(f.severity == "error" for f in findings)
    return Verdict(accepted, findings, inputs.args.argv(), inputs.model, inputs.platform, inputs.vllm_version, facts)


def check(
    argv: list[str],
    target: str | None = None,
    vllm_version: str | None = None,
    config_folders: list[Path] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict; `environ` replaces this process's environment as the source of VLLM_* variables (a deployment
    file's container env, for `launcher check --from`). The target release's own parser reads argv first (class 1):
    a refusal there is the verdict, before config.json is read."""
    platform = platforms.resolve(target, gpu_count=None)
    version = resolve_version(vllm_version, rules.load_table(), platform.kind)
    argument_findings, namespace = check_arguments(argv, version)
    if any(f.severity == "error" for f in argument_findings):
        return Verdict(False, argument_findings, list(argv), None, platform, version, {})
    verdict = evaluate(
        gather(argv, target, vllm_version, config_folders, environ, namespace=namespace, platform=platform)
    )
    findings = argument_findings + verdict.findings + vllm_findings(list(argv), version, platform.kind)
    accepted = not any(f.severity == "error" for f in findings)
    return replace(
        verdict, accepted=accepted, findings=sorted(findings, key=lambda f: rules.SEVERITIES.index(f.severity))
    )
