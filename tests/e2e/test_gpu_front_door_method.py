"""bench/gpu/front_door.py's arithmetic, on recorded shapes: several clients as one run, vLLM's own token count.

The harness runs on the GPU machine only; what it computes from `vllm bench serve`'s detailed results (vLLM 0.26
benchmarks/serve.py: duration, completed, total_output_tokens, ttfts and itls in seconds) and from vLLM's
generation-token counter is checked here, so a wrong ratio cannot come back from a loan that is hard to repeat.
"""

from __future__ import annotations

import http.server
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench.gpu import front_door, render_performance


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
    figures = sampler.throughput()
    assert figures["server_output_throughput"] == 100.0
    assert (figures["server_seconds"], figures["server_tokens"]) == (4.0, 400.0)
    sampler.samples = [(0.0, 5.0), (1.0, 5.0), (2.0, 5.0)]  # nothing generated: no figure rather than a wrong one
    assert sampler.throughput() == {}


def test_steady_window_leaves_out_the_ramp_and_the_drain() -> None:
    sampler = front_door.CounterSampler(port=0)
    # 1000 tokens: 50 in the first second (ramp-up), then 100 tokens/s for 9 s, then the last 50 over 5 s (drain)
    sampler.samples = [(0.0, 0.0), (1.0, 50.0)] + [(1.0 + i, 50.0 + 100 * i) for i in range(1, 10)]
    sampler.samples += [(15.0, 1000.0), (16.0, 1000.0)]
    figures = sampler.throughput()
    assert figures["server_output_throughput"] == pytest.approx(1000 / 15)  # the whole run, ramp and drain in
    assert figures["server_steady_output_throughput"] == pytest.approx(100.0)  # 5% .. 95% of the tokens: 1 s .. 10 s
    assert figures["server_steady_seconds"] == pytest.approx(9.0)


def test_round_ratio_prefers_the_servers_steady_count() -> None:
    direct = {"output_throughput": 100.0, "server_output_throughput": 200.0, "server_steady_output_throughput": 210.0}
    door = {"output_throughput": 110.0, "server_output_throughput": 198.0, "server_steady_output_throughput": 205.8}
    for side in (direct, door):
        side.update(p50_ttft_ms=10.0, p99_ttft_ms=20.0, p50_itl_ms=1.0, p99_itl_ms=2.0)
    ratios = front_door.compare(direct, door)
    assert ratios["throughput_ratio"] == pytest.approx(0.98)
    assert ratios["server_whole_run_throughput_ratio"] == pytest.approx(0.99)
    assert ratios["client_throughput_ratio"] == pytest.approx(1.1)
    del door["server_steady_output_throughput"]
    assert "throughput_ratio" not in front_door.compare(direct, door)


def abba_rounds(rates: list[tuple[float, float]]) -> list[dict[str, object]]:
    """Rounds in the harness's order (A B, B A, ...) from (direct, front door) steady rates."""
    rounds: list[dict[str, object]] = []
    for index, (a, b) in enumerate(rates):
        direct, door = ({"server_steady_output_throughput": rate, "server_steady_seconds": 61.0} for rate in (a, b))
        for side in (direct, door):
            side.update(p50_ttft_ms=10.0, p99_ttft_ms=20.0, p50_itl_ms=1.0, p99_itl_ms=2.0)
        order = list(front_door.round_order(["direct", "front_door"], index))
        rounds.append(
            {"order": order, "direct": direct, "front_door": door, "compare": front_door.compare(direct, door)}
        )
    return rounds


def test_round_pairs_cancel_a_linear_drift_the_rounds_alone_show_as_spread() -> None:
    # no overhead, throughput falling 1% per run: A1 1000, B1 990, B2 980, A2 970, A3 960, B3 950
    summary = front_door.summary(abba_rounds([(1000.0, 990.0), (970.0, 980.0), (960.0, 950.0)]))
    per_round = summary["throughput_ratio"]
    assert per_round["spread"] > 0.02  # 0.990, 1.010, 0.990: the drift, not the front door
    pairs = summary["throughput_pair_ratio"]
    assert len(pairs["per_pair"]) == 2
    assert all(ratio == pytest.approx(1.0, abs=5e-4) for ratio in pairs["per_pair"])
    assert summary["steady_throughput_drift"] == {
        "direct": pytest.approx(-0.04),
        "front_door": pytest.approx(-0.0404, abs=1e-4),
    }


