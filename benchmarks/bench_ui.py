"""Figure 7: the Videos tab of a run of 100 mapped clips, opened in headless Chromium, against
Airflow's own Task Instances tab of the same run.

A real ``airflow api-server`` on a seeded database (``tests/ui/seed.py``: the records 100 finished
Veo tasks leave, 10,000 more videos in other DAGs) and Debian's Chromium through Playwright, logged
in as a user of the simple auth manager. Each sample is a fresh browser that opens the page and
stops the clock when the list is on screen: for the Videos tab, 100 cards (``performance.now()``
in the page, from the navigation's start); for Airflow's tab, the first page (50 rows) of its
task-instance table. The target is the Videos tab's: 100 cards within 2 s of its list request, from one list
request (the request count does not grow with the run). The two kinds alternate; medians.

    python -m benchmarks.bench_ui [--smoke]

Needs Playwright and /usr/bin/chromium (``VEO_UI_CHROMIUM`` for another; ``.ci/run`` installs it)
and Airflow 3.1+ (react apps). The players ask for their clip's metadata only (``preload``); no
video byte is read to build the list.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import Row, Summary, arguments, median

FULL: dict[str, Any] = {"repetitions": 5}
SMOKE: dict[str, Any] = {"repetitions": 1}
RUN = "/dags/big_dag/runs/manual__big"
CARDS = 100
TARGET_MS = 2000.0
#: When each page's list is on screen (selector, how many): every card of the Videos tab; the rows
#: of Airflow's table (its first page: 50 of the 100).
READY = {"videos": ("[data-testid=video-card]", CARDS), "airflow": ("tbody tr", 50)}
PATHS = {"videos": f"{RUN}/plugin/veo-videos", "airflow": RUN}  # the run page opens on its Task Instances tab


def _open(base: str, kind: str) -> dict[str, float]:
    """One fresh browser opening one page: ms from navigation to its list on screen (and, for the
    Videos tab, from its list request), and how many list requests it made."""
    from tests.ui.browser import LIST_TIMING, list_requests, logged_in

    selector, count = READY[kind]
    with logged_in(base, "viewer", {"width": 1400, "height": 1000}) as (_, page):
        lists = list_requests(page)
        page.goto(f"{base}{PATHS[kind]}", wait_until="commit", timeout=120_000)
        ready = f"document.querySelectorAll('{selector}').length >= {count}"
        shown_ms = float(page.wait_for_function(f"() => ({ready}) && performance.now()", timeout=120_000).json_value())
        timing = page.evaluate(LIST_TIMING)
        rows = page.evaluate(f"() => document.querySelectorAll('{selector}').length")
    return {
        "shown_ms": shown_ms,
        "render_ms": shown_ms - timing["start"] if timing else float("nan"),
        "lists": float(len(lists)),
        "rows": float(rows),
    }


def run(smoke: bool) -> Summary:
    from tests.ui.browser import seeded_api_server, unavailable

    if reason := unavailable():
        raise RuntimeError(f"figure 7 drives a browser: {reason}")
    started = time.monotonic()
    reps = (SMOKE if smoke else FULL)["repetitions"]
    samples: dict[str, list[dict[str, float]]] = {"airflow": [], "videos": []}
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as home, seeded_api_server(Path(home)) as base:
        for kind in READY:  # warm the api-server's routes and the OS caches
            _open(base, kind)
        for _ in range(reps):
            for kind in READY:
                samples[kind].append(_open(base, kind))

    def med(kind: str, key: str) -> float:
        return median([s[key] for s in samples[kind]])

    render, lists = med("videos", "render_ms"), max(s["lists"] for s in samples["videos"])
    summary = Summary(7, f"Videos tab of {CARDS} mapped clips", "Airflow's Task Instances tab of the same run",
                      "smoke" if smoke else "full")  # fmt: skip
    summary.rows = [
        Row("page opened -> list on screen (ms)", med("videos", "shown_ms"), med("airflow", "shown_ms")),
        Row(
            f"list request -> {CARDS} cards on screen (ms)", render, None, f"<= {TARGET_MS:.0f} ms", render <= TARGET_MS
        ),
        Row("list requests per page", lists, None, "1", lists == 1),
    ]
    summary.notes = {f"{kind} shown (ms)": [round(s["shown_ms"]) for s in samples[kind]] for kind in samples} | {
        "Airflow's rows on its first page": int(samples["airflow"][0]["rows"])
    }
    summary.seconds = time.monotonic() - started
    return summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    return run(arguments(__doc__, argv).smoke).print()


if __name__ == "__main__":
    main()
