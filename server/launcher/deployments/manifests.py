"""Kubernetes manifests: Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob and LeaderWorkerSet
(a `List` and KServe's InferenceService are dispatched by preflight.py). Multi-document files and kustomize output
alike; the pod itself is read by pods.py.
"""

from __future__ import annotations

from typing import Any

from .located import Doc, Loc, get, loc
from .pods import gpus_of, pod_workloads
from .workload import Workload, as_int

POD_SPEC_PATHS = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


def workloads(doc: Doc, file: str) -> list[Workload]:
    kind, name = doc.get("kind"), str(get(doc, "metadata", "name") or "?")
    if kind in POD_SPEC_PATHS:
        pod = get(doc, *POD_SPEC_PATHS[kind])
        return pod_workloads(pod, kind, name, file) if isinstance(pod, dict) else []
    if kind == "LeaderWorkerSet":
        return _leader_worker_set(doc, name, file)
    return []


def _pod_gpus(pod: Any) -> int:
    return sum(gpus_of(c.get("resources"), Loc("", 0))[1] for c in get(pod, "containers") or [] if isinstance(c, dict))


def _leader_worker_set(doc: Doc, name: str, file: str) -> list[Workload]:
    """A LeaderWorkerSet group: vLLM runs in the leader; its tensor x pipeline parallel spans the group's GPUs
    (leader + size - 1 workers). Without a leaderTemplate every pod, leader included, uses workerTemplate."""
    template = get(doc, "spec", "leaderWorkerTemplate")
    if not isinstance(template, dict):
        return []
    size = as_int(template.get("size", 1)) or 1
    worker_pod = get(template, "workerTemplate", "spec")
    leader_pod = get(template, "leaderTemplate", "spec") or worker_pod
    if not isinstance(leader_pod, dict):
        return []
    found = pod_workloads(leader_pod, "LeaderWorkerSet", name, file)
    for workload in found:
        workload.group_size = size
        workload.group_at = loc(template, "size")
        if workload.gpus is not None:
            workload.group_gpus = workload.gpus + (size - 1) * _pod_gpus(worker_pod)
    return found
