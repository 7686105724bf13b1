"""The task's dataset, from the jsonl files beside this file (no hub): lm-eval calls `load` (custom_dataset)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def read(split: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (HERE / f"{split}.jsonl").read_text().splitlines() if line.strip()]


def load(**_: Any) -> Any:
    import datasets  # lm-eval's own dependency

    return datasets.DatasetDict({split: datasets.Dataset.from_list(read(split)) for split in ("fewshot", "test")})
