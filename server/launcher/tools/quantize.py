"""`launcher quantize`: a BF16 checkpoint -> a pre-quantized FP8 one that vLLM serves as it is.

The vLLM FP8 guide's recipe: llm-compressor's oneshot with QuantizationModifier(targets="Linear",
scheme="FP8_DYNAMIC", ignore=["lm_head"]) -- FP8 e4m3 weights with per-channel scales, activations quantized per
token at run time, no calibration data -- saved as a compressed-tensors checkpoint `<name>-FP8-Dynamic`.

llm-compressor pins transformers and compressed-tensors versions that conflict with vLLM's, so it lives in its own
virtual environment (`make quantize-env`: .venv-quant) and runs there as quantize_worker.py; this module imports
nothing heavy. It refuses, before loading any weight: a scheme it does not run, a checkpoint that is already
quantized, a model that does not fit in host memory, a directory without weights, an existing output.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import settings
from ..check.config_source import ConfigRequest
from ..check.model_facts import ModelFacts, load_model, locate_model_dir
from ..check.platforms import _cgroup_memory
from ..errors import LauncherError

log = logging.getLogger(__name__)

GIB = 1024**3
# oneshot holds the BF16 weights, their quantized copies and the saved shard at once: about 2.5 x the BF16 size.
MEMORY_FACTOR = 2.5
BF16_BYTES = 2
QUANT_ENV = ".venv-quant"
REPORT = "quantize-report.json"


@dataclass(frozen=True)
class Scheme:
    suffix: str
    summary: str


# Schemes that need no calibration data (FP8 static, W8A8 int8, W4A16 GPTQ do: run llm-compressor with a dataset).
SCHEMES = {
    "FP8_DYNAMIC": Scheme(
        "FP8-Dynamic",
        "fp8 e4m3 weights, per-channel scales; activations quantized per token at run time (no calibration data)",
    ),
}


def _scheme(name: str) -> Scheme:
    scheme = SCHEMES.get(name.upper())
    if scheme is None:
        known = ", ".join(f"{key} ({value.summary})" for key, value in SCHEMES.items())
        raise LauncherError(
            f"--scheme {name} is not one launcher quantize runs; known: {known}. Schemes that need "
            "calibration data (FP8 static, W8A8, W4A16 with GPTQ) are not offered: run llm-compressor "
            "with a dataset for those"
        )
    return scheme


# -- the source checkpoint --------------------------------------------------------------------------------


def worker_config(directory: Path) -> ModelFacts:
    """The config the worker quantizes: transformers' from_pretrained(directory) reads that directory's config.json,
    as it is (no revision, no other config path: quantize takes no --revision or --hf-config-path, its parser
    refuses them), never a Mistral-format params.json, which vLLM's `auto` would prefer beside
    consolidated*.safetensors. The same ConfigRequest the check uses, fixed to what the worker loads."""
    if not (directory / "config.json").is_file():
        raise LauncherError(
            f"{directory} has no config.json: launcher quantize loads the checkpoint with transformers "
            "(from_pretrained reads config.json); a Mistral-format checkpoint (params.json only) is not supported"
        )
    return load_model(str(directory), request=ConfigRequest(str(directory), str(directory), None, "hf"))


def weight_files(directory: Path) -> list[Path]:
    files = sorted(directory.glob("*.safetensors"))
    return files or sorted(directory.glob("pytorch_model*.bin"))


def safetensors_header(path: Path) -> dict[str, Any]:
    """The tensor table of a .safetensors file (name -> dtype, shape, offsets), read without loading a weight."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def tensor_dtypes(directory: Path) -> dict[str, str]:
    """Tensor name -> safetensors dtype (BF16, F8_E4M3, ...) over every shard of a checkpoint."""
    return {
        name: entry["dtype"]
        for path in sorted(directory.glob("*.safetensors"))
        for name, entry in safetensors_header(path).items()
    }


def parameter_count(model: ModelFacts, directory: Path) -> int:
    """Exact from the safetensors headers when the weights are here, else estimated from config.json."""
    shards = sorted(directory.glob("*.safetensors"))
    if shards:
        return sum(math.prod(entry["shape"]) for path in shards for entry in safetensors_header(path).values())
    from ..check.model_size import ExpertSplit, params_per_rank, shape_of

    return int(sum(params_per_rank(shape_of(model), 1, ExpertSplit(), 1).values()))


