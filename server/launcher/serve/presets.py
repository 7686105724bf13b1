"""Ready configurations (configs/presets/<name>.yaml; LAUNCHER_PRESETS_DIR in the images): vLLM serve arguments,
environment and target."""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from ..check.arguments import ServeArgs
from ..errors import LauncherError
from ..resources import presets_dir


@dataclass
class Preset:
    name: str
    description: str
    target: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    vllm_version: str | None = None

    def merged_args(self, extra: list[str]) -> list[str]:
        """The preset's arguments, with any flag given in `extra` replacing the preset's own."""
        base = ServeArgs.parse(self.args)
        override = ServeArgs.parse(extra)
        names = {option.name for option in override.options}
        return [*base.without(*names).argv(), *override.argv()]


def available() -> list[str]:
    return sorted(path.stem for path in presets_dir().glob("*.yaml"))


def load_preset(name: str) -> Preset:
    path = presets_dir() / f"{name}.yaml"
    if not path.is_file():
        raise LauncherError(f"unknown preset {name!r}; available: {', '.join(available()) or 'none'}")
    data = yaml.safe_load(path.read_text()) or {}
    missing = {"description", "target", "args"} - set(data)
    if missing:
        raise LauncherError(f"preset {path} lacks {', '.join(sorted(missing))}")
    env = {str(k): str(v) for k, v in (data.get("env") or {}).items()}
    return Preset(
        name, data["description"], data["target"], [str(a) for a in data["args"]], env, data.get("vllm_version")
    )
