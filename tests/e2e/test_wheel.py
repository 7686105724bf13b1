"""The built wheel works on its own: `python -m build`, the wheel installed into a fresh venv outside the repository
(no system site-packages; dependencies from PyPI through pip's cache), then `launcher check`, `launcher rules`,
`launcher plan` and the pre-commit hook's command run from a folder that holds no checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "tests" / "fixtures" / "models"
LLAMA = MODELS / "meta-llama__Llama-3.1-8B-Instruct"

pytestmark = pytest.mark.slow  # a build and a pip install: 30-90 s


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """`command` without this session's PYTHONPATH (it names the checkout) or LAUNCHER_* settings."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("LAUNCHER_")}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """bin/ of a fresh venv holding only the wheel and its dependencies."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a copy of the tracked files: the build writes build/ and *.egg-info there
    files = run(["git", "ls-files", "-z"], ROOT).stdout.split("\0")
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(source)], work)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (work / "dist").glob("vllm_launch-*.whl")
    venv.create(work / "venv", with_pip=True, system_site_packages=False)
    bin_dir = work / "venv" / "bin"
    pip = run([str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(wheel)], work)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return bin_dir


def launcher(bin_dir: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    result = run([str(bin_dir / "launcher"), *argv], bin_dir.parent.parent, timeout=120)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr, result.stderr
    return result


def test_the_package_is_not_read_from_the_checkout(installed: Path) -> None:
    where = run([str(installed / "python"), "-c", "import launcher; print(launcher.__file__)"], installed)
    assert str(installed.parent) in where.stdout and str(ROOT) not in where.stdout


def test_rules(installed: Path) -> None:
    result = launcher(installed, "rules", "--format", "json")
    assert result.returncode == 0 and len(json.loads(result.stdout)) > 30
    assert launcher(installed, "rules", "--explain", "kv-fp8-e5m2-falls-back").returncode == 0


def test_check(installed: Path) -> None:
    accepted = launcher(installed, "check", "--target", "cuda:h100", "--format", "json", "--", "--model", str(LLAMA))
    assert accepted.returncode == 0 and json.loads(accepted.stdout)["accepted"]
    rejected = launcher(
        installed,
        "check",
        "--target",
        "cuda:h100",
        "--vllm-version",
        "0.26.0",
        "--format",
        "json",
        "--",
        "--model",
        str(LLAMA),
        "--kv-cache-dtype",
        "fp8_e5m2",
    )
    assert rejected.returncode == 2
    assert "kv-fp8-e5m2-flashinfer-hopper" in {f["rule"] for f in json.loads(rejected.stdout)["findings"]}


def test_plan(installed: Path) -> None:
    result = launcher(installed, "plan", "--target", "cuda:h100", "--", "--model", str(LLAMA))
    assert result.returncode == 0 and result.stdout.startswith("FITS")


def test_the_pre_commit_hook(installed: Path) -> None:
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    files = [
        str(ROOT / "tests" / "fixtures" / "deployments" / name)
        for name in ("vllm-docs-deployment-tp2.yaml", "vllm-docs-deployment.yaml")
    ]
    command = [*hook["entry"].split(), "--model-configs", str(MODELS), *hook["args"], *files]
    assert command[0] == "launcher"
    result = launcher(installed, *command[1:])
    assert result.returncode == 2  # the second file's probe is too short for its model
    assert "startup-probe-too-short" in result.stdout and "1 rejected" in result.stdout
