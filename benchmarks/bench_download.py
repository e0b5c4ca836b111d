"""Figure 4: a 1 GiB video streamed to disk by VeoHook.download vs raw httpx streaming of the same URL.

The hook adds a size cap, a temporary sibling renamed into place, one ``fsync`` before the rename
(durability: the file is on disk before it takes its name) and retries. The target is set against
raw httpx streaming plus the same ``fsync`` (>= 0.95x), and memory (<= 50 MB RSS growth: the video
is never held). Each download runs in its own fresh subprocess (so RSS is its own, sampled every
20 ms) against the emulator in this process; the sides alternate, and the best of each is kept.
For context, raw httpx streaming without the ``fsync``.

    python -m benchmarks.bench_download [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import TOKEN, Row, Summary, child_json, rss_peak_sampler

FULL: dict[str, Any] = {"bytes": 1 << 30, "repetitions": 4}  # best of 2 moved by +-0.1x run to run
SMOKE: dict[str, Any] = {"bytes": 8 << 20, "repetitions": 1}
KINDS = ("raw", "raw+fsync", "ours")


def _child(kind: str, url: str, dest: str) -> dict[str, float]:
    """Runs in the measured subprocess: set-up first (not measured), then one download."""
    if kind == "ours":
        from veo_provider.hooks.veo import VeoHook

        hook = VeoHook("veo_default")
        hook.settings, hook.get_conn()

        def download() -> None:
            hook.download(url, dest)
    else:
        import httpx

        client = httpx.Client()

        def download() -> None:
            with client.stream("GET", url) as response, open(dest, "wb") as fh:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                if kind == "raw+fsync":  # what the hook's durability (fsync before rename) costs by itself
                    fh.flush()
                    os.fsync(fh.fileno())

    with rss_peak_sampler() as rss:
        start = time.perf_counter()
        download()
        seconds = time.perf_counter() - start
    size = os.path.getsize(dest)
    os.unlink(dest)
    return {"seconds": seconds, "bytes": size, "rss_growth_mb": rss.peak_mb - rss.start_mb}


def _measure(kind: str, url: str, workdir: Path) -> dict[str, float]:
    conn = {"conn_type": "veo", "host": url.split("/_emulator")[0], "password": TOKEN}
    env = {**os.environ, "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn), "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
    args = ["--child", kind, "--url", url, "--dest", str(workdir / f"{kind}.mp4")]
    return child_json("benchmarks.bench_download", args, f"{kind} download", timeout=600, env=env)


def _video_url(emu: Any, size: int) -> str:
    import httpx

    emu.set_faults(generation_seconds=0.0)
    body = {"action": "text2video", "model": "veo3", "prompt": "a long video", "async": True}
    task_id = httpx.post(f"{emu.url}/veo/videos", json=body, headers=emu.headers).json()["task_id"]
    return f"{emu.state.job(task_id).video_url}?size={size}"


def run(smoke: bool) -> Summary:
    from veo_provider.testing.emulator import VeoEmulator

    started = time.monotonic()
    size = SMOKE if smoke else FULL
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    with VeoEmulator() as emu, tempfile.TemporaryDirectory(prefix="veo-bench-download-") as tmp:
        url = _video_url(emu, size["bytes"])
        for _ in range(size["repetitions"]):
            for kind in KINDS:
                os.sync()  # what earlier samples (and figures) left unwritten is not this sample's fsync to pay
                results[kind].append(_measure(kind, url, Path(tmp)))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in results.items()}
    assert all(r["bytes"] == size["bytes"] for v in results.values() for r in v), results
    mb_s = {k: r["bytes"] / r["seconds"] / 1e6 for k, r in best.items()}
    growth = max(r["rss_growth_mb"] for r in results["ours"])
    summary = Summary(
        4, f"download {size['bytes'] >> 20} MiB to disk", "raw httpx stream + fsync", "smoke" if smoke else "full"
    )
    fsynced = mb_s["raw+fsync"]
    summary.rows = [
        Row(
            "throughput vs raw + fsync (MB/s, best)", mb_s["ours"], fsynced, ">= 0.95x", mb_s["ours"] >= 0.95 * fsynced
        ),
        Row(
            "RSS growth (MB, worst)", growth, max(r["rss_growth_mb"] for r in results["raw"]), "<= 50 MB", growth <= 50
        ),
        Row("throughput vs raw, no fsync (MB/s, best)", mb_s["ours"], mb_s["raw"]),
    ]
    summary.notes = {f"{kind} (s)": [round(r["seconds"], 2) for r in results[kind]] for kind in KINDS}
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny size, run by the test suite (no timing)")
    parser.add_argument("--child", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--dest", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = _child(args.child, args.url, args.dest)
        print(json.dumps(result))
        return result
    return run(args.smoke).print()


if __name__ == "__main__":
    main()
