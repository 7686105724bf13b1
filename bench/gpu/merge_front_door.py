"""Fold a returned front-door record into bench/results/<gpu>-front-door.json, series by series.

A series (one concurrency's warm-up and A-B-B-A rounds) is measured within one session: one vLLM process, one
launcher. A loan has room for only so many rounds, so a later session may complete one concurrency and only start
another. The merged record keeps every session's series, each naming the session that measured it (`session`: that
record's date; the same session merged again replaces its own), and `sessions` keeps each session's facts: its
launchers' start and its seconds. Rounds of different sessions are never mixed. Records that measured different
things (GPU, driver, torch, vLLM, load, launcher arguments, mode) are not merged.

    python -m bench.gpu.merge_front_door bench/out/gpu/h200-front-door.json   # into bench/results/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from . import machine

SAME = ("gpu", "driver", "torch", "vllm", "results", "model", "load", "noise_floor", "dry_run")  # both share them
SESSION = ("date", "seconds", "launchers", "not_started", "launcher_left_running")  # what one session's record says


class Mismatch(ValueError):
    """The two records did not measure the same thing."""


def _measures(record: dict[str, Any]) -> dict[str, Any]:
    launchers = [(launcher["name"], launcher["vllm_args"]) for launcher in record["launchers"]]
    return {**{key: record.get(key) for key in SAME}, "launchers": launchers}


def _sessions(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A record's sessions: those of a merged one, else the record itself as one."""
    return record.get("sessions") or [{key: record[key] for key in SESSION if key in record}]


def merge(kept: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """`kept` and `new` as one record: every session's series, by concurrency, then session."""
    if _measures(kept) != _measures(new):
        differ = [key for key, value in _measures(kept).items() if _measures(new)[key] != value]
        raise Mismatch(f"the records measured different things ({', '.join(differ)}): keep them apart")
    series: dict[tuple[int, str], dict[str, Any]] = {}
    for record in (kept, new):
        for one in record["series"]:
            session = one.get("session", record["date"])
            series[(one["concurrency"], session)] = {**one, "session": session}
    used = {session for _, session in series}
    sessions = {s["date"]: s for s in _sessions(kept) + _sessions(new) if s["date"] in used}
    body = {key: value for key, value in new.items() if key not in (*SESSION, "series", "sessions")}
    body["date"] = max(used)
    body["launchers"] = new["launchers"]
    body["sessions"] = sorted(sessions.values(), key=lambda s: s["date"])
    body["series"] = [series[key] for key in sorted(series)]
    return body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a front-door record a device call returned")
    options = parser.parse_args(argv)
    try:
        new = json.loads(options.run.read_text())
        target = machine.results_path(new["gpu"], new["results"])
        merged = merge(json.loads(target.read_text()), new) if target.is_file() else new
    except (OSError, json.JSONDecodeError, KeyError, Mismatch) as exc:
        print(f"merge_front_door: {exc}", file=sys.stderr)
        return 2
    target.write_text(json.dumps(merged, indent=2) + "\n")
    kept = ", ".join(f"c{s['concurrency']} {len(s['rounds'])} rounds ({s['session']})" for s in merged["series"])
    print(f"{target.relative_to(machine.ROOT)}: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
