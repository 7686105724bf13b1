"""A workload: one container (or compose service, Helm model, preset) that starts vLLM, as the file declares it.

Every format module (compose, kubernetes, helm, preset) reduces its file to these; the checks only read them.
Each value keeps the file:line it was written at, so a finding can point at it.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .located import Loc, Text, source_lines

# Images whose ENTRYPOINT is `launcher serve --` (ours) or `vllm serve` (vLLM's, and images built on it).
LAUNCHER_IMAGE = re.compile(r"(^|/)vllm-launch[^/]*$")
VLLM_IMAGE = re.compile(r"(^|/)vllm-openai[^/]*$")
SHELLS = {"sh", "bash", "dash", "ash", "zsh"}
VLLM_MODULES = {"vllm.entrypoints.openai.api_server", "vllm.entrypoints.cli.main"}
_SEGMENT_BREAKS = {";", "&&", "||", "|", "&", "(", ")"}


@dataclass(frozen=True)
class Token:
    """One command-line word and where it is written."""

    text: str
    at: Loc
    source: Any = field(default=None, compare=False, repr=False)  # the YAML string it came from


@dataclass
class Probe:
    """How long the kubelet lets a container start before it restarts it: delay + failureThreshold x period."""

    kind: str  # startupProbe | livenessProbe
    window_s: float
    at: Loc
    handler: str  # httpGet | tcpSocket | exec | grpc
    path: str | None = None


@dataclass
class Workload:
    file: str
    at: Loc
    kind: str  # Deployment, LeaderWorkerSet, InferenceService, compose service, production-stack modelSpec, preset
    name: str
    container: str
    argv: list[Token]  # vLLM serve arguments
    runs_launcher: bool = False
    launcher_argv: list[Token] = field(default_factory=list)  # `launcher serve` options before `--`
    env: dict[str, Token] = field(default_factory=dict)
    image: Token | None = None
    gpu_kind: str | None = None  # cuda | rocm | None (no GPU resource, or unknown)
    gpus: int | None = None  # GPUs the vLLM container gets; None: unknown ("all", a device list)
    gpus_at: Loc | None = None
    group_gpus: int | None = None  # GPUs of the whole group (LeaderWorkerSet, multi-node); None: one pod
    group_size: int = 1
    group_at: Loc | None = None
    gpu_labels: list[Token] = field(default_factory=list)  # node label values naming the GPU product
    shm_gib: float | None = None  # /dev/shm size; None: absent or unbounded (see shm_present)
    shm_present: bool | None = False  # None: unknown (the runtime may add it)
    shm_at: Loc | None = None
    startup: Probe | None = None  # the probe that can kill a loading server, if any
    grace_s: float | None = None  # seconds between SIGTERM and SIGKILL
    grace_at: Loc | None = None  # None: the platform's default applies
    mounts: dict[str, Path] = field(default_factory=dict)  # container path -> path on this machine
    target: Token | None = None  # a target the file itself states (a preset's)
    vllm_version: Token | None = None  # a vLLM version the file itself states (a preset's)


# -- command lines ----------------------------------------------------------------------------------------------------


def tokens_of(value: Any, at: Loc) -> list[Token]:
    """A YAML command (list, or a string that compose splits like a shell) as tokens."""
    if value is None:
        return []
    if isinstance(value, list):
        lines = getattr(value, "lines", [])
        return [
            Token(str(item), Loc(at.file, lines[i]) if i < len(lines) else at, item)
            for i, item in enumerate(value)
            if item is not None
        ]
    return _split_script(str(value), Loc(at.file, getattr(value, "line", at.line)), value)


def _split_script(script: str, at: Loc, source: Any) -> list[Token]:
    """shlex words of a string; a word's line is found in the source lines the string spans."""
    try:
        words = shlex.split(script.replace("\\\n", " "), comments=True)
    except ValueError:
        words = script.split()
    return _place(words, at, source)


def _place(words: list[str], at: Loc, source: Any) -> list[Token]:
    if not isinstance(source, Text) or source.end_line <= source.line:
        return [Token(word, at) for word in words]
    lines = _source_lines(source)
    tokens, current = [], 0
    for word in words:
        for offset in range(current, len(lines) if word != "\n" else current):
            if word in lines[offset]:
                current = offset
                break
        tokens.append(Token(word, Loc(at.file, source.line + current)))
    return tokens


def _source_lines(text: Text) -> list[str]:
    return source_lines(text.file)[text.line - 1 : text.end_line] or [str(text)]


def _segments(tokens: list[Token]) -> list[list[Token]]:
    """A shell script's simple commands: split at ; && || | & and newlines (kept as tokens by _shell_tokens)."""
    segments: list[list[Token]] = [[]]
    for token in tokens:
        if token.text in _SEGMENT_BREAKS or token.text == "\n":
            segments.append([])
        else:
            segments[-1].append(token)
    return [segment for segment in segments if segment]


