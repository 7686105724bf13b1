"""`launcher eval`: accuracy of a running OpenAI endpoint with lm-evaluation-harness, and BF16 vs FP8 recovery.

lm-eval's `local-completions` model sends the task's prompts to URL/v1/completions (add_bos_token=True, as the
vLLM FP8 guide evaluates), greedy. The default task, launcher_arithmetic, ships in eval_tasks/ with its data, so
it runs with no dataset hub; `--tasks gsm8k` (5-shot, the guide's) needs the hub. `--compare URL2` evaluates a
second endpoint on the same items and prints its score over the first one's: the recovery ratio.
lm-eval is imported only here (`pip install 'vllm-launch[eval]'`; make install does).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ..errors import LauncherError

log = logging.getLogger(__name__)

TASKS_DIR = Path(__file__).resolve().parent / "eval_tasks"
DEFAULT_TASKS = ["launcher_arithmetic"]


def server_root(url: str) -> str:
    """http://host:port from http://host:port, .../v1 or .../v1/completions."""
    root = url.rstrip("/")
    for suffix in ("/v1/completions", "/v1/chat/completions", "/v1"):
        root = root.removesuffix(suffix)
    if not root.startswith(("http://", "https://")):
        raise LauncherError(f"--base-url {url} is not an http(s) URL; give e.g. http://127.0.0.1:8000")
    return root


def _get_json(url: str, api_key: str | None, timeout: float = 10) -> Any:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        return json.loads(response.read())


def served_models(root: str, api_key: str | None) -> list[str]:
    """The model names the endpoint serves; a LauncherError that says why when it cannot be asked."""
    try:
        listing = _get_json(f"{root}/v1/models", api_key)
    except urllib.error.HTTPError as error:
        if error.code in (401, 403):
            raise LauncherError(
                f"{root} refused the API key ({error.code}); pass --api-key (or set VLLM_API_KEY)"
            ) from None
        raise LauncherError(f"{root}/v1/models answered {error.code}; is it an OpenAI-compatible server?") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise LauncherError(
            f"no OpenAI server answers at {root} ({reason}); start one (make run) or fix --base-url"
        ) from None
    return [entry.get("id") for entry in listing.get("data", [])]


def tokenizer_for(root: str, model: str, requested: str | None, api_key: str | None = None) -> str | None:
    """A local tokenizer directory: --tokenizer, the model name if it is a directory, else the model path that
    the launcher's /status reports (it needs the key when one is set); None (plain-text prompts) when there is
    none."""
    if requested:
        return None if requested.lower() == "none" else requested
    if Path(model).is_dir():
        return model
    try:
        status = _get_json(f"{root}/status", api_key, timeout=5)
    except (OSError, ValueError):
        status = {}
    args = (status.get("effective_args") or []) if isinstance(status, dict) else []
    for flag, value in zip(args, args[1:], strict=False):
        if flag == "--model" and Path(value).is_dir():
            return value
    log.info("no local tokenizer for %s: prompts go as text, add_bos_token has no effect (pass --tokenizer DIR)", model)
    return None


def model_args(
    root: str, model: str, api_key: str | None, tokenizer: str | None, num_concurrent: int
) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model": model,
        "base_url": f"{root}/v1/completions",
        "num_concurrent": num_concurrent,
        "max_retries": 3,
        "timeout": 600,
        "add_bos_token": True,
        "tokenizer_backend": "huggingface" if tokenizer else None,
        "tokenized_requests": bool(tokenizer),
        "header": {"Authorization": f"Bearer {api_key}"} if api_key else {},
    }
    if tokenizer:
        args["tokenizer"] = tokenizer
    return args