def host_available_gib(meminfo: Path = Path("/proc/meminfo")) -> float:
    """MemAvailable, clamped to the container's cgroup limit."""
    values = {}
    for line in meminfo.read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) * 1024
    available = values.get("MemAvailable", values.get("MemFree", 0))
    limit, usage = _cgroup_memory()
    if limit is not None:
        available = min(available, max(limit - (usage or 0), 0))
    return available / GIB


def _size(files: list[Path]) -> int:
    return sum(path.stat().st_size for path in files)


def _default_output(model: str, directory: Path, scheme: Scheme) -> Path:
    local = Path(model).expanduser()
    if local.is_dir():
        return local.resolve().parent / f"{local.resolve().name}-{scheme.suffix}"
    return Path.cwd() / f"{model.rstrip('/').split('/')[-1]}-{scheme.suffix}"  # a hub id: like the guide, in cwd


def quant_python() -> str:
    """LAUNCHER_QUANT_PYTHON, else .venv-quant/bin/python (here or in the repository), else this interpreter."""
    if settings.get("LAUNCHER_QUANT_PYTHON"):
        return str(settings.get("LAUNCHER_QUANT_PYTHON"))
    for root in (Path.cwd(), Path(__file__).resolve().parents[3]):
        candidate = root / QUANT_ENV / "bin" / "python"
        if candidate.is_file():
            return str(candidate)
    return sys.executable


def _has_llmcompressor(python: str) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('llmcompressor') is None)"
    try:
        return subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Plan:
    source: Path
    output: Path
    scheme_name: str
    scheme: Scheme
    ignore: list[str]
    model: ModelFacts
    params: int
    needed_gib: float
    available_gib: float


def plan(
    model: str,
    scheme_name: str = "FP8_DYNAMIC",
    ignore: list[str] | None = None,
    output: Path | None = None,
    available_gib: float | None = None,
) -> Plan:
    """Everything that can be refused, refused before a weight is loaded."""
    scheme = _scheme(scheme_name)
    directory = locate_model_dir(model)
    facts = worker_config(directory)
    quant = facts.checkpoint_quantization()
    if quant is not None:
        summary = facts.facts()["checkpoint_quant_summary"]
        raise LauncherError(
            f"{facts.name} is already quantized ({summary}); quantizing it again would stack a "
            "second rounding on the first. Serve it as it is (vLLM reads its quantization_config), "
            "or quantize the BF16 original"
        )
    params = parameter_count(facts, directory)
    needed = params * BF16_BYTES * MEMORY_FACTOR / GIB
    available = host_available_gib() if available_gib is None else available_gib
    if needed > available:
        raise LauncherError(
            f"{facts.name} does not fit in host memory for quantization: {params / 1e9:.1f}B "
            f"parameters x {BF16_BYTES} bytes x {MEMORY_FACTOR} = {needed:.1f} GiB needed, "
            f"{available:.1f} GiB available. Run it on a machine with more memory, or use a "
            "published FP8 checkpoint"
        )
    if not weight_files(directory):
        raise LauncherError(
            f"{directory} has config.json but no weights (*.safetensors or pytorch_model*.bin); "
            "download the whole checkpoint first"
        )
    target = (output or _default_output(model, directory, scheme)).expanduser().resolve()
    if target.exists() and any(target.iterdir()):
        raise LauncherError(f"output {target} already exists and is not empty; remove it or pass --output DIR")
    names = list(ignore) if ignore else ["lm_head"]
    if "lm_head" not in names:
        log.warning("lm_head is not in --ignore: it will be quantized too (the FP8 guide keeps it in BF16)")
    return Plan(directory.resolve(), target, scheme_name.upper(), scheme, names, facts, params, needed, available)


