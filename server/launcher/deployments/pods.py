"""The PodSpec as vLLM sees it: one container's command, environment, GPUs, /dev/shm, probes and grace
period, shared by the Kubernetes manifests, KServe and the production stack's Helm values.

A container is a workload when it runs our image, vLLM's image, or a command that starts vLLM. What the kubelet
does by default is applied: terminationGracePeriodSeconds 30, probe period 10 s and failureThreshold 3, no
/dev/shm beyond the runtime's 64 MiB.
"""

from __future__ import annotations

import re
from typing import Any

from .located import Doc, Loc, get, loc
from .workload import (
    Probe,
    Token,
    Workload,
    as_int,
    find_invocation,
    image_entrypoint,
    size_gib,
    tokens_of,
)

# Device-plugin resources and the platform they give; MIG slices count as GPUs (vLLM sees one device each).
GPU_RESOURCES = (
    (re.compile(r"^nvidia\.com/(gpu|mig-.+)$"), "cuda"),
    (re.compile(r"^amd\.com/gpu$"), "rocm"),
)
# Node labels that name the GPU product: NVIDIA GPU feature discovery, GKE, Karpenter, AMD's node labeller.
GPU_LABELS = {
    "nvidia.com/gpu.product": "cuda",
    "cloud.google.com/gke-accelerator": "cuda",
    "karpenter.k8s.aws/instance-gpu-name": "cuda",
    "amd.com/gpu.product-name": "rocm",
    "beta.amd.com/gpu.product-name": "rocm",
}
DEFAULT_GRACE_S = 30  # PodSpec.terminationGracePeriodSeconds
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "failureThreshold": 3}
# The launcher's routes that answer while vLLM loads (launcher/serve/front_door.py); any other path waits for vLLM.
LAUNCHER_LIVE_PATHS = ("/health",)


def pod_workloads(pod: Doc, kind: str, name: str, file: str) -> list[Workload]:
    found = []
    for container in pod.get("containers") or []:
        if isinstance(container, dict):
            workload = container_workload(container, pod, kind, name, file)
            if workload:
                found.append(workload)
    return found


def container_workload(container: Doc, pod: Doc, kind: str, name: str, file: str) -> Workload | None:
    """The container as a workload, or None when it starts neither vLLM nor the launcher."""
    at = loc(container, fallback=Loc(file, 0))
    env = env_of(container.get("env"))
    image = Token(str(container["image"]), loc(container, "image")) if container.get("image") else None
    explicit = _expand(tokens_of(container.get("command"), loc(container, "command")), env)
    args = _expand(tokens_of(container.get("args"), loc(container, "args")), env)
    invocation = find_invocation((explicit or image_entrypoint(image)) + args)
    if invocation is None:
        return None
    workload = Workload(
        file,
        at,
        kind,
        name,
        str(container.get("name") or "?"),
        invocation.argv,
        runs_launcher=invocation.program == "launcher",
        launcher_argv=invocation.launcher_argv,
        env=env,
        image=image,
    )
    apply_pod(workload, container, pod)
    return workload


def apply_pod(workload: Workload, container: Doc, pod: Doc) -> None:
    """GPUs, /dev/shm, probes, grace period and GPU node labels of `container` in `pod`."""
    workload.gpu_kind, workload.gpus, workload.gpus_at = gpus_of(container.get("resources"), loc(container))
    workload.shm_present, workload.shm_gib, workload.shm_at = _shm(container, pod)
    workload.startup = startup_probe(container, workload.runs_launcher, loc(container))
    grace = pod.get("terminationGracePeriodSeconds")
    workload.grace_s = float(grace) if isinstance(grace, int | float) else DEFAULT_GRACE_S
    workload.grace_at = loc(pod, "terminationGracePeriodSeconds") if grace is not None else None
    workload.gpu_labels = gpu_labels(pod)


def env_of(entries: Any) -> dict[str, Token]:
    """Container env with literal values (valueFrom entries are unknown here and left out)."""
    env = {}
    for entry in entries or []:
        if isinstance(entry, dict) and entry.get("name") and "value" in entry and entry["value"] is not None:
            env[str(entry["name"])] = Token(str(entry["value"]), loc(entry, "value"))
    return env


