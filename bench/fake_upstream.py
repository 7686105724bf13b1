"""A fake OpenAI server that streams SSE as fast as it can: one HTTP chunk per event, no sleeps.

POST /v1/completions answers `max_tokens` events then `data: [DONE]` (with `pace_ms`, that many
milliseconds between events, like a GPU's inter-token latency; paced events carry `"t"`, the
CLOCK_MONOTONIC nanoseconds at which they were written, so a client on the same host measures each
event's delay); GET /v1/models, /health and
/metrics answer small bodies, so the front door's readiness probe and metrics work against it.
Run: python bench/fake_upstream.py PORT (uvloop when installed).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

# One completion event; paced events fill the slot with `"t":<ns>,`, burst events leave it empty.
EVENT = (
    b'data: {%s"id":"cmpl-x","object":"text_completion","choices":[{"index":0,"text":" tok","finish_reason":null}]}\n\n'
)
DONE = b"data: [DONE]\n\n"
STREAM_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def http_chunk(data: bytes) -> bytes:
    """One chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


CHUNK = http_chunk(EVENT % b"")
DONE_CHUNK = http_chunk(DONE) + b"0\r\n\r\n"


def stamped_chunk() -> bytes:
    return http_chunk(EVENT % (b'"t":%d,' % time.monotonic_ns()))


def _plain(body: bytes, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n%s" % (content_type, len(body), body)


class FakeOpenAI(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = bytearray()
        self.writable = asyncio.Event()
        self.writable.set()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = bytes(self.buffer).partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            body, self.buffer = rest[:length], bytearray(rest[length:])
            asyncio.get_running_loop().create_task(self.answer(head.split(b" ")[1], body))

    async def answer(self, path: bytes, body: bytes) -> None:
        if path.startswith(b"/v1/completions"):
            request = json.loads(body or b"{}")
            tokens, pace = request.get("max_tokens", 16), request.get("pace_ms", 0) / 1000
            if not request.get("stream"):
                self.transport.write(_plain(b'{"choices":[{"index":0,"text":" tok","finish_reason":"length"}]}'))
                return
            self.transport.write(STREAM_HEAD)
            for _ in range(tokens):
                if pace:
                    await asyncio.sleep(pace)
                if not self.writable.is_set():
                    await self.writable.wait()
                self.transport.write(stamped_chunk() if pace else CHUNK)
            self.transport.write(DONE_CHUNK)
        elif path.startswith(b"/metrics"):
            self.transport.write(_plain(b"fake_upstream_up 1\n", b"text/plain"))
        else:
            self.transport.write(_plain(b'{"object":"list","data":[{"id":"fake","object":"model"}]}'))


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(FakeOpenAI, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(int(sys.argv[1])))