def evaluate(
    root: str,
    model: str,
    tasks: list[str],
    limit: int | None,
    api_key: str | None,
    tokenizer: str | None,
    num_concurrent: int = 2,
    num_fewshot: int | None = None,
) -> dict[str, Any]:
    """One lm-eval run against one endpoint; lm-eval's results dict, trimmed to what is JSON."""
    models = served_models(root, api_key)
    if model not in models:
        raise LauncherError(
            f"{root} does not serve a model named {model}; it serves: {', '.join(models) or 'none'} "
            "(--model is the served model name)"
        )
    try:
        from lm_eval import simple_evaluate
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise LauncherError("lm-eval is not installed: pip install 'vllm-launch[eval]' (make install does)") from None
    started = time.monotonic()
    try:
        results = simple_evaluate(
            model="local-completions",
            model_args=model_args(root, model, api_key, tokenizer, num_concurrent),
            tasks=tasks,
            num_fewshot=num_fewshot,
            limit=limit,
            log_samples=False,
            task_manager=TaskManager(include_path=str(TASKS_DIR)),
        )
    except Exception as exc:  # lm-eval's own errors (unknown task, dataset download): one line, not a traceback
        detail = textwrap.shorten(f"{type(exc).__name__}: {exc}", 300)
        raise LauncherError(
            f"lm-eval stopped on --tasks {' '.join(tasks)}: {detail}. Tasks with a hub dataset "
            "(gsm8k, ...) need the hub; launcher_arithmetic ships with the launcher"
        ) from None
    if results is None:
        raise LauncherError("lm-eval returned no results")
    keep = ("results", "n-samples", "higher_is_better", "versions", "n-shot")
    trimmed = {key: results[key] for key in keep if key in results}
    seconds = round(time.monotonic() - started, 1)
    trimmed.update(url=root, model=model, tokenizer=tokenizer, limit=limit, seconds=seconds)
    return json.loads(json.dumps(trimmed, default=str))


def _is_score(key: str, value: Any) -> bool:
    return "_stderr" not in key and key not in ("alias", "sample_len") and isinstance(value, int | float)


def scores(run: dict[str, Any]) -> dict[str, float]:
    """`task/metric,filter` -> value, the scores only (no stderr, alias, sample count)."""
    return {
        f"{task}/{key}": float(value)
        for task, metrics in run["results"].items()
        for key, value in metrics.items()
        if _is_score(key, value)
    }


def recovery(base: dict[str, Any], other: dict[str, Any]) -> dict[str, float | None]:
    """other / base per metric: 1.0 = the same accuracy; None where the base scored 0."""
    ours, theirs = scores(base), scores(other)
    return {key: (round(theirs[key] / value, 4) if value else None) for key, value in ours.items() if key in theirs}


def format_scores(run: dict[str, Any]) -> str:
    lines = [f"{run['model']} at {run['url']} ({run['seconds']} s):"]
    for task, metrics in run["results"].items():
        count = (run.get("n-samples") or {}).get(task, {}).get("effective")
        for key, value in metrics.items():
            if not _is_score(key, value):
                continue
            metric, _, filter_name = key.partition(",")
            stderr = metrics.get(f"{metric}_stderr,{filter_name}")
            spread = f" +/- {stderr:.4f}" if isinstance(stderr, int | float) and not math.isnan(stderr) else ""
            lines.append(f"  {task:<24} {metric:<14} {filter_name or '-':<16} {value:.4f}{spread}  (n={count})")
    return "\n".join(lines)


def format_recovery(ratios: dict[str, float | None]) -> str:
    lines = ["recovery (compare / base):"]
    for key, ratio in ratios.items():
        lines.append(f"  {key:<56} {'n/a (base scored 0)' if ratio is None else f'{ratio:.4f}'}")
    return "\n".join(lines)


def main(options: argparse.Namespace) -> int:
    tasks = options.tasks or DEFAULT_TASKS
    root = server_root(options.base_url)
    tokenizer = tokenizer_for(root, options.model, options.tokenizer, options.api_key)
    report: dict[str, Any] = {"tasks": tasks}
    report["base"] = evaluate(
        root,
        options.model,
        tasks,
        options.limit,
        options.api_key,
        tokenizer,
        options.num_concurrent,
        options.num_fewshot,
    )
    print(format_scores(report["base"]))
    if options.compare:
        other_root = server_root(options.compare)
        other_model = options.compare_model or options.model
        other_tokenizer = tokenizer_for(other_root, other_model, options.tokenizer, options.api_key) or tokenizer
        report["compare"] = evaluate(
            other_root,
            other_model,
            tasks,
            options.limit,
            options.api_key,
            other_tokenizer,
            options.num_concurrent,
            options.num_fewshot,
        )
        report["recovery"] = recovery(report["base"], report["compare"])
        print(format_scores(report["compare"]))
        print(format_recovery(report["recovery"]))
    output = options.output or Path(f"eval-{Path(options.model).name}.json")
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results: {output}")
    return 0