def _shell_tokens(script: Token) -> list[Token]:
    words: list[str] = []
    for line in script.text.replace("\\\n", " ").splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            words.extend(list(lexer))
        except ValueError:
            words.extend(line.split())
        words.append("\n")
    return _place(words, script.at, script.source)


@dataclass
class Invocation:
    program: str  # vllm | launcher
    launcher_argv: list[Token]
    argv: list[Token]


def find_invocation(tokens: list[Token]) -> Invocation | None:
    """`vllm serve ...`, `python -m vllm.entrypoints.openai.api_server ...` or `launcher serve ... -- ...` in an
    exec-form command, or inside `sh -c "..."`; None when the command starts neither."""
    if len(tokens) >= 3 and os.path.basename(tokens[0].text) in SHELLS and re.fullmatch(r"-\w*c\w*", tokens[1].text):
        for segment in _segments(_shell_tokens(tokens[2])):
            found = _match(segment)
            if found:
                return found
        return None
    return _match(tokens)


def _match(words: list[Token]) -> Invocation | None:
    texts = [w.text for w in words]
    for i, text in enumerate(texts):
        base = os.path.basename(text)
        following = texts[i + 1] if i + 1 < len(texts) else None
        if base == "vllm" and following == "serve":
            return Invocation("vllm", [], words[i + 2 :])
        if re.fullmatch(r"python[\d.]*", base) and following == "-m" and i + 2 < len(texts):
            if texts[i + 2] == "vllm.entrypoints.openai.api_server":
                return Invocation("vllm", [], words[i + 3 :])
            if texts[i + 2] == "vllm.entrypoints.cli.main" and texts[i + 3 : i + 4] == ["serve"]:
                return Invocation("vllm", [], words[i + 4 :])
        if base == "launcher" and following == "serve":
            rest = words[i + 2 :]
            cut = next((j for j, w in enumerate(rest) if w.text == "--"), None)
            if cut is None:
                return Invocation("launcher", rest, [])
            return Invocation("launcher", rest[:cut], rest[cut + 1 :])
    return None


def image_name(image: Token | None) -> str:
    """registry/path/name of an image reference, without its tag or digest."""
    if image is None:
        return ""
    name = image.text.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name


def is_launcher_image(image: Token | None) -> bool:
    return bool(LAUNCHER_IMAGE.search(image_name(image)))


def image_entrypoint(image: Token | None) -> list[Token]:
    """The ENTRYPOINT of the images we know: ours runs `launcher serve --`, vLLM's `vllm serve`."""
    if is_launcher_image(image):
        return [Token(word, image.at) for word in ("launcher", "serve", "--")]  # type: ignore[union-attr]
    if VLLM_IMAGE.search(image_name(image)):
        return [Token(word, image.at) for word in ("vllm", "serve")]  # type: ignore[union-attr]
    return []


def image_kind(image: Token | None) -> str | None:
    """cuda / rocm / cpu when the image says it: vllm-launch:<kind>, vllm/vllm-openai(-rocm), rocm/vllm, vllm-cpu."""
    if image is None:
        return None
    text, name = image.text.lower(), image_name(image).lower()
    if "rocm" in text:
        return "rocm"
    if "vllm-cpu" in text or (is_launcher_image(image) and text.endswith(":cpu")):
        return "cpu"
    if VLLM_IMAGE.search(name) or (is_launcher_image(image) and text.endswith(":cuda")):
        return "cuda"
    return None


def image_vllm_version(image: Token | None) -> str | None:
    """The vLLM release an image tag names: vllm/vllm-openai:v0.26.0, rocm/vllm:..._vllm_0.6.4; else None."""
    if image is None or ":" not in image.text.split("/")[-1]:
        return None
    tag = image.text.rsplit(":", 1)[1]
    match = re.fullmatch(r"v?(\d+\.\d+(?:\.\d+)*)", tag) or re.search(r"vllm[_-]v?(\d+\.\d+(?:\.\d+)*)", tag)
    return match.group(1) if match else None


# -- values -----------------------------------------------------------------------------------------------------------

GIB = 2**30
_KUBERNETES_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def size_gib(value: Any, docker: bool = False) -> float | None:
    """A Kubernetes quantity (16Gi, 2G) or, with `docker`, a compose size (16gb, 2g: binary units) in GiB."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / GIB
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value or ""))
    if not match:
        return None
    number, unit = float(match.group(1)), match.group(2)
    if docker:
        unit = unit.lower().removesuffix("b")
        if unit and unit not in "kmgtp":
            return None
        return number * 1024 ** ("kmgtp".index(unit) + 1 if unit else 0) / GIB
    factor = _KUBERNETES_UNITS.get(unit)
    return None if factor is None else number * factor / GIB


def duration_s(value: Any) -> float | None:
    """A compose duration (90s, 1m30s, 1h) or a number of seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)", str(value or ""))
    if not parts:
        return None
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    return sum(float(number) * scale[unit] for number, unit in parts)


def as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip().strip('"'))
    except (TypeError, ValueError):
        return None
