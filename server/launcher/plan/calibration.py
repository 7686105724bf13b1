"""`launcher calibrate FILE...`: recorded starts (`launcher serve --record FILE`) as an error table per family.

Each JSON line of a record holds the plan's figures, vLLM's and their relative error; the table gives, per
model family (config.json model_type) and quantity, the number of starts, the mean absolute error and the
largest one, so a vLLM upgrade that moves its accounting shows as drift.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import LauncherError
from .observed import QUANTITIES


def read_records(paths: Iterable[Path]) -> list[dict[str, Any]]:
    records = []
    for path in paths:
        try:
            text = path.read_text()
        except OSError as exc:
            raise LauncherError(f"cannot read {path}: {exc.strerror or exc}") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise LauncherError(
                    f"{path}:{number} is not a JSON line (write it with launcher serve --record)"
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("error"), dict):
                raise LauncherError(f'{path}:{number} has no "error" object: not a launcher start record')
            records.append(record)
    return records


def error_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (family, quantity): starts, mean and largest absolute error, mean signed error (percent)."""
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        family = str(record.get("family") or "unknown")
        for quantity, ratio in record["error"].items():
            if quantity in QUANTITIES and isinstance(ratio, int | float):
                found[(family, quantity)].append(float(ratio) * 100)
    rows = []
    for (family, quantity), values in sorted(found.items()):
        rows.append(
            {
                "family": family,
                "quantity": quantity,
                "starts": len(values),
                "mean_abs_pct": round(sum(abs(v) for v in values) / len(values), 2),
                "max_abs_pct": round(max(abs(v) for v in values), 2),
                "mean_pct": round(sum(values) / len(values), 2),
            }
        )
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no recorded starts with vLLM's figures"
    width = max(len(r["family"]) for r in rows)
    lines = [
        f"{'family':<{width}}  {'quantity':<16} {'starts':>6} {'mean |err|':>11} {'max |err|':>10} {'mean err':>9}"
    ]
    for r in rows:
        lines.append(
            f"{r['family']:<{width}}  {r['quantity']:<16} {r['starts']:>6} {r['mean_abs_pct']:>10.2f}% "
            f"{r['max_abs_pct']:>9.2f}% {r['mean_pct']:>+8.2f}%"
        )
    return "\n".join(lines)


def run(options: Any) -> int:
    rows = error_table(read_records(options.files))
    print(json.dumps(rows, indent=2) if options.format == "json" else format_table(rows))
    return 0