def test_a_real_overhead_survives_the_pairing() -> None:
    summary = front_door.summary(abba_rounds([(1000.0, 970.0), (1000.0, 970.0), (1000.0, 970.0)]))
    assert summary["throughput_pair_ratio"]["median"] == pytest.approx(0.97)
    assert summary["steady_throughput_drift"] == {"direct": 0.0, "front_door": 0.0}
    assert "throughput_pair_ratio" not in front_door.summary(abba_rounds([(1000.0, 970.0)]))  # one round: no pair


def test_runs_are_sized_for_a_steady_window_of_min_seconds() -> None:
    options = front_door.options_of(["--min-seconds", "60", "--prompts", "100"])
    prompts = front_door.prompts_for(rate=30.0, options=options, clients=4)
    assert prompts % 4 == 0
    assert prompts * 0.9 / 30.0 >= 60  # the steady 90% of the run at 30 prompts/s lasts the minute
    rate = front_door.rate_of({"server_steady_output_throughput": 7680.0, "request_throughput": 20.0})
    assert rate == pytest.approx(30.0)  # vLLM's token rate over 256 output tokens, not the clients' count


def test_sides_of_different_speed_each_get_the_steady_minute() -> None:
    # the H200 precision run of 2026-12-02 sized its runs at BF16's rate: FP8's steady windows lasted 48-50 s
    options = front_door.options_of(["--min-seconds", "60", "--prompts", "100"])
    bf16, fp8 = ({"server_steady_output_throughput": rate * 256} for rate in (25.0, 34.0))
    prompts = front_door.prompts_for_all([bf16, fp8], options, clients=4)
    for side in (bf16, fp8):
        assert prompts * 0.9 / front_door.rate_of(side) >= 60


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
        assert front_door.live_session(tmp_path, options) is None  # no session left by an earlier call

        def leave(clients: int, port: int, args: list[str] | None = None) -> None:
            launcher = {"name": "bf16", "args": args or [], "pid": 1, "port": port, "direct": port}
            record = {"name": "bf16", "vllm_args": args or [], "ready_seconds": 100.0, "launcher_start": {}}
            body = {"launchers": [record], "load": {"clients": clients, "range_ratio": 0.0}, "noise_floor": False}
            (tmp_path / front_door.SESSION).write_text(json.dumps({"launchers": [launcher], "body": body}))

        leave(4, server.server_address[1])
        assert front_door.live_session(tmp_path, options) is not None  # live, the same vLLM and load
        fp8 = front_door.options_of(["--resume", "--clients", "4", "--quantization", "fp8"])
        assert front_door.live_session(tmp_path, fp8) is None  # other vLLM arguments
        wider = front_door.options_of(["--resume", "--clients", "4", "--range-ratio", "0.5"])
        assert front_door.live_session(tmp_path, wider) is None  # another load
        leave(8, server.server_address[1])
        assert front_door.live_session(tmp_path, options) is None  # the load split otherwise
    finally:
        server.shutdown()
        server.server_close()
    leave(4, server.server_address[1])
    assert front_door.live_session(tmp_path, options) is None  # the launcher is gone


def test_precisions_get_one_launcher_each_and_rounds_compare_to_the_first() -> None:
    options = front_door.options_of(["--precisions", "bf16", "fp8", "fp8-kv-fp8", "--kv-cache-gib", "26"])
    launchers = front_door.launchers_of(options)
    assert [launcher["name"] for launcher in launchers] == ["bf16", "fp8", "fp8-kv-fp8"]
    assert all("--kv-cache-memory-bytes" in launcher["args"] for launcher in launchers)  # no memory profiling
    run = {"output_throughput": 100.0, "p50_ttft_ms": 10.0, "p99_ttft_ms": 20.0, "p50_itl_ms": 1.0, "p99_itl_ms": 2.0}
    entry = {
        "bf16": {**run, "server_steady_output_throughput": 100.0},
        "fp8": {**run, "server_steady_output_throughput": 110.0},
        "fp8-kv-fp8": {**run, "server_steady_output_throughput": 112.0},
    }
    ratios = front_door.round_compare(entry, ["bf16", "fp8", "fp8-kv-fp8"])
    assert ratios["fp8_throughput_ratio"] == pytest.approx(1.1)
    assert ratios["fp8-kv-fp8_throughput_ratio"] == pytest.approx(1.12)
    session = {"launchers": [{"name": n, "port": 10 + i, "direct": 20 + i} for i, n in enumerate(entry)]}
    assert front_door.sides_of(session, noise_floor=False) == [
        ("bf16", 10, 20),
        ("fp8", 11, 21),
        ("fp8-kv-fp8", 12, 22),
    ]
    one = {"launchers": [{"name": "bf16", "port": 10, "direct": 20}]}
    assert front_door.sides_of(one, noise_floor=False) == [("direct", 20, 20), ("front_door", 10, 20)]
    assert front_door.sides_of(one, noise_floor=True) == [("direct", 20, 20), ("direct_again", 20, 20)]


