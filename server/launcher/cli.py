"""`launcher`: check | serve | plan | calibrate | quantize | eval | rules.

Exit 0 accepted (or done), 2 rejected or bad input; never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from . import settings
from .check.verdict import check
from .errors import LauncherError
from .redact import Redactor
from .report import format_facts, format_text

EXIT_OK = 0
EXIT_REJECTED = 2

log = logging.getLogger("launcher")


class _Parser(argparse.ArgumentParser):
    """argparse that raises LauncherError instead of printing usage and exiting with 2 itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise LauncherError(f"{message} (see launcher {self.prog.split()[-1]} --help)")


def _add_check_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", help="platform to check for, e.g. cuda:h100, rocm:mi300x, cpu:avx2 (default: detect this machine)"
    )
    parser.add_argument(
        "--vllm-version",
        help="vLLM release to check against (default: the installed vLLM, else the version pinned in our images)",
    )
    parser.add_argument(
        "--model-configs",
        action="append",
        type=Path,
        default=[],
        help="folder of <org>__<name>/config.json files to read configs from (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="launcher", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    check_parser = commands.add_parser("check", help="check vLLM serve arguments without starting vLLM")
    _add_check_options(check_parser)
    check_parser.add_argument("--format", choices=("text", "json"), default="text")
    check_parser.add_argument(
        "--show-facts", action="store_true", help='also print every fact the rules read (JSON: a "facts" key)'
    )
    check_parser.add_argument(
        "--from",
        dest="from_files",
        nargs="+",
        action="extend",
        metavar="FILE",
        help="check every vLLM workload in these compose files, Kubernetes manifests "
        "(a kustomization folder, - for stdin), KServe InferenceServices, production-stack "
        "Helm values or presets, instead of serve arguments (docs/preflight.md)",
    )
    check_parser.add_argument("vllm_args", nargs=argparse.REMAINDER, help="-- then vLLM serve arguments")

    serve_parser = commands.add_parser("serve", help="check, then start vLLM behind the front door")
    _add_check_options(serve_parser)
    serve_parser.add_argument("--host", default=settings.get("LAUNCHER_HOST"))
    serve_parser.add_argument("--port", type=int, default=settings.get("LAUNCHER_PORT"))
    serve_parser.add_argument(
        "--startup-timeout",
        type=float,
        default=settings.get("LAUNCHER_STARTUP_TIMEOUT"),
        help="seconds vLLM may take to answer its first generation",
    )
    serve_parser.add_argument(
        "--drain-timeout",
        type=float,
        default=settings.get("LAUNCHER_DRAIN_TIMEOUT"),
        help="seconds in-flight requests get to finish after SIGTERM",
    )
    serve_parser.add_argument("--preset", help="a file in configs/presets/ (name without .yaml)")
    serve_parser.add_argument(
        "--auto",
        action="store_true",
        help="pick the most accurate configuration (precision, KV dtype, TP) that passes the "
        "check and fits, as `launcher plan --profiles` ranks them, and start that",
    )
    serve_parser.add_argument(
        "--skip-check", action="store_true", help="start vLLM even when the check rejects (findings still logged)"
    )
    serve_parser.add_argument(
        "--record",
        type=Path,
        metavar="PATH",
        help="append one JSON line per start: the plan's figures, vLLM's, the error",
    )
    serve_parser.add_argument("vllm_args", nargs=argparse.REMAINDER)

    calibrate_parser = commands.add_parser(
        "calibrate", help="the plan's error per model family, from recorded starts (launcher serve --record)"
    )
    calibrate_parser.add_argument("files", nargs="+", type=Path, metavar="FILE")
    calibrate_parser.add_argument("--format", choices=("text", "json"), default="text")

    plan_parser = commands.add_parser("plan", help="will it fit: weights, KV cache and sequences per GPU")
    _add_check_options(plan_parser)
    plan_parser.add_argument(
        "--gpus",
        type=int,
        help="GPUs available for a higher tensor parallel size and --profiles (default: the detected count, else 8)",
    )
    plan_parser.add_argument(
        "--memory-gib",
        type=float,
        help="memory of one GPU (or of the CPU's NUMA node 0) in "
        "GiB, instead of the platform table's or the detected one",
    )
    plan_parser.add_argument(
        "--profiles",
        action="store_true",
        help="every precision x KV cache dtype x tensor parallel size, checked and ranked",
    )
    plan_parser.add_argument(
        "--min-sequences",
        type=int,
        default=4,
        help="--max-model-len sequences the best profile must hold at once (default 4)",
    )
    plan_parser.add_argument("--format", choices=("text", "json"), default="text")
    plan_parser.add_argument("vllm_args", nargs=argparse.REMAINDER, help="-- then vLLM serve arguments")

    quantize_parser = commands.add_parser(
        "quantize", help="BF16 checkpoint -> FP8 checkpoint with llm-compressor (docs/quantize.md)"
    )
    quantize_parser.add_argument("model", help="a local Hugging Face checkpoint directory (or a cached hub id)")
    quantize_parser.add_argument(
        "--scheme",
        default="FP8_DYNAMIC",
        help="FP8_DYNAMIC (default): per-channel FP8 weights, dynamic per-token activations, no calibration data",
    )
    quantize_parser.add_argument(
        "--ignore",
        nargs="+",
        action="extend",
        metavar="MODULE",
        help="modules to keep unquantized, names or re: patterns (default: lm_head)",
    )
    quantize_parser.add_argument("--output", type=Path, help="default: <name>-FP8-Dynamic next to the model")

    eval_parser = commands.add_parser(
        "eval", help="accuracy of a running endpoint with lm-evaluation-harness (docs/quantize.md)"
    )
    eval_parser.add_argument("--base-url", required=True, help="the server, e.g. http://127.0.0.1:8000")
    eval_parser.add_argument("--model", required=True, help="the served model name")
    eval_parser.add_argument(
        "--tasks",
        nargs="+",
        action="extend",
        metavar="TASK",
        help="lm-eval tasks (default: launcher_arithmetic, shipped; gsm8k needs the hub)",
    )
    eval_parser.add_argument("--limit", type=int, help="items per task (default: all)")
    eval_parser.add_argument("--num-fewshot", type=int, help="override the tasks' few-shot count")
    eval_parser.add_argument(
        "--api-key",
        default=os.environ.get("VLLM_API_KEY") or os.environ.get("OPENAI_API_KEY"),
        help="bearer key of the endpoint(s) (default: VLLM_API_KEY, else OPENAI_API_KEY)",
    )
    eval_parser.add_argument(
        "--tokenizer",
        help="local tokenizer for add_bos_token and length checks (default: "
        "the model's directory, read from the launcher's /status; 'none' sends plain text)",
    )
    eval_parser.add_argument("--num-concurrent", type=int, default=2, help="requests in flight (default 2)")
    eval_parser.add_argument(
        "--compare",
        metavar="URL",
        help="a second endpoint (e.g. FP8 against BF16): prints its score / the first one's, the recovery ratio",
    )
    eval_parser.add_argument("--compare-model", help="served model name at --compare (default: --model)")
    eval_parser.add_argument("--output", type=Path, help="JSON results (default: eval-<model>.json)")

    rules_parser = commands.add_parser("rules", help="print the compatibility table")
    rules_parser.add_argument("--format", choices=("markdown", "json"), default="markdown")
    rules_parser.add_argument(
        "--explain", metavar="RULE", help="one rule: where it applies, the facts it reads (type, producer), its text"
    )
    return parser


def _vllm_args(raw: list[str]) -> list[str]:
    return raw[1:] if raw[:1] == ["--"] else raw


def run_check(options: argparse.Namespace) -> int:
    if options.from_files:
        return run_preflight(options)
    vllm_args = _vllm_args(options.vllm_args)
    redactor = Redactor.for_process(vllm_args)
    try:
        verdict = check(vllm_args, options.target, options.vllm_version, options.model_configs)
    except LauncherError as exc:
        if options.format != "json":
            raise
        # The contract: JSON on stdout for every outcome; bad input is a finding too.
        finding = {
            "rule": "bad-input",
            "severity": "error",
            "message": str(exc),
            "fix": "correct the input as the message says",
            "source": "launcher",
        }
        print(json.dumps(redactor.data({"accepted": False, "findings": [finding]}), indent=2))
        print(redactor.text(f"error: {exc}"), file=sys.stderr)
        return EXIT_REJECTED
    if options.format == "json":
        shown = verdict.as_dict() | ({"facts": verdict.facts} if options.show_facts else {})
        print(json.dumps(redactor.data(shown), indent=2, default=str))
    else:
        print(redactor.text(format_text(verdict)))
        if options.show_facts:
            print(redactor.text(format_facts(verdict.facts)))
    return EXIT_OK if verdict.accepted else EXIT_REJECTED


def run_preflight(options: argparse.Namespace) -> int:
    from .deployments.preflight import Options, check_files
    from .report import format_preflight as format_report

    if _vllm_args(options.vllm_args):
        raise LauncherError("give either --from FILE... or -- vLLM serve arguments, not both")
    report = check_files(options.from_files, Options(options.target, options.vllm_version, options.model_configs))
    print(json.dumps(report.as_dict(), indent=2) if options.format == "json" else format_report(report))
    return EXIT_OK if report.accepted else EXIT_REJECTED


def run_plan(options: argparse.Namespace) -> int:
    from .plan import planner

    return planner.run(options, _vllm_args(options.vllm_args))


def run_rules(options: argparse.Namespace) -> int:
    from .check.engine import load_table
    from .report import explain_rule, markdown_table

    table = load_table()
    if options.explain:
        entry = _rule_entry(table, options.explain)
        print(json.dumps(entry, indent=2) if options.format == "json" else explain_rule(entry))
    elif options.format == "json":
        print(json.dumps(table["rules"], indent=2))
    else:
        print(markdown_table(table))
    return EXIT_OK


def _rule_entry(table: dict, rule_id: str) -> dict:
    import difflib

    from .deployments.facts import deployment_table

    entries = {entry["id"]: entry for entry in [*table["rules"], *deployment_table()["rules"]]}
    if rule_id not in entries:
        close = difflib.get_close_matches(rule_id, entries, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise LauncherError(f"no rule {rule_id!r}; {hint}`launcher rules` lists them")
    return entries[rule_id]


def run_quantize(options: argparse.Namespace) -> int:
    from .tools import quantize

    return quantize.main(options.model, options.scheme, options.ignore, options.output)


def run_eval(options: argparse.Namespace) -> int:
    from .tools import evaluation

    return evaluation.main(options)


def run_calibrate(options: argparse.Namespace) -> int:
    from .plan import calibration

    return calibration.run(options)


def run_serve(options: argparse.Namespace) -> int:
    from .serve.supervisor import serve

    return serve(options, _vllm_args(options.vllm_args))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        options = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if options.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        handler = {
            "check": run_check,
            "serve": run_serve,
            "plan": run_plan,
            "rules": run_rules,
            "quantize": run_quantize,
            "eval": run_eval,
            "calibrate": run_calibrate,
        }[options.command]
        return handler(options)
    except LauncherError as exc:
        print(f"error: {Redactor.for_process(argv).text(str(exc))}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the contract: never a traceback; the debug flag shows it
        if settings.get("LAUNCHER_DEBUG"):
            raise
        detail = textwrap.shorten(Redactor.for_process(argv).text(f"{type(exc).__name__}: {exc}"), 300)
        print(
            f"error: internal error ({detail}); rerun with LAUNCHER_DEBUG=1 for the traceback and report it",
            file=sys.stderr,
        )
        return EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
