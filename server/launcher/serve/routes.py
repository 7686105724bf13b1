"""What reaches vLLM: an allowlist of its inference routes, matched on the request target's raw bytes.

The decision is made on the path exactly as the client sent it (uvicorn's `raw_path`), and vLLM is sent those
same bytes: nothing is decoded or normalised in between, so what was checked is what vLLM routes. A path with
dot segments, percent-encoding, backslashes, empty segments or control bytes is refused before any routing.
Sources: vLLM 0.32 `entrypoints/openai/*/api_router.py`, `entrypoints/serve/*` (the control routes `/pause`,
`/sleep`, `/collective_rpc`, `/v1/load_lora_adapter`, ... are not in the list and never reach vLLM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# route label -> (path pattern, methods). Labels are the metric and log names (bounded cardinality).
_ID = r"[A-Za-z0-9_-]{1,128}"
INFERENCE_ROUTES: dict[str, tuple[str, frozenset[str]]] = {
    "/v1/completions": (r"/v1/completions", frozenset({"POST"})),
    "/v1/chat/completions": (r"/v1/chat/completions", frozenset({"POST"})),
    "/v1/models": (r"/v1/models", frozenset({"GET"})),
    "/v1/embeddings": (r"/v1/embeddings", frozenset({"POST"})),
    "/v1/responses": (r"/v1/responses", frozenset({"POST"})),
    "/v1/responses/{id}": (rf"/v1/responses/{_ID}", frozenset({"GET"})),
    "/v1/responses/{id}/cancel": (rf"/v1/responses/{_ID}/cancel", frozenset({"POST"})),
    "/v1/audio/transcriptions": (r"/v1/audio/transcriptions", frozenset({"POST"})),
    "/v1/audio/translations": (r"/v1/audio/translations", frozenset({"POST"})),
    "/v1/score": (r"/v1/score", frozenset({"POST"})),
    "/v1/rerank": (r"/v1/rerank", frozenset({"POST"})),
    "/v1/messages": (r"/v1/messages", frozenset({"POST"})),
    "/v1/messages/count_tokens": (r"/v1/messages/count_tokens", frozenset({"POST"})),
}
# Routes whose successful answers are generated tokens: their bytes count as "tokens are flowing" for /ready.
GENERATION_ROUTES = frozenset({"/v1/completions", "/v1/chat/completions", "/v1/responses", "/v1/messages"})
REFUSED_LABEL = "refused"
LOGGED_PATH_BYTES = 200

_COMPILED = [(label, re.compile(pattern.encode()), methods) for label, (pattern, methods) in INFERENCE_ROUTES.items()]
# Anything a normaliser could turn into another path: dot segments, empty segments, encodings, backslashes.
_AMBIGUOUS = re.compile(rb"(^|/)\.{1,2}(/|$)|//|%|\\|[^\x21-\x7e]")


@dataclass(frozen=True)
class RouteDecision:
    """Where a request goes: `label` is set when vLLM may see it; otherwise status and message say why not."""

    label: str
    status: int = 200
    message: str = ""
    allow: frozenset[str] = frozenset()

    @property
    def allowed(self) -> bool:
        return self.status == 200


def decide(method: str, raw_path: bytes) -> RouteDecision:
    """The route for a `/v1/` request target, from its raw bytes."""
    if _AMBIGUOUS.search(raw_path):
        return RouteDecision(
            REFUSED_LABEL,
            400,
            "the path has dot segments, empty segments, percent-encoding, "
            "backslashes or control bytes; send the plain path of an inference route, e.g. "
            "/v1/chat/completions",
        )
    for label, pattern, methods in _COMPILED:
        if pattern.fullmatch(raw_path):
            if method not in methods and not (method == "HEAD" and "GET" in methods):
                return RouteDecision(
                    label, 405, f"{label} does not take {method}; use {' or '.join(sorted(methods))}", methods
                )
            return RouteDecision(label)
    return RouteDecision(
        REFUSED_LABEL,
        404,
        "no such route: this server answers vLLM's inference routes under "
        "/v1 (completions, chat/completions, models, embeddings, responses, audio, score, rerank, "
        "messages)",
    )


def printable_path(raw_path: bytes) -> str:
    """The path as it arrived, for the access log: bounded, non-printable bytes escaped."""
    shown = raw_path[:LOGGED_PATH_BYTES].decode("ascii", "backslashreplace")
    shown = "".join(ch if ch.isprintable() and ch not in ' "' else f"\\x{ord(ch):02x}" for ch in shown)
    return shown + ("..." if len(raw_path) > LOGGED_PATH_BYTES else "")
