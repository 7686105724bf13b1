"""One `vllm bench serve` client that stays up between runs: vLLM's benchmark imported once, one run per input line.

bench/gpu/front_door.py starts `--clients` of these per device call. Each line on stdin is the JSON list of
`vllm bench serve` arguments; the worker runs vLLM's own benchmark with them (vllm.benchmarks.serve.main, which
`vllm bench serve` calls) and answers with one line `LOAD_CLIENT_DONE {...}` on stdout (`{"ok": true}` or
`{"error": "..."}`), vLLM's own output going around it. A run so costs no interpreter start and no import of torch
and vLLM (about 20 s per run on the H200 machine), and the clients of a run start together instead of one import
apart.
"""

from __future__ import annotations

import json
import sys

MARK = "LOAD_CLIENT_DONE "


def answer(body: dict[str, object]) -> None:
    print(MARK + json.dumps(body), flush=True)


def main() -> int:
    try:
        from vllm.benchmarks.serve import add_cli_args
        from vllm.benchmarks.serve import main as run_benchmark
        from vllm.utils.argparse_utils import FlexibleArgumentParser
    except ImportError as exc:
        answer({"error": f"vLLM's benchmark cannot be imported: {exc}"})
        return 3
    parser = FlexibleArgumentParser(prog="vllm bench serve")
    add_cli_args(parser)
    answer({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            run_benchmark(parser.parse_args(json.loads(line)))
        except (Exception, SystemExit) as exc:  # a bad argument exits argparse; either way the run has no result
            answer({"error": f"{type(exc).__name__}: {exc}"})
        else:
            answer({"ok": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())
