"""The launcher's own Prometheus metrics (vLLM's are passed through beside them on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

VERDICTS = Counter("launcher_verdicts", "Verdicts of the compatibility check", ["accepted"], registry=REGISTRY)
REQUESTS = Counter("launcher_requests", "Requests answered by the front door", ["route", "status"], registry=REGISTRY)
REQUEST_SECONDS = Histogram(
    "launcher_request_duration_seconds",
    "Time from request to the last byte sent, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
IN_FLIGHT = Gauge("launcher_inflight_requests", "Proxied requests not yet finished", registry=REGISTRY)
READY = Gauge("launcher_ready", "1 when the model answers a generation, else 0", registry=REGISTRY)
CHILD_EXITS = Counter("launcher_child_exits", "Times the vLLM child process exited on its own", registry=REGISTRY)
STARTUP_SECONDS = Gauge(
    "launcher_startup_seconds", "Seconds from starting vLLM to its first answered generation", registry=REGISTRY
)
UPSTREAM_ERRORS = Counter(
    "launcher_upstream_errors", "Proxied requests vLLM did not answer (refused, reset)", registry=REGISTRY
)
ABANDONED = Counter(
    "launcher_abandoned_requests",
    "Requests whose client left before vLLM answered (cancelled upstream)",
    registry=REGISTRY,
)
BUFFER_REFUSALS = Counter(
    "launcher_buffer_refusals",
    "Request bodies refused because all requests together held LAUNCHER_MAX_BUFFERED_BYTES",
    registry=REGISTRY,
)
PREDICTION_ERROR = Gauge(
    "launcher_prediction_error_ratio",
    "(planned - vLLM's logged figure) / vLLM's, at the last start, by quantity",
    ["quantity"],
    registry=REGISTRY,
)