def test_stopping_a_launcher_this_process_started_does_not_wait_for_its_zombie() -> None:
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    started = time.monotonic()
    front_door.stop_group(child.pid)
    assert time.monotonic() - started < 10  # reaped at the first check, not SIGKILLed after 60 s


def test_a_group_left_as_a_zombie_nobody_here_reaps_counts_as_stopped() -> None:
    # the group's leader is the child of another process that never waits for it: a launcher an earlier device
    # call started, in a container whose init does not reap
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, time; leader = subprocess.Popen(['true'], start_new_session=True);"
            " print(leader.pid, flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None
        leader = int(parent.stdout.readline())
        time.sleep(0.5)
        assert Path(f"/proc/{leader}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
        assert not front_door.group_alive(leader)
        started = time.monotonic()
        front_door.stop_group(leader)
        assert time.monotonic() - started < 10  # not the 60 s and a SIGKILL
    finally:
        parent.kill()
        parent.wait()
    own = subprocess.Popen(["sleep", "30"], start_new_session=True)
    assert front_door.group_alive(own.pid)
    own.kill()
    own.wait()


def test_prefix_cache_share_of_a_run() -> None:
    queries, hits = front_door.PREFIX_COUNTERS
    before = {queries: 1000.0, hits: 100.0}
    assert front_door.prefix_hit_rate(before, {queries: 11000.0, hits: 600.0}) == {"prefix_cache_hit_rate": 0.05}
    assert front_door.prefix_hit_rate(before, {queries: 1000.0, hits: 100.0}) == {}  # no prompt in the run
    assert front_door.prefix_hit_rate({}, {queries: 5.0, hits: 1.0}) == {}  # a vLLM without the counters


def test_load_prompts_do_not_share_prefixes(tmp_path: Path) -> None:
    """vLLM's random dataset takes consecutive ids from a random offset into the tokenizer's vocabulary: the load's
    tokenizer has the model's whole vocabulary (over build_tokenizer's ~450 ids the prompts were shifts of one
    cycle), and decoding then encoding keeps every id (the dataset re-encodes what it decoded)."""
    from transformers import AutoTokenizer

    from bench.gpu import models

    models.build_wide_tokenizer(tmp_path, 128256)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    ids = list(range(5000, 5512))
    assert tokenizer.encode(tokenizer.decode(ids), add_special_tokens=False) == ids  # the round trip keeps the ids
    assert tokenizer.vocab_size == 128256


def test_a_dry_run_defaults_to_a_tiny_load_the_command_line_can_override() -> None:
    dry = front_door.options_of(["--dry-run"])
    assert (dry.prompts, dry.min_seconds, dry.concurrency) == (16, 2.0, [4])
    assert front_door.options_of(["--dry-run", "--min-seconds", "5"]).min_seconds == 5
    assert front_door.options_of([]).min_seconds == 60  # the GPU's defaults are untouched


def test_histogram_quantiles_are_prometheus_interpolation_within_the_bucket() -> None:
    # 100 observations: 40 up to 0.1 ms, 50 more up to 0.25 ms, 9 up to 1 ms, 1 above every finite bound
    buckets = {0.0001: 40.0, 0.00025: 90.0, 0.001: 99.0, math.inf: 100.0}
    assert front_door.histogram_quantile(buckets, 0.5) == pytest.approx(0.0001 + 0.00015 * 10 / 50)
    assert front_door.histogram_quantile(buckets, 0.2) == pytest.approx(0.00005)  # from 0 inside the first bucket
    assert front_door.histogram_quantile(buckets, 0.995) == 0.001  # in +Inf: the highest finite bound
    assert front_door.histogram_quantile({0.001: 0.0, math.inf: 0.0}, 0.5) is None


def test_the_front_doors_own_account_is_the_histograms_growth_over_the_run() -> None:
    total, lag = "launcher_added_latency_seconds/total", "launcher_event_loop_lag_seconds"
    before = {total: {0.0005: 1000.0, 0.001: 1000.0, math.inf: 1000.0}, lag: {0.0005: 5.0, 0.001: 5.0, math.inf: 5.0}}
    after = {total: {0.0005: 1000.0, 0.001: 1100.0, math.inf: 1100.0}, lag: {0.0005: 15.0, 0.001: 15.0, math.inf: 15.0}}
    own = front_door.own_latency(before, after)
    # the earlier runs' 1,000 fast requests are not this run's: all 100 of its own took 0.5-1 ms
    assert own["added_latency/total"] == {"count": 100, "p50_ms": 0.75, "p99_ms": pytest.approx(0.995)}
    assert own["event_loop_lag"]["count"] == 10 and own["event_loop_lag"]["p50_ms"] == 0.25
    door = {"p50_ttft_ms": 10.0, "p99_ttft_ms": 20.0, "p50_itl_ms": 1.0, "p99_itl_ms": 2.0, "front_door_own": own}
    direct = {key: value for key, value in door.items() if key != "front_door_own"}
    compared = front_door.compare(direct, door)
    assert (compared["own_first_chunk_added_p50_ms"], compared["own_loop_lag_p50_ms"]) == (0.75, 0.25)
    assert "own_loop_lag_p99_ms" in front_door.summary([{"order": ["direct"], "compare": compared, "direct": {}}])


def _record(date: str, rounds: dict[int, int], clients: int = 4) -> dict[str, object]:
    """A front-door record of one session: `rounds` per concurrency."""
    return {
        **{key: "x" for key in ("gpu", "driver", "torch", "vllm", "model")},
        "results": "front-door",
        "load": {"clients": clients},
        "noise_floor": False,
        "dry_run": False,
        "launchers": [{"name": "bf16", "vllm_args": [], "ready_seconds": 100}],
        "date": date,
        "seconds": 400,
        "series": [{"concurrency": c, "rounds": [{"round": i + 1} for i in range(n)]} for c, n in rounds.items()],
    }


def test_a_merge_keeps_every_sessions_series_and_rounds_never_mix() -> None:
    from bench.gpu import merge_front_door

    first, second = _record("2026-12-02T14:19", {64: 3, 256: 2}), _record("2026-12-02T17:41", {256: 4, 64: 1})
    merged = merge_front_door.merge(first, second)
    assert [(s["concurrency"], s["session"], len(s["rounds"])) for s in merged["series"]] == [
        (64, "2026-12-02T14:19", 3),
        (64, "2026-12-02T17:41", 1),
        (256, "2026-12-02T14:19", 2),
        (256, "2026-12-02T17:41", 4),
    ]
    assert [s["date"] for s in merged["sessions"]] == ["2026-12-02T14:19", "2026-12-02T17:41"]
    assert merge_front_door.merge(merged, second) == merged  # the same session merged again replaces its own
    with pytest.raises(merge_front_door.Mismatch, match="load"):
        merge_front_door.merge(merged, _record("2026-12-03T09:00", {64: 3}, clients=8))


def test_spread_lengths_and_precisions_are_records_of_their_own() -> None:
    kind = front_door.results_kind
    assert kind(front_door.options_of([])) == "front-door"
    assert kind(front_door.options_of(["--range-ratio", "0.5"])) == "front-door-range"
    assert kind(front_door.options_of(["--precisions", "bf16", "fp8"])) == "front-door-precisions"
    assert kind(front_door.options_of(["--noise-floor", "--range-ratio", "0.5"])) == "front-door-noise-floor-range"
    assert set(render_performance.KINDS) >= {kind(front_door.options_of(a)) for a in ([], ["--noise-floor"])}


def test_the_cpu_share_of_each_process_of_a_group_over_a_run() -> None:
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.monotonic() + 30\nwhile time.monotonic() < end: pass"],
        start_new_session=True,
    )
    idle = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        meter = front_door.CpuMeter({"front door": busy.pid, "vLLM": idle.pid})
        time.sleep(1.0)
        shares = meter.shares()
        assert shares["front door"] > 0.5  # one process spinning: most of a core
        assert "vLLM" not in shares  # idle: left out
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()
    groups = front_door.process_groups([{"name": "bf16", "pid": 10, "vllm_pid": 11}, {"name": "fp8", "pid": 20}])
    assert groups == {"bf16 front door": 10, "bf16 vLLM": 11, "fp8 front door": 20}