def _expand(tokens: list[Token], env: dict[str, Token]) -> list[Token]:
    """Kubernetes' $(VAR) in command and args, from the container's literal env; $$(VAR) stays $(VAR)."""

    def one(text: str) -> str:
        return re.sub(
            r"\$\$|\$\((\w+)\)",
            lambda m: "$" if m.group(0) == "$$" else env[m.group(1)].text if m.group(1) in env else m.group(0),
            text,
        )

    return [Token(one(t.text), t.at, t.source) for t in tokens]


def gpus_of(resources: Any, fallback: Loc) -> tuple[str | None, int, Loc]:
    """(platform kind, count, where) of the GPU resources; limits win over requests, as the scheduler reads."""
    for section in ("limits", "requests"):
        block = get(resources, section)
        if not isinstance(block, dict):
            continue
        for key, value in block.items():
            for pattern, kind in GPU_RESOURCES:
                if pattern.match(str(key)):
                    return kind, as_int(value) or 0, loc(block, key)
    return None, 0, loc(resources, fallback=fallback) if resources else fallback


def _shm(container: Doc, pod: Doc) -> tuple[bool, float | None, Loc]:
    if pod.get("hostIPC") is True:
        return True, None, loc(pod, "hostIPC")
    volumes = {str(v.get("name")): v for v in pod.get("volumes") or [] if isinstance(v, dict)}
    for mount in container.get("volumeMounts") or []:
        if isinstance(mount, dict) and str(mount.get("mountPath", "")).rstrip("/") == "/dev/shm":
            volume = volumes.get(str(mount.get("name")))
            limit = get(volume, "emptyDir", "sizeLimit")
            if limit is not None:
                return True, size_gib(limit), loc(get(volume, "emptyDir"), "sizeLimit")
            return True, None, loc(volume, fallback=loc(mount)) if volume else loc(mount)
    return False, None, loc(container)


def probe_window(probe: Doc) -> float:
    value = {key: probe.get(key, default) for key, default in PROBE_DEFAULTS.items()}
    return float(value["initialDelaySeconds"]) + float(value["failureThreshold"]) * float(value["periodSeconds"])


def _waits_for_model(probe: Doc, runs_launcher: bool) -> tuple[bool, str, str | None]:
    """Does this probe fail until the model is loaded? vLLM opens its port only then; the launcher answers
    /health at once and /ready only when vLLM generates. exec probes are opaque: assumed not to."""
    handler = next((h for h in ("httpGet", "tcpSocket", "grpc", "exec") if h in probe), "exec")
    path = str(get(probe, "httpGet", "path") or "") or None
    if handler == "exec":
        return False, handler, path
    if runs_launcher:
        return handler == "httpGet" and path not in LAUNCHER_LIVE_PATHS, handler, path
    return True, handler, path


def startup_probe(probes: Any, runs_launcher: bool, at: Loc) -> Probe | None:
    """The probe that restarts a container still loading its model: the startup probe when it waits for the
    model, else the liveness probe when it does (liveness runs only after a startup probe has passed)."""
    for kind in ("startupProbe", "livenessProbe"):
        probe = get(probes, kind)
        if not isinstance(probe, dict):
            continue
        waits, handler, path = _waits_for_model(probe, runs_launcher)
        if waits:
            where = (
                loc(probe, "failureThreshold")
                if "failureThreshold" in probe
                else loc(probes, kind, fallback=loc(probe, fallback=at))
            )
            return Probe(kind, probe_window(probe), where, handler, path)
    return None


def gpu_labels(pod: Doc) -> list[Token]:
    """GPU product label values the pod is pinned to: nodeSelector, or required node affinity `In` terms."""
    labels = []
    selector = pod.get("nodeSelector") or {}
    for key in GPU_LABELS:
        if key in selector:
            labels.append(Token(f"{key}={selector[key]}", loc(selector, key)))
    terms = (
        get(pod, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
        or []
    )
    labels += labels_from_terms(terms)
    return labels


def labels_from_terms(terms: Any) -> list[Token]:
    labels = []
    for term in terms if isinstance(terms, list) else []:
        for expression in get(term, "matchExpressions") or []:
            if get(expression, "key") in GPU_LABELS and get(expression, "operator") == "In":
                values = expression.get("values") or []
                labels += [Token(f"{expression['key']}={value}", loc(values, i)) for i, value in enumerate(values)]
    return labels
