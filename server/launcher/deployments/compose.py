"""Compose files: services that run our image, vLLM's image, or a command that starts vLLM.

Files given together are merged in order, as `docker compose -f A -f B` does (mappings key by key, other values
replaced), so an override file is checked with the service it changes. Variables take their default
(`${VAR:-default}`): the check does not depend on the shell it runs in. GPUs: `deploy.resources.reservations
.devices` (a `count`, `device_ids`, or `all`: unknown), `gpus`, or the ROCm device files (all GPUs: unknown).
/dev/shm: `shm_size` or `ipc: host`, else Docker's 64 MiB. Grace: `stop_grace_period`, else Docker's 10 s.
Healthchecks never restart a container, so they are not read. Bind mounts map container paths back to this
machine, so a model folder mounted from the checkout is read from there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .located import Doc, Loc, Map, Text, loc
from .workload import Token, Workload, as_int, duration_s, find_invocation, image_entrypoint, size_gib, tokens_of

DEFAULT_GRACE_S = 10  # docker stop's default


def is_compose(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("services"), dict)


def merge(base: Any, override: Any) -> Any:
    """`override` over `base`, as compose merges files: mappings key by key, anything else replaced."""
    if not (isinstance(base, Map) and isinstance(override, Map)):
        return override
    merged = Map(base)
    merged.file, merged.line, merged.lines, merged.files = base.file, base.line, dict(base.lines), dict(base.files)
    for key, value in override.items():
        merged[key] = merge(base[key], value) if key in base else value
        merged.lines[key], merged.files[key] = override.line_of(key), override.files.get(key, override.file)
    return merged


def interpolate(value: Any) -> Any:
    """${VAR:-default} and ${VAR-default} become the default; $$ a literal $; ${VAR} stays as written."""
    if not isinstance(value, str):
        return value
    text = re.sub(r"\$\$|\$\{\w+:?-([^}]*)\}", lambda m: "$" if m.group(0) == "$$" else m.group(1), value)
    if isinstance(value, Text):
        located = Text(text)
        located.file, located.line, located.end_line = value.file, value.line, value.end_line
        return located
    return text


def _interpolated(value: Any) -> Any:
    if isinstance(value, Map):
        for key in value:
            value[key] = _interpolated(value[key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = _interpolated(item)
    else:
        value = interpolate(value)
    return value


def workloads(docs: list[tuple[Doc, str]]) -> list[Workload]:
    """The services of compose files merged in order; `docs` is (document, file) per file."""
    project: Any = None
    for doc, _file in docs:
        project = doc if project is None else merge(project, doc)
    if project is None:
        return []
    base_dir = Path(docs[0][1]).resolve().parent
    found = []
    for name, service in (project.get("services") or {}).items():
        if isinstance(service, dict):
            workload = _service(str(name), _interpolated(service), base_dir, loc(project["services"], name))
            if workload:
                found.append(workload)
    return found


def _env(environment: Any) -> dict[str, Token]:
    env = {}
    if isinstance(environment, dict):
        for key, value in environment.items():
            if value is not None:
                env[str(key)] = Token(str(value), loc(environment, key))
    elif isinstance(environment, list):
        for i, entry in enumerate(environment):
            key, eq, value = str(entry).partition("=")
            if eq:
                env[key] = Token(value, loc(environment, i))
    return env


def _service(name: str, service: Doc, base_dir: Path, at: Loc) -> Workload | None:
    image = Token(str(service["image"]), loc(service, "image")) if service.get("image") else None
    entrypoint = tokens_of(service.get("entrypoint"), loc(service, "entrypoint"))
    command = tokens_of(service.get("command"), loc(service, "command"))
    invocation = find_invocation((entrypoint or image_entrypoint(image)) + command)
    if invocation is None:
        return None
    workload = Workload(
        at.file,
        at,
        "compose service",
        name,
        name,
        invocation.argv,
        runs_launcher=invocation.program == "launcher",
        launcher_argv=invocation.launcher_argv,
        env=_env(service.get("environment")),
        image=image,
    )
    _gpus(workload, service)
    if service.get("ipc") == "host":
        workload.shm_present, workload.shm_at = True, loc(service, "ipc")
    elif service.get("shm_size") is not None:
        workload.shm_present, workload.shm_gib = True, size_gib(service["shm_size"], docker=True)
        workload.shm_at = loc(service, "shm_size")
    else:
        workload.shm_present, workload.shm_at = False, at
    grace = duration_s(service.get("stop_grace_period"))
    workload.grace_s = DEFAULT_GRACE_S if grace is None else grace
    workload.grace_at = loc(service, "stop_grace_period") if grace is not None else None
    workload.mounts = _binds(service.get("volumes"), base_dir)
    return workload


def _gpus(workload: Workload, service: Doc) -> None:
    devices = (((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices")
    for i, device in enumerate(devices or []):
        if not isinstance(device, dict):
            continue
        capabilities = device.get("capabilities") or []
        if device.get("driver") == "nvidia" or "gpu" in capabilities:
            workload.gpu_kind = "cuda" if device.get("driver", "nvidia") == "nvidia" else None
            if device.get("device_ids"):
                workload.gpus, workload.gpus_at = len(device["device_ids"]), loc(device, "device_ids")
            else:
                count = device.get("count", "all")
                workload.gpus = None if str(count) == "all" else as_int(count)
                workload.gpus_at = loc(device, "count") if "count" in device else loc(devices, i)
            return
    if service.get("gpus") is not None:
        workload.gpu_kind, workload.gpus, workload.gpus_at = "cuda", None, loc(service, "gpus")
        return
    device_files = [str(d).split(":", 1)[0] for d in service.get("devices") or []]
    if "/dev/kfd" in device_files:
        workload.gpu_kind, workload.gpus, workload.gpus_at = "rocm", None, loc(service, "devices")
        return
    workload.gpu_kind, workload.gpus, workload.gpus_at = None, 0, workload.at


def _binds(volumes: Any, base_dir: Path) -> dict[str, Path]:
    """Bind mounts (short `./src:/dst[:ro]` or long `type: bind`) as container path -> path on this machine."""
    binds = {}
    for volume in volumes or []:
        if isinstance(volume, dict):
            source, target = volume.get("source"), volume.get("target")
            if volume.get("type") != "bind" or not source or not target:
                continue
        else:
            parts = str(volume).split(":")
            if len(parts) < 2 or not parts[0].startswith((".", "/", "~")):
                continue  # a named volume
            source, target = parts[0], parts[1]
        binds[str(target).rstrip("/")] = (base_dir / Path(str(source)).expanduser()).resolve()
    return binds
