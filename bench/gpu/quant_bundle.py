"""llm-compressor, lm-eval and SmolLM2-135M-Instruct for the GPU machine, as parts one device call each carries.

The GPU machine has no network and no llm-compressor, lm-eval or model; one device call carries at most 64 MiB
(the working tree, ~8 MiB, included). `build` (here, PyPI reachable) resolves what each stack needs against the
device's own packages and writes .gpu/q1 .. .gpu/qN (ignored by git, like the vLLM bundle's .gpu/p1 ..):

- the quantize stack: llmcompressor==0.14.0.1 and what it needs that the device image lacks or has in a version
  outside its bounds, at the versions the reference interpreter (.venv-quant: `make quantize-env`) runs. It goes
  into its OWN directory, /tmp/quant-site, used only by the quantize worker through the wrapper /tmp/quant-python
  (LAUNCHER_QUANT_PYTHON): llm-compressor wants compressed-tensors 0.19.0, the vLLM bundle's /tmp/site has 0.17.0;
- the eval stack: lm-eval[api]==0.4.13 and what it needs beyond the device image and the vLLM bundle
  (bundle-lock.txt: the eval child has /tmp/site on its path too), at .venv's versions, into /tmp/eval-site;
- the model directory, unpacked to /var/tmp/quant-models/<name>.

Wheels (cp312 manylinux, or py3-none-any built here from an sdist when PyPI has no wheel) and the model go into one
tar, xz-compressed (the BF16 weights shrink by about a third), cut into parts of --part-mb MiB; each .gpu/qN holds
its part and the list of sha256 sums, so a device call carries one path. On the device (stdlib only):

    python3 -m bench.gpu.quant_bundle stash     # carried .gpu/q*/ parts -> /var/tmp/qparts; prints what is missing
    python3 -m bench.gpu.quant_bundle install   # check sums, untar, pip install --no-index --no-deps --target ...
    python3 -m bench.gpu.quant_bundle status
    # here:
    .venv/bin/python -m bench.gpu.quant_bundle build [--part-mb 53]      # make gpu-quant-bundle
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import IO, Any, cast

ROOT = Path(__file__).resolve().parents[2]
GPU_DIR = ROOT / ".gpu"
ARCHIVE = "quant.tar.xz"
SUMS = "qparts.sha256"
MANIFEST = "manifest.json"
# On the device: /var/tmp survives between the calls of one machine, like the vLLM bundle's /var/tmp/parts.
PARTS = Path(os.environ.get("QPARTS", "/var/tmp/qparts"))
QUANT_SITE = Path(os.environ.get("QUANT_SITE", "/tmp/quant-site"))
EVAL_SITE = Path(os.environ.get("EVAL_SITE", "/tmp/eval-site"))
QUANT_PYTHON = Path(os.environ.get("QUANT_PYTHON", "/tmp/quant-python"))
MODELS = Path(os.environ.get("QUANT_MODELS", "/var/tmp/quant-models"))
UNPACK = Path("/var/tmp/qbundle")
MIB = 1024**2
CALL_LIMIT = 64 * MIB  # what one device call carries, working tree included

QUANT_ROOT = "llmcompressor==0.14.0.1"
EVAL_ROOT = "lm-eval[api]==0.4.13"
# Never bundled: the device image's CUDA torch stack is what everything runs on.
DEVICE_ONLY = re.compile(r"^(torch|torchaudio|torchvision|triton|nvidia-.*|cuda-.*)$")
# The GPU machine (KINDS.md, /work/shared/gpu/README.md): CPython 3.12.3 on x86-64 Linux.
DEVICE_MARKERS = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "implementation_version": "3.12.3",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}
PLATFORM = [
    "--only-binary=:all:",
    "--python-version",
    "3.12",
    "--implementation",
    "cp",
    "--abi",
    "cp312",
    "--abi",
    "abi3",
    "--abi",
    "none",
    *[
        arg
        for tag in ("2_35", "2_34", "2_31", "2_28", "2_27", "2_24", "2_17")
        for arg in ("--platform", f"manylinux_{tag}_x86_64")
    ],
    "--platform",
    "manylinux2014_x86_64",
    "--platform",
    "manylinux1_x86_64",
]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def say(message: str) -> None:
    print(message, flush=True)


# -- build (here) -----------------------------------------------------------------------------------------


def distributions(python: str) -> dict[str, dict[str, Any]]:
    """name -> {version, requires} of every distribution `python` sees: the set that is known to run together."""
    code = (
        "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: "
        "{'version': d.version, 'requires': d.requires or []} for d in m.distributions()}))"
    )
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    return {norm(name): info for name, info in json.loads(done.stdout).items()}


def freeze(*files: Path) -> dict[str, str]:
    """name -> version of `pip freeze`-style files (comments and blank lines skipped)."""
    found: dict[str, str] = {}
    for path in files:
        for line in path.read_text().splitlines():
            if "==" in line and not line.lstrip().startswith("#"):
                name, version = line.strip().split("==", 1)
                found[norm(name)] = version
    return found


def wanted(requirement: Any, extras: set[str]) -> bool:
    """Whether a Requires-Dist line applies on the device, for a parent installed with `extras`."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**DEVICE_MARKERS, "extra": extra}) for extra in extras | {""})


