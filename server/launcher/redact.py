"""Secrets never leave the process: redaction of secret-bearing flags, variables and their values.

A flag or variable is secret when one of its dash/underscore-separated words is a secret word (`--api-key`,
`--hf-token`, `HF_TOKEN`, `--db-password`), so `--max-num-batched-tokens` and `--tokenizer` are not. Every secret
value the launcher was given is also replaced wherever it appears in text: vLLM's echoed argument lines, log
records, `/status`, `/metrics` and error messages.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import LauncherError

SECRET_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd", "credential", "credentials"})
MASK = "***"
# A value shorter than this is not searched for in text (a one-letter "secret" would mask every line).
MIN_SECRET_LENGTH = 4


def is_secret_name(name: str) -> bool:
    """`--api-key`, `hf_token`, `HF_TOKEN`, `aws_secret_access_key`: one of the words is a secret word."""
    words = re.split(r"[-_.\s]+", name.strip("-").lower())
    return any(word in SECRET_WORDS for word in words)


# What every derived release has had; kept when a release's facts cannot be read (the redactor must still work
# while the error about that file is being printed).
KNOWN_SECRET_OPTIONS = ("--api-key", "--hf-token")


@functools.cache
def _secret_options() -> tuple[str, ...]:
    """The secret-bearing long options of every derived vLLM release (--api-key, --hf-token, ...)."""
    from .check.vllm_parser import flag_spec, known_releases

    options = set(KNOWN_SECRET_OPTIONS)
    for release in known_releases():
        try:
            spec = flag_spec(release)
        except LauncherError:  # a broken data file: its own error says so, masking goes on without it
            continue
        options.update(o for o in spec.options if o.startswith("--") and is_secret_name(o))
    return tuple(sorted(options))


def is_secret_flag(name: str) -> bool:
    """A secret name, or a prefix of a secret vLLM option (argparse takes `--api-k` and `--hf_tok` as --api-key and
    --hf-token): masked even when the prefix is ambiguous, as masking too much leaks nothing."""
    if is_secret_name(name):
        return True
    spelled = "--" + name[2:].replace("_", "-") if name.startswith("--") else ""
    return len(spelled) > 2 and any(option.startswith(spelled) for option in _secret_options())


def secret_values_in_argv(argv: Iterable[str]) -> list[str]:
    """The values of secret flags in serve arguments (`--api-key a b`, `--hf-token=x`)."""
    values: list[str] = []
    tokens = list(argv)
    for index, token in enumerate(tokens):
        if not token.startswith("-"):
            continue
        name, eq, inline = token.partition("=")
        if not is_secret_flag(name):
            continue
        if eq:
            values.append(inline)
            continue
        for value in tokens[index + 1 :]:
            if value.startswith("-"):
                break
            values.append(value)
    return values


def secret_values_in_env(environ: Mapping[str, str]) -> list[str]:
    return [value for name, value in environ.items() if is_secret_name(name)]


class Redactor:
    """Replaces known secret values, and the values after secret flags, in text and structures."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: set[str] = set()
        self.add(secrets)

    @classmethod
    def for_process(cls, argv: Iterable[str], environ: Mapping[str, str] | None = None) -> Redactor:
        environ = os.environ if environ is None else environ
        return cls([*secret_values_in_argv(argv), *secret_values_in_env(environ)])

    def add(self, secrets: Iterable[str]) -> None:
        self.secrets.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)
        # Longest first, so a secret that contains another is masked whole.
        self._pattern = (
            re.compile("|".join(re.escape(s) for s in sorted(self.secrets, key=len, reverse=True)))
            if self.secrets
            else None
        )

    def text(self, value: str) -> str:
        if self._pattern is not None:
            value = self._pattern.sub(MASK, value)
        return _FLAG_VALUE.sub(_mask_flag_value, value)

    def argv(self, argv: Iterable[str]) -> list[str]:
        """Serve arguments with every secret flag's value masked (the flag itself is kept)."""
        redacted: list[str] = []
        masking = False
        for token in argv:
            if token.startswith("-"):
                name, eq, _ = token.partition("=")
                masking = is_secret_flag(name) and not eq
                redacted.append(f"{name}={MASK}" if eq and is_secret_flag(name) else token)
            else:
                redacted.append(MASK if masking else self.text(token))
        return redacted

    def data(self, value: Any) -> Any:
        """A JSON-like structure with secret keys' values masked and secret values replaced in strings."""
        if isinstance(value, dict):
            return {
                k: MASK if isinstance(k, str) and is_secret_name(k) and v else self.data(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            if all(isinstance(item, str) for item in value):
                return self.argv(value)
            return [self.data(item) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value


# `--api-key value`, `--hf_token=value`, `'api_key': 'value'`, `HF_TOKEN=value` inside free text (vLLM's logs). A flag
# starts a word (the `-token` of `163840-token sequences` is prose), and a value is not the next flag (`serve m
# --hf-token x`: `m` is not followed by a value).
_FLAG_VALUE = re.compile(
    r"""(?P<name>(?<![\w-])--?[\w-]+|['"]?\b[\w]+['"]?)(?P<sep>\s*[=:]\s*|\s+)(?P<value>(?!--?[A-Za-z])(?:\[[^\]]*\]|'[^']*'|"[^"]*"|[^\s,}]+))"""
)


def _mask_flag_value(match: re.Match[str]) -> str:
    name = match.group("name").strip("'\"")
    if not is_secret_flag(name) or match.group("value") in ("None", "null", "[]", "''", '""'):
        return match.group(0)
    if not match.group("name").startswith("-") and match.group("sep").isspace():
        return match.group(0)  # a bare word followed by a space is prose, not an assignment
    return f"{match.group('name')}{match.group('sep')}{MASK}"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's message before any handler formats it."""

    def __init__(self, redactor: Redactor):
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor.text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def install_log_redaction(redactor: Redactor) -> None:
    """Every handler of the root logger (and uvicorn's) redacts what it writes."""
    for handler in [
        *logging.getLogger().handlers,
        *logging.getLogger("uvicorn").handlers,
        *logging.getLogger("uvicorn.error").handlers,
    ]:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter(redactor))
