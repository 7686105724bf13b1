"""Where the data files (the compatibility table, platforms, presets) live."""

import os
from pathlib import Path


def config_dir() -> Path:
    """configs/ of the repository, or LAUNCHER_CONFIG_DIR in an image that copies it elsewhere."""
    override = os.environ.get("LAUNCHER_CONFIG_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "configs"
