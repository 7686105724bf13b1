"""The front door's limits: every bound a server exposed to a network must have, read from `LAUNCHER_*` variables
(settings.py declares each with its default; a bad value is one line naming the variable, never a traceback).
"""

from __future__ import annotations

import dataclasses
import logging
import resource
from dataclasses import dataclass

from .. import settings

log = logging.getLogger("launcher.limits")

# File descriptors the launcher needs besides connections: vLLM's pipe, logs, the event loop, imports.
FD_RESERVE = 64


@dataclass(frozen=True)
class FrontDoorLimits:
    """Bounds on what one client, and all clients together, can make the front door hold (defaults: settings.py)."""

    max_header_bytes: int = settings.BY_NAME["LAUNCHER_MAX_HEADER_BYTES"].default
    max_headers: int = settings.BY_NAME["LAUNCHER_MAX_HEADERS"].default
    max_request_line: int = settings.BY_NAME["LAUNCHER_MAX_REQUEST_LINE"].default
    header_timeout: float = settings.BY_NAME["LAUNCHER_HEADER_TIMEOUT"].default
    keep_alive_timeout: int = settings.BY_NAME["LAUNCHER_KEEP_ALIVE_TIMEOUT"].default
    max_connections: int = settings.BY_NAME["LAUNCHER_MAX_CONNECTIONS"].default
    max_body_bytes: int = settings.BY_NAME["LAUNCHER_MAX_BODY_BYTES"].default
    body_timeout: float = settings.BY_NAME["LAUNCHER_BODY_TIMEOUT"].default
    max_buffered_bytes: int = settings.BY_NAME["LAUNCHER_MAX_BUFFERED_BYTES"].default
    upstream_connections: int = settings.BY_NAME["LAUNCHER_UPSTREAM_CONNECTIONS"].default
    upstream_timeout: float = settings.BY_NAME["LAUNCHER_UPSTREAM_TIMEOUT"].default

    @classmethod
    def from_env(cls) -> FrontDoorLimits:
        """The limits from the environment, fitted to this process's file descriptor limit."""
        values = {f.name: settings.get(f"LAUNCHER_{f.name.upper()}") for f in dataclasses.fields(cls)}
        return cls(**values).fitted_to_fd_limit()

    def fitted_to_fd_limit(self) -> FrontDoorLimits:
        """Raise the soft fd limit to the hard one; shrink the connection caps when they would not fit in it."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != hard and hard != resource.RLIM_INFINITY:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
                soft = hard
            except (ValueError, OSError):
                pass
        budget = soft - FD_RESERVE
        if self.max_connections + self.upstream_connections <= budget:
            return self
        clients = max(4, budget * 2 // 3)
        upstream = max(1, budget - clients)
        log.warning(
            "the file descriptor limit is %d: serving at most %d client and %d vLLM connections "
            "(raise `ulimit -n` for more)",
            soft,
            clients,
            upstream,
        )
        return dataclasses.replace(
            self,
            max_connections=min(clients, self.max_connections),
            upstream_connections=min(upstream, self.upstream_connections),
        )
