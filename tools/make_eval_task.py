"""Write the `launcher_arithmetic` lm-eval task's data: small arithmetic questions and word problems.

Deterministic (a fixed seed, fixed templates): rerunning it rewrites the same files byte for byte, and
tests/tools/test_eval.py checks that the committed files are what it writes. No third-party text: the questions come
from the templates below, so the data is ours to ship (CC0-1.0). Exact integer answers in the gsm8k format
("Question: ...\\nAnswer: 7"); the numbers are small on purpose: SmolLM2-135M scores 0 on gsm8k-sized ones, and
a task where the test model scores 0 cannot show what quantization costs. Seven kinds in turn, from easy for it
(copy a number: "has as many as") to hard (multiplication).

    python tools/make_eval_task.py            # writes server/launcher/tools/eval_tasks/launcher_arithmetic/*.jsonl
    python tools/make_eval_task.py --check    # exit 1 when the committed files differ
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "server" / "launcher" / "tools" / "eval_tasks" / "launcher_arithmetic"
SEED = 20260407
TEST_ITEMS = 300
FEWSHOT_ITEMS = 20

NAMES = [
    "Anna",
    "Ben",
    "Chloe",
    "David",
    "Emma",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jack",
    "Kofi",
    "Lena",
    "Mia",
    "Noah",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tara",
    "Umar",
    "Vera",
    "Wei",
    "Yara",
    "Zoe",
]
ITEMS = ["apples", "pencils", "marbles", "stickers", "books", "cookies", "stamps", "shells", "coins", "cards"]

Problem = tuple[str, int]


def _plus(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a, b = r.randint(1, 12), r.randint(1, 12)
    return f"What is {a} plus {b}?", a + b


def _minus(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a = r.randint(5, 20)
    b = r.randint(1, min(a - 1, 9))
    return f"What is {a} minus {b}?", a - b


def _times(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a, b = r.randint(1, 6), r.randint(1, 9)
    return f"What is {a} times {b}?", a * b


def _buys(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a, b = r.randint(1, 6), r.randint(1, 4)
    return f"{name} has {a} {item}. {name} buys {b} more. How many {item} does {name} have now?", a + b


def _gives(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a = r.randint(4, 10)
    b = r.randint(1, 3)
    return f"{name} had {a} {item} and gave {b} to {friend}. How many {item} does {name} have left?", a - b


def _same(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a = r.randint(2, 40)
    question = f"{name} has {a} {item}. {friend} has as many {item} as {name}. How many {item} does {friend} have?"
    return question, a


def _more_than(r: random.Random, name: str, friend: str, item: str) -> Problem:
    a, b = r.randint(2, 12), r.randint(1, 5)
    question = f"{name} has {a} {item}. {friend} has {b} more {item} than {name}. How many {item} does {friend} have?"
    return question, a + b


TEMPLATES: list[Callable[[random.Random, str, str, str], Problem]] = [
    _plus,
    _minus,
    _times,
    _buys,
    _gives,
    _same,
    _more_than,
]


def problems(count: int, r: random.Random, seen: set[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for _ in range(100 * count):
        if len(rows) == count:
            break
        template = TEMPLATES[len(rows) % len(TEMPLATES)]
        name, friend = r.sample(NAMES, 2)
        question, answer = template(r, name, friend, r.choice(ITEMS))
        if question in seen:
            continue
        seen.add(question)
        rows.append({"id": len(rows), "question": question, "answer": str(answer), "kind": template.__name__[1:]})
    if len(rows) < count:
        raise SystemExit(f"only {len(rows)} distinct questions of {count}: widen the templates' number ranges")
    return rows


def render() -> dict[str, str]:
    r = random.Random(SEED)
    seen: set[str] = set()
    fewshot = problems(FEWSHOT_ITEMS, r, seen)
    test = problems(TEST_ITEMS, r, seen)
    return {
        name: "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        for name, rows in (("fewshot.jsonl", fewshot), ("test.jsonl", test))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    options = parser.parse_args()
    stale = []
    for name, text in render().items():
        path = OUT / name
        if options.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path} ({text.count(chr(10))} items)")
    if stale:
        print(f"stale: {', '.join(stale)}; run python tools/make_eval_task.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
