"""The front door's limits: every bound a server exposed to a network must have, from `LAUNCHER_*` variables.

Each one is a field with its default and its variable (`LAUNCHER_` + the field name in capitals); a bad value is
one line naming the variable, never a traceback. The README's "Security" section lists them.
"""

from __future__ import annotations

import logging
import resource

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import LauncherError

log = logging.getLogger("launcher.limits")

MIB = 1024 * 1024
# File descriptors the launcher needs besides connections: vLLM's pipe, logs, the event loop, imports.
FD_RESERVE = 64


class FrontDoorLimits(BaseSettings):
    """Bounds on what one client, and all clients together, can make the front door hold."""

    model_config = SettingsConfigDict(env_prefix="LAUNCHER_", extra="ignore", frozen=True)

    max_header_bytes: int = Field(32 * 1024, ge=1024, description="request line + headers of one request, bytes "
                                  "(431 past it)")
    max_headers: int = Field(100, ge=8, description="header fields in one request (431 past it)")
    max_request_line: int = Field(8 * 1024, ge=256, description="method + target + version, bytes (414 past it)")
    header_timeout: float = Field(10.0, gt=0, description="seconds from a request's first byte to its last header "
                                  "(408 and close past it)")
    keep_alive_timeout: int = Field(5, ge=1, description="seconds an idle keep-alive connection stays open")
    max_connections: int = Field(2048, ge=4, description="open client connections; past it the oldest idle one is "
                                 "closed, or the new one when none is idle")
    max_body_bytes: int = Field(32 * MIB, ge=1024, description="one request body (413 past it)")
    body_timeout: float = Field(30.0, gt=0, description="seconds for a whole request body to arrive (408 past it)")
    max_buffered_bytes: int = Field(256 * MIB, ge=1024, description="request bodies held by all requests together "
                                    "(503 + Retry-After past it)")
    upstream_connections: int = Field(1024, ge=1, description="connections to vLLM at once (more requests wait)")
    upstream_timeout: float = Field(600.0, gt=0, description="seconds vLLM may take to answer a non-streaming "
                                    "request (504 past it); streams are not cut")

    @classmethod
    def from_env(cls) -> FrontDoorLimits:
        """The limits from the environment, fitted to this process's file descriptor limit."""
        try:
            limits = cls()
        except ValidationError as exc:
            error = exc.errors()[0]
            name = f"LAUNCHER_{str(error['loc'][0]).upper()}"
            raise LauncherError(f"{name}={error.get('input')!r} is not valid: {error['msg']} "
                                f"(unset it for the default)") from None
        return limits.fitted_to_fd_limit()

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
        log.warning("the file descriptor limit is %d: serving at most %d client and %d vLLM connections "
                    "(raise `ulimit -n` for more)", soft, clients, upstream)
        return self.model_copy(update={"max_connections": min(clients, self.max_connections),
                                       "upstream_connections": min(upstream, self.upstream_connections)})

    @classmethod
    def documented(cls) -> list[tuple[str, object, str]]:
        """(variable, default, description) of every limit, for the README and `--help`."""
        return [(f"LAUNCHER_{name.upper()}", info.default, info.description or "")
                for name, info in cls.model_fields.items()]
