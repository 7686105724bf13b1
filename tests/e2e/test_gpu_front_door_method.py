"""bench/gpu/front_door.py's arithmetic, on recorded shapes: several clients as one run, vLLM's own token count.

The harness runs on the GPU machine only; what it computes from `vllm bench serve`'s detailed results (vLLM 0.26
benchmarks/serve.py: duration, completed, total_output_tokens, ttfts and itls in seconds) and from vLLM's
generation-token counter is checked here, so a wrong ratio cannot come back from a loan that is hard to repeat.
"""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from bench.gpu import front_door


def client(duration: float, tokens: int, ttfts: list[float], itls: list[list[float]]) -> dict[str, object]:
    return {"duration": duration, "completed": len(ttfts), "total_output_tokens": tokens, "ttfts": ttfts, "itls": itls}


def test_clients_add_up_over_the_longest_duration() -> None:
    run = front_door.aggregate(
        [client(10.0, 1000, [0.1, 0.2], [[0.01, 0.02]]), client(12.5, 1500, [0.3, 0.4], [[0.03], [0.04, 0.05]])]
    )
    assert run["output_throughput"] == pytest.approx(2500 / 12.5)
    assert run["completed"] == 4
    assert run["p50_ttft_ms"] == pytest.approx(300.0)  # over every request of every client
    assert run["p99_ttft_ms"] == pytest.approx(400.0)
    assert run["p50_itl_ms"] == pytest.approx(30.0)  # over every gap of every request


def test_server_count_spans_the_window_in_which_the_counter_moved() -> None:
    sampler = front_door.CounterSampler(port=0)
    # idle at 500 until t=2, generating 100 tokens/s until t=6, idle again at 900
    sampler.samples = [(0.0, 500.0), (1.0, 500.0), (2.0, 500.0), (3.0, 600.0), (4.0, 700.0), (5.0, 800.0)]
    sampler.samples += [(6.0, 900.0), (7.0, 900.0)]
    assert sampler.throughput() == {"server_output_throughput": 100.0, "server_seconds": 4.0, "server_tokens": 400.0}
    sampler.samples = [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)]  # nothing generated: no figure rather than a wrong one
    assert sampler.throughput() == {}


def test_round_ratio_prefers_the_server_count() -> None:
    direct = {"output_throughput": 100.0, "server_output_throughput": 200.0}
    door = {"output_throughput": 110.0, "server_output_throughput": 198.0}
    for side in (direct, door):
        side.update(p50_ttft_ms=10.0, p99_ttft_ms=20.0, p50_itl_ms=1.0, p99_itl_ms=2.0)
    ratios = front_door.compare(direct, door)
    assert ratios["throughput_ratio"] == pytest.approx(0.99)
    assert ratios["client_throughput_ratio"] == pytest.approx(1.1)
    del door["server_output_throughput"]
    assert "throughput_ratio" not in front_door.compare(direct, door)


def test_a_session_is_resumed_only_when_it_is_live_and_measured_the_same_thing(tmp_path: Path) -> None:
    class Ready(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        options = front_door.options_of(["--resume", "--concurrency", "64", "--clients", "4"])
        assert front_door.live_session(tmp_path, options, []) is None  # no session left by an earlier call

        def leave(concurrency: int, port: int) -> None:
            body = {"vllm_args": [], "load": {"concurrency": concurrency, "clients": 4}}
            (tmp_path / front_door.SESSION).write_text(json.dumps({"pid": 1, "port": port, "body": body}))

        leave(64, server.server_address[1])
        assert front_door.live_session(tmp_path, options, []) is not None  # live, the same series
        assert front_door.live_session(tmp_path, options, ["--quantization", "fp8"]) is None  # other vLLM args
        leave(256, server.server_address[1])
        assert front_door.live_session(tmp_path, options, []) is None  # another concurrency
    finally:
        server.shutdown()
        server.server_close()
    leave(64, server.server_address[1])
    assert front_door.live_session(tmp_path, options, []) is None  # the launcher is gone