def resolve(root: str, reference: dict[str, dict[str, Any]], available: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What `root` needs on the device that `available` (the device image, plus the vLLM bundle for the eval
    stack) lacks or has outside a requirement's bounds: name -> {version (the reference's), why}. A requirement
    that `available` satisfies is not followed further (the device's own packages bring their own needs)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    out: dict[str, dict[str, Any]] = {}
    queue = [(Requirement(root), "root")]
    seen: set[tuple[str, frozenset[str]]] = set()
    while queue:
        requirement, parent = queue.pop(0)
        name = norm(requirement.name)
        key = (name, frozenset(requirement.extras))
        have = available.get(name)
        if have is not None and requirement.specifier.contains(Version(have), prereleases=True):
            continue
        if DEVICE_ONLY.match(name):
            raise SystemExit(f"{parent} needs {requirement}, the device has {name} {have}: not something to bundle")
        info = reference.get(name)
        if info is None or not requirement.specifier.contains(Version(info["version"]), prereleases=True):
            found = info["version"] if info else "none"
            raise SystemExit(f"{parent} needs {requirement}; the reference interpreter has {found}")
        why = f"{parent} needs {requirement}; device: {have or 'absent'}"
        if name in out:
            if out[name]["version"] != info["version"]:
                raise SystemExit(f"two versions of {name}: {out[name]['version']} and {info['version']}")
        else:
            out[name] = {"version": info["version"], "why": why}
        if key in seen:
            continue
        seen.add(key)
        for line in info["requires"]:
            child = Requirement(line)
            if wanted(child, set(requirement.extras)):
                queue.append((child, f"{name}=={info['version']}"))
    return dict(sorted(out.items()))


def wheel_for(name: str, version: str, wheels: Path) -> Path | None:
    for path in wheels.glob("*.whl"):
        parts = path.name.split("-")
        if norm(parts[0]) == name and parts[1] == version:
            return path
    return None


def fetch(name: str, version: str, wheels: Path) -> Path:
    """The cp312 manylinux (or pure) wheel of name==version from PyPI; built here from the sdist when PyPI has
    no wheel (sqlitedict, word2number, rouge-score are sdist-only, all pure Python)."""
    cached = wheel_for(name, version, wheels)
    if cached:
        return cached
    env = {**os.environ, "PIP_CONSTRAINT": "", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [sys.executable, "-m", "pip"]
    spec = f"{name}=={version}"
    done = subprocess.run(
        [*pip, "download", "-q", "--no-deps", *PLATFORM, "-d", str(wheels), spec], capture_output=True, env=env
    )
    if done.returncode != 0:
        say(f"  {spec}: no wheel for cp312 manylinux on PyPI, building one from the sdist")
        subprocess.run([*pip, "wheel", "-q", "--no-deps", "-w", str(wheels), spec], check=True, env=env)
    path = wheel_for(name, version, wheels)
    if path is None:
        raise SystemExit(f"no wheel for {spec} in {wheels}")
    if not runs_on_device(path.name):
        raise SystemExit(f"{path.name} does not run on CPython 3.12 x86-64 Linux")
    return path


def runs_on_device(wheel: str) -> bool:
    """name-version(-build)-python-abi-platform.whl: a tag set that CPython 3.12 on manylinux x86-64 takes."""
    python, abi, platform = wheel.removesuffix(".whl").split("-")[-3:]
    pythons = {"py3", "cp312", "py312"} & set(python.split("."))
    abis = {"none", "abi3", "cp312"} & set(abi.split("."))
    platforms = [p for p in platform.split(".") if p == "any" or ("linux" in p and p.endswith("x86_64"))]
    return bool(pythons and abis and platforms)


def tree_bytes() -> int:
    """What travels with every device call besides `carry`: tracked and untracked files that git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    paths = [ROOT / os.fsdecode(name) for name in listed if name]
    return sum(path.stat().st_size for path in paths if path.is_file())


def write_archive(target: Path, members: list[tuple[Path, str]], manifest: dict[str, Any], preset: int) -> None:
    """One tar, xz-compressed (the xz program with all cores when there, else Python's lzma)."""
    staging = target.with_name(target.name + ".tmp")
    manifest_file = target.with_name(MANIFEST)
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
    entries = [(manifest_file, MANIFEST), *members]
    if shutil.which("xz"):
        with open(staging, "wb") as sink:
            xz = subprocess.Popen(["xz", f"-{preset}", "-T0", "-c"], stdin=subprocess.PIPE, stdout=sink)
            assert xz.stdin is not None
            with tarfile.open(fileobj=xz.stdin, mode="w|") as tar:
                for path, name in entries:
                    tar.add(path, arcname=name)
            xz.stdin.close()
            if xz.wait() != 0:
                raise SystemExit("xz failed")
    else:
        with lzma.open(staging, "wb", preset=preset) as packed, tarfile.open(fileobj=packed, mode="w|") as tar:
            for path, name in entries:
                tar.add(path, arcname=name)
    staging.replace(target)


def split(archive: Path, part_bytes: int) -> list[Path]:
    """archive -> .gpu/q1/<archive>.00, .gpu/q2/<archive>.01, ..., each with the sums of all parts beside it."""
    for old in GPU_DIR.glob("q[0-9]*"):
        shutil.rmtree(old)
    parts: list[Path] = []
    with open(archive, "rb") as source:
        while chunk := source.read(part_bytes):
            folder = GPU_DIR / f"q{len(parts) + 1}"
            folder.mkdir(parents=True)
            part = folder / f"{archive.name}.{len(parts):02d}"
            part.write_bytes(chunk)
            parts.append(part)
    sums = "".join(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in parts)
    for part in parts:
        (part.parent / SUMS).write_text(sums)
    return parts


def build(options: argparse.Namespace) -> int:
    exclude = ROOT / ".git" / "info" / "exclude"
    if "/.gpu/" not in exclude.read_text().split():
        with open(exclude, "a") as handle:
            handle.write("/.gpu/\n")
    work = GPU_DIR / "qbuild"
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    device = freeze(options.device_freeze)
    bundle = freeze(options.bundle_lock)
    stacks = {
        "quant": resolve(QUANT_ROOT, distributions(options.quant_python), device),
        "eval": resolve(EVAL_ROOT, distributions(options.eval_python), {**device, **bundle}),
    }
    files: dict[str, list[str]] = {}
    for stack, needed in stacks.items():
        say(f"{stack} stack: {len(needed)} wheels beyond the device's packages")
        files[stack] = []
        for name, info in needed.items():
            path = fetch(name, info["version"], wheels)
            info["wheel"] = path.name
            files[stack].append(path.name)
            say(f"  {path.name:<72} {path.stat().st_size / MIB:6.2f} MiB  ({info['why']})")
    model = Path(options.model).resolve()
    if not (model / "config.json").is_file():
        raise SystemExit(f"{model} is not a model directory (no config.json): make model")
    model_files = sorted(p for p in model.iterdir() if p.is_file())
    used = sorted(set(files["quant"]) | set(files["eval"]))
    for stale in wheels.glob("*.whl"):
        if stale.name not in used:
            stale.unlink()
    members = [(wheels / name, f"wheels/{name}") for name in used]
    members += [(path, f"model/{path.name}") for path in model_files]
    manifest = {
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "roots": {"quant": QUANT_ROOT, "eval": EVAL_ROOT},
        "reference": {"quant": options.quant_python, "eval": options.eval_python},
        "model": model.name,
        "stacks": stacks,
        "wheels": files,
    }
    key = hashlib.sha256(
        json.dumps(
            [[str(p), p.stat().st_size, p.stat().st_mtime_ns, n] for p, n in members] + [options.preset, files]
        ).encode()
    ).hexdigest()
    archive = work / ARCHIVE
    key_file = work / "archive.key"
    if archive.is_file() and key_file.is_file() and key_file.read_text() == key:
        say(f"{archive.name}: unchanged inputs, kept")
    else:
        started = time.monotonic()
        say(f"packing {len(used)} wheels and {model.name} ({len(model_files)} files), xz -{options.preset}")
        write_archive(archive, members, manifest, options.preset)
        key_file.write_text(key)
        say(f"  {archive.stat().st_size / MIB:.1f} MiB in {time.monotonic() - started:.0f} s")
    parts = split(archive, options.part_mb * MIB)
    tree = tree_bytes()
    say(f'parts ({len(parts)}), one per device call (carry [".gpu/qN"]); tree that travels: {tree / MIB:.1f} MiB')
    too_big = False
    for part in parts:
        carried = part.stat().st_size + (part.parent / SUMS).stat().st_size
        total = tree + carried
        say(f"  .gpu/{part.parent.name}  {part.name}  {carried / MIB:.1f} MiB  (+ tree: {total / MIB:.1f} of 64 MiB)")
        too_big |= total >= CALL_LIMIT
    if too_big:
        say("too much for one call: lower --part-mb (GPU_PART_MB)")
        return 1
    return 0


# -- the device ----------------------------------------------------------------------------------------------


def read_sums(path: Path) -> list[tuple[str, str]]:
    """(sha256, part name) per line of the sums file, in the parts' order."""
    pairs = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(digest, name) for digest, name in pairs]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(8 * MIB):
            digest.update(block)
    return digest.hexdigest()


def missing() -> list[str]:
    if not (PARTS / SUMS).is_file():
        return ["every part (no part stashed yet)"]
    out = []
    for digest, name in read_sums(PARTS / SUMS):
        if not (PARTS / name).is_file():
            out.append(name)
        elif sha256(PARTS / name) != digest:
            out.append(f"{name}(bad-sum)")
    return out


def stash(_options: argparse.Namespace) -> int:
    PARTS.mkdir(parents=True, exist_ok=True)
    carried = sorted(GPU_DIR.glob(f"q[0-9]*/{ARCHIVE}.*"))
    for part in carried:
        shutil.copyfile(part, PARTS / part.name)
        sums = part.parent / SUMS
        if (PARTS / SUMS).is_file() and (PARTS / SUMS).read_text() != sums.read_text():
            say(f"{part.name} is from another build than the parts stashed before: those are dropped")
            for old in PARTS.glob(f"{ARCHIVE}.*"):
                if old.name != part.name:
                    old.unlink()
        shutil.copyfile(sums, PARTS / SUMS)
        say(f"stashed {part.name} ({part.stat().st_size / MIB:.1f} MiB)")
    if not carried:
        say(f'nothing carried under {GPU_DIR}/q*/ (carry [".gpu/qN"])')
    left = missing()
    say(f"still missing: {' '.join(left) or 'none'}")
    return 0


class Joined:
    """The stashed parts read as one stream, in order (what tarfile's r|xz reads)."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)
        self.handle: IO[bytes] | None = None

    def read(self, size: int = -1) -> bytes:
        while True:
            if self.handle is None:
                if not self.paths:
                    return b""
                self.handle = open(self.paths.pop(0), "rb")
            data = self.handle.read(size)
            if data:
                return data
            self.handle.close()
            self.handle = None


def installed() -> dict[str, Any] | None:
    """What the last install recorded, when it is for the parts stashed now and its directories are there."""
    marker = QUANT_SITE / ".bundle.json"
    try:
        record: dict[str, Any] = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    current = (PARTS / SUMS).read_text() if (PARTS / SUMS).is_file() else None
    ok = record.get("sums") == current and EVAL_SITE.is_dir() and Path(record.get("model", "/nonexistent")).is_dir()
    return record if ok and QUANT_PYTHON.is_file() else None


def pip_target(site: Path, wheels: list[Path]) -> None:
    shutil.rmtree(site, ignore_errors=True)
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    command += ["--no-cache-dir", "--disable-pip-version-check", "--target", str(site), *map(str, wheels)]
    command += os.environ.get("QBUNDLE_PIP_ARGS", "").split()  # a rehearsal here: --python-version 3.12 ...
    subprocess.run(command, check=True)


def probe(python: list[str], env: dict[str, str], modules: list[str]) -> str:
    """Where each module would be imported from and its distribution's version, without importing it."""
    code = (
        "import importlib.util as u, importlib.metadata as m, sys\n"
        "for name, dist in (a.split(':') for a in sys.argv[1:]):\n"
        "    spec = u.find_spec(name)\n"
        "    print(f'{dist} {m.version(dist) if spec else None} from {spec.origin if spec else None}')\n"
    )
    done = subprocess.run([*python, "-c", code, *modules], capture_output=True, text=True, env=env, timeout=120)
    return (done.stdout + done.stderr).strip()


def install(_options: argparse.Namespace) -> int:
    record = installed()
    if record:
        say(f"already installed: {QUANT_SITE}, {EVAL_SITE}, {record['model']} (wrapper {QUANT_PYTHON})")
        return 0
    left = missing()
    if left:
        say(f"cannot install, parts missing: {' '.join(left)}")
        say("(the machine was probably given back between calls: send every part again, back to back)")
        return 2
    started = time.monotonic()
    shutil.rmtree(UNPACK, ignore_errors=True)
    UNPACK.mkdir(parents=True)
    parts = [PARTS / name for _, name in read_sums(PARTS / SUMS)]
    with tarfile.open(fileobj=cast(IO[bytes], Joined(parts)), mode="r|xz") as tar:
        tar.extractall(UNPACK, filter="data")
    manifest = json.loads((UNPACK / MANIFEST).read_text())
    unpacked = time.monotonic() - started
    pip_target(QUANT_SITE, [UNPACK / "wheels" / name for name in manifest["wheels"]["quant"]])
    pip_target(EVAL_SITE, [UNPACK / "wheels" / name for name in manifest["wheels"]["eval"]])
    model = MODELS / manifest["model"]
    shutil.rmtree(model, ignore_errors=True)
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(UNPACK / "model"), model)
    # The quantize worker's interpreter: the image's python3 with /tmp/quant-site only (never /tmp/site, whose
    # compressed-tensors 0.17.0 llm-compressor 0.14 refuses); `launcher quantize` runs it as LAUNCHER_QUANT_PYTHON.
    QUANT_PYTHON.write_text(f'#!/bin/sh\nPYTHONPATH={QUANT_SITE} exec {sys.executable} "$@"\n')
    QUANT_PYTHON.chmod(0o755)
    shutil.rmtree(UNPACK, ignore_errors=True)
    record = {
        "sums": (PARTS / SUMS).read_text(),
        "model": str(model),
        "quant_python": str(QUANT_PYTHON),
        "wheels": manifest["wheels"],
        "seconds": round(time.monotonic() - started, 1),
        "unpack_seconds": round(unpacked, 1),
    }
    (QUANT_SITE / ".bundle.json").write_text(json.dumps(record, indent=2) + "\n")
    counts = {stack: len(names) for stack, names in manifest["wheels"].items()}
    say(
        f"installed {counts['quant']} wheels into {QUANT_SITE}, {counts['eval']} into {EVAL_SITE}, {manifest['model']} "
        f"into {MODELS} in {record['seconds']} s (unpack {record['unpack_seconds']} s)"
    )
    status(_options)
    return 0


def status(_options: argparse.Namespace) -> int:
    say(f"parts in {PARTS}: {' '.join(sorted(p.name for p in PARTS.glob(ARCHIVE + '.*'))) or 'none'}")
    say(f"missing: {' '.join(missing()) or 'none'}")
    if QUANT_PYTHON.is_file():
        modules = ["llmcompressor:llmcompressor", "compressed_tensors:compressed-tensors", "transformers:transformers"]
        say(f"{QUANT_PYTHON}:\n" + probe([str(QUANT_PYTHON)], dict(os.environ), modules))
    if EVAL_SITE.is_dir():
        site = os.environ.get("SITE", "/tmp/site")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([site, str(EVAL_SITE)])}
        say(f"eval ({site}, {EVAL_SITE}):\n" + probe([sys.executable], env, ["lm_eval:lm_eval", "datasets:datasets"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    build_parser = verbs.add_parser("build", help="here: resolve, download, pack and split into .gpu/q1..qN")
    recipe = Path(os.environ.get("GPU_RECIPE", ROOT.parent / "shared" / "gpu"))
    build_parser.add_argument("--quant-python", default=str(ROOT / ".venv-quant" / "bin" / "python"))
    build_parser.add_argument("--eval-python", default=str(ROOT / ".venv" / "bin" / "python"))
    build_parser.add_argument("--device-freeze", type=Path, default=recipe / "device-freeze.txt")
    build_parser.add_argument("--bundle-lock", type=Path, default=recipe / "bundle-lock.txt")
    build_parser.add_argument("--model", default=str(ROOT / "models" / "SmolLM2-135M-Instruct"))
    build_parser.add_argument("--part-mb", type=int, default=53)
    build_parser.add_argument("--preset", type=int, default=6, help="xz preset")
    verbs.add_parser("stash", help="on the device: the carried part(s) into " + str(PARTS))
    verbs.add_parser("install", help="on the device: check, untar, pip install --target; idempotent")
    verbs.add_parser("status", help="on the device: parts, installed stacks")
    options = parser.parse_args(argv)
    return {"build": build, "stash": stash, "install": install, "status": status}[options.verb](options)


if __name__ == "__main__":
    sys.exit(main())
