"""uvicorn's httptools protocol with the bounds it lacks: header bytes and count, request-line length, a header
read timeout, and a connection cap that closes idle connections first.

uvicorn bounds keep-alive idle time (`timeout_keep_alive`) and buffers at most 64 KiB of a body per connection,
but its httptools parser accepts headers of any size, any count and at any pace, and it never closes a
connection that sent half a request line. Those are bounded here, where the bytes arrive, before any ASGI code
runs: 431 / 414 / 408 with `Connection: close`, a log line at debug level, and the socket is closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .limits import FrontDoorLimits

log = logging.getLogger("launcher.http")

_REASONS = {
    408: b"Request Timeout",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}


class _Refused(Exception):
    """Raised inside a parser callback to stop parsing; the protocol answers `status` and closes."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """One client connection; `limits` is set on the class by `protocol_for` before the server starts."""

    limits: ClassVar[FrontDoorLimits]
    # Connections by arrival; the ones without a request in progress are closed first when the cap is reached.
    _open: ClassVar[dict[BoundedHttpToolsProtocol, float]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_headers = False
        self._header_bytes = 0
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refusal: _Refused | None = None

    # -- connections ---------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        opened = type(self)._open
        opened[self] = time.monotonic()
        if self._over_limit(opened) and not self._evict_idle():
            log.warning(
                "connection limit (%d, LAUNCHER_MAX_CONNECTIONS) reached with every connection busy; "
                "refusing a new one",
                self.limits.max_connections,
            )
            self._answer(503, "too many connections; retry later", retry_after=True)
            return
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        type(self)._open.pop(self, None)
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _over_limit(self, opened: dict[BoundedHttpToolsProtocol, float]) -> bool:
        """More open connections than the cap, not counting those already closing (counted only near the cap)."""
        cap = self.limits.max_connections
        return len(opened) > cap and sum(1 for c in opened if not c.transport.is_closing()) > cap

    def _busy(self) -> bool:
        """A request is being answered (its headers arrived and its response has not finished)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _evict_idle(self) -> bool:
        """Close the oldest connection that has no request in progress; False when every one is busy."""
        for connection in type(self)._open:
            if connection is not self and not connection._busy() and not connection.transport.is_closing():
                log.info(
                    "connection limit (%d) reached: closing the oldest idle connection", self.limits.max_connections
                )
                connection._answer(408 if connection._in_headers else None, "idle connection closed")
                return True
        return False

    # -- the request head ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.transport.is_closing():
            return
        super().data_received(data)
        # Still inside a request head after this chunk: all of it was head (a body only follows a complete head).
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._answer(
                    431,
                    f"the request head is larger than {self.limits.max_header_bytes} bytes (LAUNCHER_MAX_HEADER_BYTES)",
                )

    def send_400_response(self, msg: str) -> None:
        refused = self._parser_refusal()
        if refused is not None:
            self._answer(refused.status, refused.message)
        else:
            super().send_400_response(msg)

    def _parser_refusal(self) -> _Refused | None:
        """The _Refused a callback raised, which httptools wraps in HttpParserCallbackError."""
        refusal, self._refusal = self._refusal, None
        return refusal

    def _refuse(self, status: int, message: str) -> None:
        self._refusal = _Refused(status, message)
        raise self._refusal

    def on_message_begin(self) -> None:
        self._in_headers = True
        self._header_bytes = self._header_count = 0
        if self._header_timer is None:
            self._start_header_timer()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > self.limits.max_request_line:
            self._refuse(
                414,
                f"the request target is longer than {self.limits.max_request_line} bytes (LAUNCHER_MAX_REQUEST_LINE)",
            )

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._refuse(
                431, f"the request has more than {self.limits.max_headers} header fields (LAUNCHER_MAX_HEADERS)"
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    # -- timers and answers ------------------------------------------------------------------------------

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._header_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timed_out(self) -> None:
        self._header_timer = None
        if self._busy() or self.transport.is_closing():
            return
        if self._in_headers:
            self._answer(
                408,
                f"the request head did not arrive within {self.limits.header_timeout:g} s (LAUNCHER_HEADER_TIMEOUT)",
            )
        else:
            self._answer(None, "")  # a new connection that never sent a byte: close it quietly

    def _answer(self, status: int | None, message: str, retry_after: bool = False) -> None:
        """Write a short plain-text answer (or none) and close the connection."""
        self._cancel_header_timer()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        if status is not None:
            log.debug("refused a connection from %s: %d %s", self.client, status, message)
            body = message.encode("ascii", "replace")
            head = [
                b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Error")),
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n",
            ]
            if retry_after:
                head.append(b"retry-after: 5\r\n")
            self.transport.write(b"".join(head) + b"\r\n" + body)
        self.transport.close()


def protocol_for(limits: FrontDoorLimits) -> type[BoundedHttpToolsProtocol]:
    """A protocol class bound to these limits (uvicorn instantiates it per connection)."""
    return type("FrontDoorHttpProtocol", (BoundedHttpToolsProtocol,), {"limits": limits, "_open": {}})
