"""Where the data files live: the tables ship inside the package (launcher/data/, read with importlib.resources);
the presets are deployment files of the repository (configs/presets/), copied into the images."""

import os
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

REPOSITORY_PRESETS = Path(__file__).resolve().parents[2] / "configs" / "presets"


def data_file(name: str) -> Traversable:
    """A table (compatibility.yaml, platforms.yaml, vllm_flags.yaml, deployment_rules.yaml): the package's copy, or
    the one in LAUNCHER_CONFIG_DIR when that names a folder of edited tables."""
    override = os.environ.get("LAUNCHER_CONFIG_DIR")
    if override:
        return Path(override) / name
    return files("launcher") / "data" / name


def presets_dir() -> Path:
    """LAUNCHER_PRESETS_DIR (the images: /opt/vllm-launch/presets), else the checkout's configs/presets/."""
    override = os.environ.get("LAUNCHER_PRESETS_DIR")
    return Path(override) if override else REPOSITORY_PRESETS
