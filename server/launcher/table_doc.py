"""The compatibility table in human form, generated from configs/compatibility.yaml (the README embeds it)."""

from __future__ import annotations

from typing import Any


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
