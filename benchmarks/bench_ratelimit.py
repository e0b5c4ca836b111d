"""Figure 5: 500 paid submissions while the API refuses half of them with 429 + Retry-After.

250 lanes (think: 250 workers) submit 2 videos each through their own VeoHook, at once. The
emulator's ``rate_limit`` fault refuses the first 250 requests (no job created) with
``Retry-After: 1``; every refused submission must be retried, not before Retry-After, and be
accepted exactly once (the emulator counts jobs per body). The ideal schedule is the same
submissions without the fault (measured first, same run) plus one Retry-After per round of
refusals (``ceil(refusals / lanes)``); the target is <= 1.5x that.

    python -m benchmarks.bench_ratelimit [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from benchmarks._common import TOKEN, Row, Summary, child_json

FULL: dict[str, Any] = {"lanes": 250, "per_lane": 2, "retry_after": 1}
SMOKE: dict[str, Any] = {"lanes": 5, "per_lane": 2, "retry_after": 1}
PATH = "/veo/videos"


def _lane(lane: int, per_lane: int, tag: str, events: list[tuple[str, str, float, int]], errors: list[str]) -> None:
    """One worker: its own hook (and client), its submissions one after another."""
    from veo_provider.hooks.veo import VeoHook
    from veo_provider.models.requests import request_from_arguments

    def on_request(request: Any) -> None:
        events.append((json.loads(request.content)["prompt"], "send", time.monotonic(), 0))

    def on_response(response: Any) -> None:
        events.append(
            (json.loads(response.request.content)["prompt"], "answer", time.monotonic(), response.status_code)
        )

    hook = VeoHook("veo_default")
    hook.get_conn().event_hooks = {"request": [on_request], "response": [on_response]}
    for i in range(per_lane):
        request = request_from_arguments("videos", {"prompt": f"{tag} lane {lane} video {i}", "model": "veo3"}, None)
        request.async_ = True
        try:
            hook.submit(request)
        except Exception as exc:  # counted: the figure says how many were not accepted
            errors.append(f"{type(exc).__name__}: {exc}")


def _child(lanes: int, per_lane: int, tag: str) -> dict[str, Any]:
    """Runs in the measured subprocess: all lanes start together; the wall time until the last is done."""
    import veo_provider.hooks.veo  # noqa: F401 - import cost is not what we measure

    events: list[tuple[str, str, float, int]] = []
    errors: list[str] = []
    threads = [threading.Thread(target=_lane, args=(i, per_lane, tag, events, errors)) for i in range(lanes)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - start
    return {"seconds": seconds, "errors": errors[:5], "failed": len(errors), "min_wait": _min_wait(events)}


def _min_wait(events: list[tuple[str, str, float, int]]) -> float | None:
    """Shortest time from a 429 answer to the next attempt of the same submission (None: no 429)."""
    waits = []
    refused_at: dict[str, float] = {}
    for prompt, what, at, status in sorted(events, key=lambda e: e[2]):
        if what == "answer" and status == 429:
            refused_at[prompt] = at
        elif what == "send" and prompt in refused_at:
            waits.append(at - refused_at.pop(prompt))
    return min(waits) if waits else None


def _measure(url: str, size: dict[str, Any], tag: str) -> dict[str, Any]:
    conn = {"conn_type": "veo", "host": url, "password": TOKEN}
    env = {**os.environ, "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn), "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
    args = ["--child", "--lanes", str(size["lanes"]), "--per-lane", str(size["per_lane"]), "--tag", tag]
    return child_json("benchmarks.bench_ratelimit", args, "the submissions", env=env)


def run(smoke: bool) -> Summary:
    from veo_provider.testing.emulator import VeoEmulator

    started = time.monotonic()
    size = SMOKE if smoke else FULL
    total = size["lanes"] * size["per_lane"]
    refusals = total // 2
    with VeoEmulator(generation_seconds=60.0) as emu:
        ideal_run = _measure(emu.url, size, "no fault")
        emu.reset()
        emu.set_faults(rate_limit={"times": refusals, "retry_after": size["retry_after"], "path": PATH})
        storm = _measure(emu.url, size, "429 storm")
        stats = emu.stats()
    refused = stats["responses_per_path"].get(PATH, {}).get("429", 0)
    ideal = ideal_run["seconds"] + math.ceil(refused / size["lanes"]) * size["retry_after"]
    honoured = storm["min_wait"] is not None and storm["min_wait"] >= size["retry_after"] - 0.01
    summary = Summary(
        5, f"{total} submissions, {refused} refused (429)", "ideal schedule", "smoke" if smoke else "full"
    )
    summary.rows = [
        Row("total time (s)", storm["seconds"], ideal, "<= 1.5x", storm["seconds"] <= 1.5 * ideal),
        Row("accepted", stats["jobs_created"], total, "all", stats["jobs_created"] == total and not storm["failed"]),
        Row("duplicate jobs", sum(n - 1 for n in stats["jobs_per_body"].values()), None, "0"),
        Row("shortest wait after a 429 (s)", storm["min_wait"] or math.nan, size["retry_after"], ">= Retry-After"),
    ]
    summary.rows[2].met = summary.rows[2].ours == 0
    summary.rows[3].met = honoured
    summary.notes = {"no-fault run (s)": round(ideal_run["seconds"], 2), "refusals": refused}
    if storm["errors"]:
        summary.notes["errors"] = storm["errors"]
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny size, run by the test suite (no timing)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--lanes", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--per-lane", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tag", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = _child(args.lanes, args.per_lane, args.tag)
        print(json.dumps(result))
        return result
    return run(args.smoke).print()


if __name__ == "__main__":
    main()
