"""A stand-in for `vllm serve` in `ground_truth run --dry-run`: the harness's scheduling, limits and files, no GPU.

It takes vLLM's arguments, waits DRY_RUN_SECONDS (default 3), then serves /health and /v1/completions on --port
when --expect is served, or prints a `ValueError:` line and exits 1 when it is failed. DRY_RUN_HANG=1 makes
it never answer (to try the per-case time limit). Standard library only: it runs under any python3.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"object": "text_completion", "choices": [{"index": 0, "text": " dry"}]}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--expect", default="served")
    options, rest = parser.parse_known_args()
    print(f"dry run: arguments {' '.join(rest)}", flush=True)
    time.sleep(float(os.environ.get("DRY_RUN_SECONDS", "3")))
    if os.environ.get("DRY_RUN_HANG"):
        time.sleep(10**6)
    if options.expect != "served":
        print("ValueError: dry run: this case is expected to fail", flush=True)
        return 1
    HTTPServer(("127.0.0.1", options.port), Handler).serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
