"""Waiting on many Veo jobs at once: our VeoTrigger vs. a naive asyncio loop with a client per job.

Each side runs in a fresh subprocess (so RSS is its own) against the same local emulator; both
wait for N jobs of the same length, polling every second. We report RSS growth, CPU seconds and
status requests per job, and the ratio ours / baseline (lower is better).

    python -m benchmarks.bench_wait [--jobs 200] [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import httpx

TOKEN = "test-token"


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


async def _ours(url: str, ids: list[str]) -> None:
    from veo_provider.triggers.veo import VeoTrigger

    os.environ["AIRFLOW_CONN_VEO_DEFAULT"] = json.dumps({"conn_type": "veo", "host": url, "password": TOKEN})
    deadline = time.time() + 300
    args = {"conn_id": "veo_default", "deadline": deadline, "poll_interval": 1, "first_check_at": time.time() + 1}
    triggers = [VeoTrigger(veo_task_id=i, **args) for i in ids]
    events = await asyncio.gather(*(t.wait() for t in triggers))
    assert all(e["status"] == "success" for e in events), events[:3]


async def _baseline(url: str, ids: list[str]) -> None:
    """What a first version usually looks like: one client (and SSL context) per waiting job."""

    async def wait(task_id: str) -> None:
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {TOKEN}"}) as client:
            await asyncio.sleep(1)
            while True:
                r = await client.post(f"{url}/veo/tasks", json={"id": task_id, "action": "retrieve"})
                data = r.json().get("response") or {}
                if data.get("data") and data["data"][0].get("video_url"):
                    return
                await asyncio.sleep(1)

    await asyncio.gather(*(wait(i) for i in ids))


def _submit(url: str, n: int) -> list[str]:
    headers = {"authorization": f"Bearer {TOKEN}"}
    with httpx.Client(headers=headers) as client:
        body = {"action": "text2video", "prompt": "p", "async": True}
        return [client.post(f"{url}/veo/videos", json={**body, "prompt": f"p{i}"}).json()["task_id"] for i in range(n)]


def _child(kind: str, url: str, n: int) -> None:
    """Runs in the measured subprocess; prints one JSON line."""
    # Import cost is not what we measure.
    import veo_provider.hooks.veo
    import veo_provider.triggers.veo  # noqa: F401

    ids = _submit(url, n)  # not measured: both sides wait for the same, freshly started jobs
    rss0, cpu0, t0 = _rss_mb(), time.process_time(), time.monotonic()
    asyncio.run((_ours if kind == "ours" else _baseline)(url, ids))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(json.dumps({"rss_mb": peak - rss0, "cpu_s": time.process_time() - cpu0, "wall_s": time.monotonic() - t0}))


def _measure(kind: str, url: str, n: int) -> dict[str, Any]:
    httpx.post(f"{url}/_emulator/reset")
    out = (
        subprocess.run(
            [sys.executable, "-m", "benchmarks.bench_wait", "--child", kind, "--url", url, "--jobs", str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    result = json.loads(out)
    polls = httpx.get(f"{url}/_emulator/stats").json()["requests_per_path"].get("/veo/tasks", 0)
    result["requests_per_job"] = polls / n
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=6.0, help="generation time of each job")
    parser.add_argument("--smoke", action="store_true", help="a tiny size, run by the test suite")
    parser.add_argument("--child")
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.url, args.jobs)
        return
    if args.smoke:
        args.jobs, args.seconds = 5, 1.0

    from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator

    with VeoEmulator(EmulatorConfig(generation_seconds=args.seconds)) as emu:
        base = _measure("baseline", emu.url, args.jobs)
        ours = _measure("ours", emu.url, args.jobs)
    print(f"bench_wait: {args.jobs} jobs of {args.seconds:.0f}s, polled every 1s")
    print(f"{'':18}{'baseline':>12}{'ours':>12}{'ours/base':>12}")
    for key, label in (("rss_mb", "RSS growth (MB)"), ("cpu_s", "CPU (s)"), ("requests_per_job", "requests/job")):
        ratio = ours[key] / base[key] if base[key] else float("nan")
        print(f"{label:18}{base[key]:>12.2f}{ours[key]:>12.2f}{ratio:>12.2f}")


if __name__ == "__main__":
    main()
