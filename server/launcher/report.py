"""Verdicts and the table in human form: `launcher check` and `check --from` as text, and the compatibility
table (data/compatibility.yaml) as the Markdown the README embeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .check.verdict import Verdict
    from .deployments.preflight import Report


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


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
