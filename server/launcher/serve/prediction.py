"""Predicted vs observed at every `launcher serve` start: the plan, vLLM's own figures, the error, a record.

The supervisor's log pump hands every vLLM output line to `StartReport.feed`. Once vLLM has logged its KV
cache size and its engine is up, the report fills /status (`predicted`, `observed`, `error`, `ignored_flags`), sets
`launcher_prediction_error_ratio{quantity=...}`, logs one warning line when a figure is off by more than 5%
or vLLM replaced a flag, and appends one JSON line to `--record PATH` (for `launcher calibrate`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..check import platforms
from ..check.arguments import ServeArgs
from ..check.config_source import ConfigRequest
from ..check.gather import vllm_env
from ..check.memory import estimate
from ..check.model_facts import load_model
from ..errors import LauncherError
from ..plan.observed import StartObserver, errors, ignored_flags, predicted_of, warning_line
from . import metrics

log = logging.getLogger("launcher.prediction")


class StartReport:
    def __init__(
        self,
        args: ServeArgs,
        predicted: dict[str, Any] | None,
        status: dict[str, Any],
        context: dict[str, Any],
        record: Path | None = None,
    ):
        self.args = args
        self.predicted = predicted
        self.status = status
        self.context = context
        self.record = record
        self.observer = StartObserver()
        self.done = False
        self._lock = threading.Lock()
        status["predicted"] = predicted

    def feed(self, line: str) -> None:
        if self.done:
            return
        self.observer.feed(line)
        if self.observer.finished:
            with self._lock:
                if not self.done:
                    self.done = True
                    self._report()

    def _report(self) -> None:
        observed = self.observer.observed
        error = errors(self.predicted, observed) if self.predicted else {}
        requested = {"quantization": self.args.get("quantization"), "kv-cache-dtype": self.args.get("kv-cache-dtype")}
        ignored = ignored_flags(requested, observed)
        self.status.update(observed=observed.as_dict(), error=error, ignored_flags=ignored)
        for quantity, ratio in error.items():
            metrics.PREDICTION_ERROR.labels(quantity).set(ratio)
        if line := warning_line(error, ignored):
            log.warning("%s", line)
        if self.record is not None:
            entry = {
                **self.context,
                "time": time.time(),
                "predicted": self.predicted,
                "observed": observed.as_dict(),
                "error": error,
                "ignored_flags": ignored,
            }
            try:
                with open(self.record, "a") as handle:
                    handle.write(json.dumps(entry) + "\n")
            except OSError as exc:
                log.warning("cannot append the start record to %s: %s", self.record, exc)


def start_report(
    vllm_args: list[str],
    target: str | None,
    config_folders: list[Path] | None,
    status: dict[str, Any],
    record: Path | None = None,
    redact: Callable[[str], str] = str,
    environ: Mapping[str, str] | None = None,
    release: str | None = None,
) -> StartReport:
    """The report of this start; its prediction is None (and says why in /status) when the plan cannot size it.
    The recorded serve arguments go through `redact` (the front door's redactor: no key reaches the file);
    `environ` is vLLM's environment (its VLLM_* variables size the plan as they size vLLM); `release` is the derived
    release whose parser reads the arguments (its abbreviations spelled out)."""
    args = ServeArgs.parse(vllm_args, release)
    predicted, context = None, {"serve_args": [redact(a) for a in vllm_args], "target": target}
    try:
        model = load_model(args.model or "", config_folders, ConfigRequest.from_args(args))
        platform = platforms.resolve(target)
        plan = estimate(args, model, platform, environ=vllm_env(os.environ if environ is None else environ))
        predicted = predicted_of(plan)
        context.update(
            model=model.name,
            family=str(model.text.get("model_type") or model.config.get("model_type")),
            device=plan.device,
            target=platform.target,
        )
    except (LauncherError, OSError, ValueError, KeyError) as exc:  # serve on, without a prediction
        status["prediction_error"] = str(exc)
    return StartReport(args, predicted, status, context, record)
