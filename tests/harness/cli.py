"""`launcher ARGS` in process: launcher.cli.main with stdout and stderr captured, as a CompletedProcess, for the
tests that need neither a fresh interpreter nor another environment (the entry point itself keeps a subprocess
test in tests/test_cli.py)."""

from __future__ import annotations

import contextlib
import io
import subprocess

from launcher.cli import main


def run_cli(*argv: str) -> subprocess.CompletedProcess[str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # --help and argparse's own exits
            code = exit_.code if isinstance(exit_.code, int) else 2
    return subprocess.CompletedProcess(["launcher", *argv], code, out.getvalue(), err.getvalue())
