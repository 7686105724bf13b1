"""Helm values of the vLLM production stack (vllm-project/production-stack, helm/): servingEngineSpec.modelSpec[].

Read as its template helm/templates/deployment-vllm-multi.yaml renders it: `vllm serve <modelURL>` with the
vllmConfig fields as flags, then extraArgs; requestGPU of requestGPUType (default nvidia.com/gpu); a memory
emptyDir at /dev/shm of shmSize (default 20Gi) only when vllmConfig sets tensorParallelSize; the engine's
startup and liveness probes from servingEngineSpec (the chart's defaults where the values file is silent); no
terminationGracePeriodSeconds (Kubernetes' 30 s).
"""

from __future__ import annotations

from typing import Any

from .located import Doc, Loc, Map, get, loc
from .pods import DEFAULT_GRACE_S, GPU_RESOURCES, labels_from_terms, startup_probe
from .workload import Token, Workload, as_int, size_gib

# vllmConfig key -> the flag the template writes (its spelling).
VLLM_CONFIG_FLAGS = {
    "maxModelLen": "--max-model-len",
    "dtype": "--dtype",
    "tensorParallelSize": "--tensor-parallel-size",
    "maxNumSeqs": "--max-num-seqs",
    "gpuMemoryUtilization": "--gpu_memory_utilization",
    "maxLoras": "--max_loras",
}
# The chart's own servingEngineSpec probes (helm/values.yaml), which apply where a values file sets none.
CHART_PROBES: dict[str, dict[str, Any]] = {
    "startupProbe": {
        "initialDelaySeconds": 15,
        "periodSeconds": 10,
        "failureThreshold": 60,
        "httpGet": {"path": "/health", "port": 8000},
    },
    "livenessProbe": {
        "initialDelaySeconds": 15,
        "failureThreshold": 3,
        "periodSeconds": 10,
        "httpGet": {"path": "/health", "port": 8000},
    },
}
DEFAULT_SHM = "20Gi"


def workloads(doc: Doc, file: str) -> list[Workload]:
    spec = doc.get("servingEngineSpec")
    if not isinstance(spec, dict) or spec.get("enableEngine") is False:
        return []
    probes = {kind: _merge(CHART_PROBES[kind], spec.get(kind)) for kind in CHART_PROBES}
    found = []
    for model in spec.get("modelSpec") or []:
        if isinstance(model, dict) and model.get("enabled") is not False and model.get("modelURL"):
            found.append(_model(model, probes, file, loc(spec, fallback=Loc(file, 0))))
    return found


def _merge(default: dict[str, Any], given: Any) -> Any:
    """Helm's merge of a values file over the chart's values: mappings key by key, anything else replaces."""
    if not isinstance(given, Map):
        return default if given is None else given
    merged = Map({**default, **given})
    merged.file, merged.line, merged.lines, merged.files = given.file, given.line, dict(given.lines), {}
    return merged


def _model(model: Doc, probes: dict[str, Any], file: str, spec_at: Loc) -> Workload:
    at = loc(model, fallback=spec_at)
    argv = [Token(str(model["modelURL"]), loc(model, "modelURL"))]
    config = model["vllmConfig"] if isinstance(model.get("vllmConfig"), dict) else Map()
    if "enableChunkedPrefill" in config:
        flag = "--enable-chunked-prefill" if config["enableChunkedPrefill"] else "--no-enable-chunked-prefill"
        argv.append(Token(flag, loc(config, "enableChunkedPrefill")))
    prefix = "--enable-prefix-caching" if config.get("enablePrefixCaching") else "--no-enable-prefix-caching"
    argv.append(Token(prefix, loc(config, "enablePrefixCaching", fallback=at)))
    for key, flag in VLLM_CONFIG_FLAGS.items():
        if key in config:
            argv += [Token(flag, loc(config, key)), Token(str(config[key]), loc(config, key))]
    extra = config.get("extraArgs") or []
    argv += [Token(str(value), loc(extra, i)) for i, value in enumerate(extra)]
    image = None
    if model.get("repository"):
        image = Token(f"{model['repository']}:{model.get('tag', 'latest')}", loc(model, "repository"))
    workload = Workload(
        file, at, "production-stack modelSpec", str(model.get("name") or "?"), "vllm", argv, image=image
    )
    workload.env = {
        str(e["name"]): Token(str(e["value"]), loc(e, "value"))
        for e in model.get("env") or []
        if isinstance(e, dict) and e.get("name") and e.get("value") is not None
    }
    gpus = as_int(model.get("requestGPU", 0)) or 0
    resource = str(model.get("requestGPUType") or "nvidia.com/gpu")
    workload.gpu_kind = next((kind for pattern, kind in GPU_RESOURCES if pattern.match(resource)), None)
    workload.gpus, workload.gpus_at = gpus, loc(model, "requestGPU", fallback=at)
    if get(model, "raySpec", "enabled"):
        workload.gpus = None  # a KubeRay cluster: the head and its workers hold the GPUs
    if "tensorParallelSize" in config:
        size = model.get("shmSize", DEFAULT_SHM)
        workload.shm_present, workload.shm_gib = True, size_gib(size)
        workload.shm_at = loc(model, "shmSize") if "shmSize" in model else loc(config, "tensorParallelSize")
    else:
        workload.shm_present, workload.shm_at = False, loc(model, "vllmConfig", fallback=at)
    workload.startup = startup_probe(probes, False, spec_at)
    workload.grace_s = DEFAULT_GRACE_S  # the template sets no terminationGracePeriodSeconds
    workload.gpu_labels = labels_from_terms(model.get("nodeSelectorTerms"))
    return workload
