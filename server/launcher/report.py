"""Verdicts and the table in human form: `launcher check` and `check --from` as text, and the compatibility
table (data/compatibility.yaml) as the Markdown the README embeds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from .check.verdict import Verdict
    from .deployments.preflight import Report


def _text(text: Any) -> str:
    """A rule's message or fix as one line: a template, or its variants by a fact's value."""
    if not isinstance(text, Mapping):
        return str(text)
    cases = [f"{key}: {value}" for key, value in text.items() if key not in ("by", "default")]
    return f"by {text['by']}: " + "; ".join([*cases, f"otherwise: {text['default']}"])


def _cell(text: Any) -> str:
    return " ".join(_text(text).split()).replace("|", "\\|")


def _where(rule: dict[str, Any]) -> str:
    parts = [", ".join(rule.get("platforms", [])) or "all"]
    if rule.get("vllm"):
        parts.append(f"vLLM {rule['vllm']}")
    return "; ".join(parts)


def markdown_table(table: dict[str, Any]) -> str:
    lines = [
        "| rule | severity | where | what vLLM does | fix | source |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for rule in table["rules"]:
        lines.append(
            f"| `{rule['id']}` | {rule['severity']} | {_cell(_where(rule))} | {_cell(rule['message'])} "
            f"| {_cell(rule['fix'])} | {_cell(rule['source'])} |"
        )
    return "\n".join(lines)


def format_text(verdict: Verdict) -> str:
    """`launcher check` in text: the verdict line, then each finding and its fix."""
    head = "ACCEPTED" if verdict.accepted else "REJECTED"
    model = verdict.model.name if verdict.model else "(arguments refused)"
    lines = [f"{head}: {model} on {verdict.platform.describe()}, vLLM {verdict.vllm_version}"]
    backend = verdict.as_dict()["attention_backend"]
    if backend:
        valid = ", ".join((verdict.facts.get("derived") or {}).get("attention_backend_valid") or [])
        lines.append(f"  attention backend: {backend} (valid, in vLLM's priority order: {valid})")
    for finding in verdict.findings:
        lines.append(f"  {finding.severity} [{finding.rule}] {finding.message}")
        lines.append(f"    fix: {finding.fix}")
    if not verdict.findings:
        lines.append("  no findings")
    return "\n".join(lines)


def format_preflight(report: Report) -> str:
    """`launcher check --from` in text: each workload's verdict with its findings at file:line."""
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


def _flatten(facts: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows = []
    for key, value in facts.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and path != "table.quantization_accepted_for_checkpoint":
            rows += _flatten(value, path + ".")
        else:
            rows.append((path, value))
    return rows


def format_facts(facts: Mapping[str, Any]) -> str:
    """`launcher check --show-facts` in text: every fact path the rules can read, with its value."""
    rows = _flatten(facts)
    width = max(len(path) for path, _ in rows)
    return "\n".join(["facts:", *(f"  {path:<{width}} {value!r}" for path, value in rows)])


def explain_rule(entry: Mapping[str, Any]) -> str:
    """`launcher rules --explain RULE`: where the rule applies, the facts it reads (type and producer), its text."""
    from .check.engine import when_paths
    from .check.schema import load_schema

    table = "deployment_rules" if "at" in entry else "compatibility"
    schema = load_schema()
    where = ", ".join(entry.get("platforms", [])) or "every platform"
    lines = [
        f"{entry['id']} ({entry['severity']}) in data/{table}.yaml",
        f"  applies on   {where}; vLLM {entry.get('vllm') or 'every release'}",
        "  when         " + yaml.safe_dump(entry["when"], default_flow_style=True, width=10_000).strip(),
    ]
    reads = dict.fromkeys(when_paths(entry["when"]))
    for path in reads:
        fact = schema.find(path, table)
        kind = f"{fact.type}{'?' if fact.nullable else ''}" if fact else "undeclared"
        lines.append(f"  reads        {path} ({kind}) from {fact.producer if fact else '?'}")
    lines += [
        f"  message      {_cell(entry['message'])}",
        f"  fix          {_cell(entry['fix'])}",
        f"  source       {_cell(entry['source'])}",
    ]
    return "\n".join(lines)
