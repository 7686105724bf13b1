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
# Sub-millisecond buckets: what the front door adds is a fraction of a millisecond when it is healthy.
OVERHEAD_BUCKETS = (
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)
ADDED_SECONDS = Histogram(
    "launcher_added_latency_seconds",
    "What the front door adds to a generation's time to first chunk, by stage: to_upstream (from the request's "
    "ASGI call to its last byte written to vLLM), to_client (from vLLM's first chunk read to it handed to the "
    "client's connection), total (their sum per request); the event loop's waits are launcher_event_loop_lag_seconds",
    ["stage"],
    buckets=OVERHEAD_BUCKETS,
    registry=REGISTRY,
)
LOOP_LAG_SECONDS = Histogram(
    "launcher_event_loop_lag_seconds",
    "How long a callback made ready waited for the front door's event loop (sampled every 0.1 s): the wait a request "
    "or a chunk that has just arrived has before the front door handles it",
    buckets=OVERHEAD_BUCKETS,
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