def run(the_plan: Plan, python: str | None = None) -> dict[str, Any]:
    """Run the worker into a temporary folder, move it into place, and write the report."""
    python = python or quant_python()
    if not _has_llmcompressor(python):
        raise LauncherError(
            f"llm-compressor is not installed for {python}: run `make quantize-env` (it creates "
            f"{QUANT_ENV}), or point LAUNCHER_QUANT_PYTHON at a Python that has it"
        )
    output = the_plan.output
    partial = output.parent / f".{output.name}.partial-{os.getpid()}"
    output.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(partial, ignore_errors=True)
    result_file = partial.with_name(partial.name + ".json")
    worker = Path(__file__).with_name("quantize_worker.py")
    command = [
        python,
        "-P",
        str(worker),
        "--model",
        str(the_plan.source),
        "--output",
        str(partial),
        "--scheme",
        the_plan.scheme_name,
        "--result",
        str(result_file),
    ]
    for name in the_plan.ignore:
        command += ["--ignore", name]
    log.info("quantizing %s with %s (%s) in %s", the_plan.source, the_plan.scheme_name, python, output)
    try:
        completed = subprocess.run(command, stdin=subprocess.DEVNULL)
        if completed.returncode != 0:
            raise LauncherError(
                f"llm-compressor failed (exit {completed.returncode}, its output is above); "
                f"nothing was written to {output}"
            )
        result = json.loads(result_file.read_text())
        if output.exists():
            output.rmdir()  # empty: plan() refused a non-empty one
        partial.rename(output)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
        result_file.unlink(missing_ok=True)
    report = build_report(the_plan, result)
    (output / REPORT).write_text(json.dumps(report, indent=2) + "\n")
    for path in output.iterdir():  # safetensors writes 0600; a serving container's non-root user reads it too
        path.chmod(path.stat().st_mode | 0o444)
    return report


def build_report(the_plan: Plan, result: dict[str, Any]) -> dict[str, Any]:
    before = _size(weight_files(the_plan.source))
    after = _size(weight_files(the_plan.output))
    dtypes = tensor_dtypes(the_plan.output)
    weight_dtypes: dict[str, int] = {}
    for name, dtype in dtypes.items():
        if name.endswith(".weight"):
            weight_dtypes[dtype] = weight_dtypes.get(dtype, 0) + 1
    config = json.loads((the_plan.output / "config.json").read_text())
    return {
        "source": str(the_plan.source),
        "output": str(the_plan.output),
        "scheme": the_plan.scheme_name,
        "scheme_summary": the_plan.scheme.summary,
        "ignore": the_plan.ignore,
        "parameters": the_plan.params,
        "layers_quantized": len(result["quantized"]),
        "layers_kept": result["kept"],
        "weight_tensors_by_dtype": weight_dtypes,
        "quant_method": (config.get("quantization_config") or {}).get("quant_method"),
        "size_before_bytes": before,
        "size_after_bytes": after,
        "size_ratio": round(after / before, 3) if before else None,
        "seconds": result["seconds"],
        "source_dtype": result["source_dtype"],
        "versions": result["versions"],
        "python": result["python"],
    }


def format_report(report: dict[str, Any]) -> str:
    kept = report["layers_kept"]
    mib = 1024**2
    tensors = ", ".join(f"{n} {d}" for d, n in sorted(report["weight_tensors_by_dtype"].items()))
    before, after = report["size_before_bytes"] / mib, report["size_after_bytes"] / mib
    return "\n".join(
        [
            f"QUANTIZED: {report['source']} -> {report['output']} ({report['scheme']}, {report['seconds']} s)",
            f"  layers quantized: {report['layers_quantized']} Linear: {report['scheme_summary']}",
            f"  layers kept:      {len(kept)} ({', '.join(kept) or 'none'}) in {report['source_dtype']}",
            f"  weight tensors:   {tensors}",
            f"  size:             {before:.1f} MiB -> {after:.1f} MiB ({report['size_ratio']})",
            f"  checkpoint:       quant_method {report['quant_method']}; report in {Path(report['output']) / REPORT}",
            f"  serve it:         launcher serve -- --model {report['output']}  (no --quantization: vLLM reads "
            "quantization_config)",
        ]
    )


def main(model: str, scheme: str, ignore: list[str] | None, output: Path | None) -> int:
    report = run(plan(model, scheme, ignore, output))
    print(format_report(report))
    return 0
