"""Where the data files live: the tables ship inside the package (launcher/data/, read with importlib.resources);
the presets are deployment files of the repository (configs/presets/), copied into the images."""

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from . import settings

REPOSITORY_PRESETS = Path(__file__).resolve().parents[2] / "configs" / "presets"


def data_file(name: str) -> Traversable:
    """A table (compatibility.yaml, platforms.yaml, deployment_rules.yaml, argument_rules.yaml,
    vllm/<release>.json, ...): the package's copy, or
    the one in LAUNCHER_CONFIG_DIR when that names a folder of edited tables."""
    override = settings.get("LAUNCHER_CONFIG_DIR")
    if override:
        return override / name
    return files("launcher") / "data" / name


def presets_dir() -> Path:
    """LAUNCHER_PRESETS_DIR (the images: /opt/vllm-launch/presets), else the checkout's configs/presets/."""
    return settings.get("LAUNCHER_PRESETS_DIR") or REPOSITORY_PRESETS
