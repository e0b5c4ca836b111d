"""Check the provider in Airflow's web UI, in a real (headless) browser.

Starts the emulator and a real Airflow cluster on PostgreSQL (veo_provider/testing/cluster.py), drives the
pages a user looks at with Playwright and Chromium, saves a screenshot of each, and exits 1 when
a check fails (0 when all pass, 2 when it cannot run here)::

    .venv/bin/pip install playwright          # uses the system Chromium, no browser download
    .venv/bin/python tools/ui_check.py [OUT_DIR]   # default out/ui-check/

Checks (see docs/testing.md): the Providers page links to our documentation; the veo connection
form shows one field per extra; the connection test answers (token accepted, and an unreachable
host within seconds); example DAG veo_daily_prompts labels mapped tasks with the prompt and its
manifest reports the videos made when one job failed (emulator fault ``fail_jobs``); the Veo job
id is in the XCom tab while the task is deferred; task logs say what is happening while waiting
without one line per poll and without the API answer on one line; once that run of three mapped
clips ends, its Videos tab plays each clip with its prompt, streamed by the api-server (206 to a
Range request).

Environment: VEO_UI_CHROMIUM (default /usr/bin/chromium, else Playwright's own browser) and
the VEO_E2E_PG_* variables of veo_provider/testing/cluster.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from veo_provider.resume_hold import RESUME_HOLD  # noqa: E402
from veo_provider.testing.cluster import AirflowCluster, postgres_unavailable  # noqa: E402
from veo_provider.testing.emulator import EmulatorConfig, VeoEmulator  # noqa: E402

DAILY, T2V = "veo_daily_prompts", "veo_text_to_video"
CHROMIUM = os.environ.get("VEO_UI_CHROMIUM", "/usr/bin/chromium")


def browser_unavailable() -> str | None:
    """Why no browser can be driven here, or None."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return "Playwright is not installed (.venv/bin/pip install playwright)"
    try:
        with sync_playwright() as p:
            p.chromium.launch(**_launch_args()).close()
    except Exception as exc:
        return f"Chromium cannot start ({str(exc).splitlines()[0]}); apt-get install chromium"
    return None


def _launch_args() -> dict[str, Any]:
    args: dict[str, Any] = {"headless": True}
    if Path(CHROMIUM).exists():
        args["executable_path"] = CHROMIUM
    return args


@contextmanager
def blackhole() -> Iterator[int]:
    """A local port whose TCP handshakes are never answered (a full accept queue): a dead host."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)
    try:
        yield port
    finally:
        for s in [*fillers, server]:
            s.close()


class UICheck:
    """The checks, run in order against one cluster; each records a pass or a failure."""

    def __init__(self, cluster: AirflowCluster, emulator: VeoEmulator, out: Path, page: Any) -> None:
        self.cluster, self.emu, self.out, self.page = cluster, emulator, out, page
        self.results: list[tuple[str, bool, str]] = []
        self.t2v_run: str | None = None  # the text-to-video run deferred_task started; videos_tab ends it

    # ------------------------------------------------------------------ helpers

    def check(self, name: str, ok: bool, detail: Any = "") -> bool:
        detail = detail if isinstance(detail, str) else repr(detail)
        self.results.append((name, ok, detail))
        print(f"[{'PASS' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    def guarded(self, name: str, step: Callable[[], None]) -> None:
        try:
            step()
        except Exception as exc:
            self.shot(f"error-{name}")
            self.check(name, False, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def shot(self, name: str) -> Path:
        path = self.out / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def goto(self, path: str, wait_text: str | None = None, timeout: float = 30) -> None:
        self.page.goto(self.cluster.url + path)
        if wait_text:
            self.page.get_by_text(wait_text).first.wait_for(timeout=timeout * 1000)
        self.page.wait_for_timeout(700)
        self.page.mouse.move(0, 0)

    def run_path(self, dag_id: str, run_id: str) -> str:
        return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}"

    def tis(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.cluster.task_instances(dag_id, run_id)

    # ------------------------------------------------------------------ checks

    def providers_page(self) -> None:
        from veo_provider import get_provider_info

        self.goto("/providers", "airflow-provider-veo")
        href = self.page.get_by_role("link", name="airflow-provider-veo").get_attribute("href")
        self.shot("01-providers")
        want = get_provider_info()["documentation-url"]
        self.check("Providers page links to our documentation", href == want, f"href={href}")

    def connection_form(self) -> None:
        from veo_provider.settings import connection_form

        self.goto("/connections", "Add Connection")
        self.page.get_by_role("button", name="Add Connection").click()
        dialog = self.page.get_by_role("dialog")
        dialog.locator("input[name=connection_id]").fill("veo_form_check")
        dialog.get_by_role("combobox").fill("Veo")
        self.page.get_by_role("option", name="Veo (AceData Cloud)").click()
        dialog.get_by_role("button", name="Extra Fields", exact=True).click()
        self.page.wait_for_timeout(800)
        text = dialog.inner_text()
        dialog.screenshot(path=str(self.out / "02-connection-form-extras.png"))
        dialog.get_by_role("button", name="Standard Fields", exact=True).click()
        self.page.wait_for_timeout(500)
        std = dialog.inner_text()
        dialog.screenshot(path=str(self.out / "02-connection-form-standard.png"))
        labels = [f["label"] for f in connection_form().values()]
        missing = [label for label in labels if label not in text]
        self.check("Connection form shows one field per extra", not missing, f"missing: {missing}" if missing else "")
        relabeled = all(s in std for s in ("Base URL", "API token")) and "Login" not in std and "Port" not in std
        self.check("Connection form: Base URL and API token, no login/port", relabeled)
        self.page.keyboard.press("Escape")

    def connection_tests(self, blackhole_port: int) -> None:
        api = self.cluster.api
        emu_port = int(self.emu.url.rsplit(":", 1)[1])
        conns = {
            "veo_ui": {"host": "http://127.0.0.1", "port": emu_port, "password": self.emu.token},
            "veo_ui_bad_token": {"host": "http://127.0.0.1", "port": emu_port, "password": "wrong-token"},
            "veo_ui_dead_host": {"host": "http://127.0.0.1", "port": blackhole_port, "password": "t"},
            "veo_ui_no_port": {"host": self.emu.url, "password": self.emu.token},
        }
        for cid, fields in conns.items():
            api("POST", "/connections", json={"connection_id": cid, "conn_type": "veo", **fields})
        self.goto("/connections", "veo_ui_no_port")
        answers = {cid: self._list_test(cid) for cid in conns}
        self.shot("03-connection-list-tested")
        ok, bad, dead, no_port = (answers[c] for c in conns)
        self.check("Connection test: token accepted", ok["body"].get("status") is True, str(ok["body"]))
        self.check(
            "Connection test: wrong token refused, the message says why",
            bad["body"].get("status") is False and "token" in bad["body"].get("message", ""),
            str(bad["body"]),
        )
        self.check(
            "Connection test: an unreachable host answers in seconds",
            dead["body"].get("status") is False and dead["seconds"] < 15,
            f"{dead['seconds']:.1f}s {dead['body']}",
        )
        # Airflow 3.3.2's list icon sends port 0; a stored connection without a port is refused
        # before our hook runs (docs/connection.md). A note, not a failure: it is Airflow's.
        print(
            f"[NOTE] list Test of a connection without port sent port={no_port['sent'].get('port')!r}: "
            f"HTTP {no_port['status']} {no_port['body']}"
        )
        self.goto("/connections", "veo_ui")
        row = self.page.locator("tbody tr").filter(has=self.page.get_by_text("veo_ui", exact=True))
        row.get_by_role("button", name="Edit Connection").click()
        self.page.wait_for_timeout(1000)
        has_test = self.page.get_by_role("dialog").get_by_role("button", name=re.compile("^Test")).count() > 0
        self.page.get_by_role("dialog").screenshot(path=str(self.out / "03-connection-edit.png"))
        print(f"[NOTE] the edit form has a Test button: {has_test}")
        self.page.keyboard.press("Escape")

    def _list_test(self, cid: str) -> dict[str, Any]:
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        # The list re-renders after each test (and its toast may cover a row for a while under
        # load): a button that cannot be clicked within 20 s gets one more try on a fresh list.
        for attempt in (1, 2):
            row = self.page.locator("tbody tr").filter(has=self.page.get_by_text(cid, exact=True))
            self.page.mouse.move(0, 0)
            started = time.monotonic()
            try:
                with self.page.expect_response(lambda r: "/connections/test" in r.url, timeout=60_000) as info:
                    row.get_by_role("button", name="Test Connection").click(timeout=20_000)
                break
            except PlaywrightTimeout:
                (self.out / f"error-connection-test-{cid}-{attempt}.html").write_text(self.page.content())
                if attempt == 2:
                    raise
                self.goto("/connections", cid)
        response = info.value
        seconds = time.monotonic() - started
        sent = json.loads(response.request.post_data or "{}")
        return {"status": response.status, "body": response.json(), "seconds": seconds, "sent": sent}

    def daily_prompts(self) -> None:
        cluster = self.cluster
        # The DAG is @daily: its scheduled run starts by itself, against the same emulator. Fail
        # every job of one prompt, so that whichever run submits first, ours has one failure. The jobs
        # outlast the trigger's first check (RESUME_HOLD), as real Veo jobs do, so the finished task's
        # log shows how its wait went.
        slow = RESUME_HOLD + 6
        try:
            self.emu.set_faults(generation_seconds=slow, fail_jobs={"times": None, "match": "espresso"})
        except Exception:  # an emulator without ``match``: the next job fails
            self.emu.set_faults(generation_seconds=slow, fail_jobs={"times": 1})
        run_id = cluster.trigger(DAILY)
        state = cluster.wait_for_run(DAILY, run_id, timeout=240)
        tis = [t for t in self.tis(DAILY, run_id) if t["task_id"] == "generate"]
        labels = {t["map_index"]: t.get("rendered_map_index") for t in tis}
        states = sorted(t["state"] for t in tis)
        self.check(
            "daily run: one job failed, the others succeeded",
            states == ["failed", "success", "success"],
            f"{states}, run {state}",
        )
        base = self.run_path(DAILY, run_id)
        first = labels.get(0) or "?"
        self.goto(f"{base}/tasks/generate/mapped", first)
        body = self.page.inner_text("body")
        shown = [label for label in labels.values() if label and label in body]
        self.shot("04-daily-mapped-labels")
        self.check(
            "Mapped tasks are labelled with the prompt (map_index_template)",
            len(shown) == 3 and all(not str(label).isdigit() for label in shown),
            f"{shown}",
        )
        self.goto(f"{base}/tasks/manifest", "videos failed")
        log = self.page.inner_text("body")
        self.shot("05-daily-manifest-log")
        said = "2 video(s) made, 1 failed" in log or "1 of 3 videos failed, 2 made" in log
        self.check("manifest reports the videos made and the failed one", said)
        day = next(Path(cluster.env["VEO_OUTPUT_DIR"]).glob("daily/*/manifest.json"))
        manifest = json.loads(day.read_text())
        self.check(
            "manifest.json lists 2 videos and 1 failure",
            len(manifest["videos"]) == 2 and len(manifest["failed"]) == 1,
            str(day),
        )
        # Prefer a task that finished in its first try: after Airflow 3.3's resume race (a second
        # try that resumes the job, see docs/exactly-once.md) the UI shows only the last try.
        done = min((t for t in tis if t["state"] == "success"), key=lambda t: t["try_number"])
        self.goto(f"{base}/tasks/generate/mapped/{done['map_index']}", "Downloaded")
        self._check_log("06-log-finished-task", "finished", waited=done["try_number"] == 1)

    def deferred_task(self) -> None:
        self.emu.set_faults(generation_seconds=120)
        run_id = self.cluster.trigger(T2V)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            tis = {t["map_index"]: t["state"] for t in self.tis(T2V, run_id) if t["task_id"] == "generate"}
            if tis.get(0) == "deferred":
                break
            time.sleep(1)
        self.check("veo_text_to_video: generate[0] is deferred", tis.get(0) == "deferred", str(tis))
        time.sleep(8)  # a few polls (VEO_POLL_INTERVAL=2): the log must not gain a line per poll
        base = f"{self.run_path(T2V, run_id)}/tasks/generate/mapped/0"
        job = self.cluster.api(
            "GET",
            f"/dags/{T2V}/dagRuns/{run_id}/taskInstances/generate/xcomEntries/veo_task_id",
            params={"map_index": 0, "deserialize": True},
        )["value"]
        self.goto(f"{base}/xcom", str(job))
        state = self.page.get_by_text("Deferred").count() > 0
        self.shot("07-deferred-xcom-veo-task-id")
        self.check("XCom tab shows veo_task_id while the task is Deferred", state, f"veo_task_id={job}")
        self.goto(base, "is running after")
        self._check_log("08-log-running-task", "running", waited=True)
        self.t2v_run = run_id

    def videos_tab(self) -> None:
        """After a real run of three mapped clips, the run's Videos tab plays each with its prompt and
        the api-server streams the bytes with Range support."""
        run_id = self.t2v_run
        assert run_id is not None, "the deferred-task step started no run"
        for job in self.emu.jobs:  # the deferred jobs finish now (their tasks resume at their next check)
            job.generation_seconds = min(job.generation_seconds, time.time() - job.created_at)
        state = self.cluster.wait_for_run(T2V, run_id, timeout=240)
        tis = sorted((t for t in self.tis(T2V, run_id) if t["task_id"] == "generate"), key=lambda t: t["map_index"])
        self.check("veo_text_to_video run succeeded", state == "success", f"{state}: {[t['state'] for t in tis]}")
        prompts = [self.cluster.xcom(T2V, run_id, "generate", t["map_index"]).get("prompt", "") for t in tis]
        self.page.goto(self.cluster.url + self.run_path(T2V, run_id) + "/plugin/veo-videos")
        self.page.wait_for_function("document.querySelectorAll('[data-testid=video-card]').length >= 3", timeout=60_000)
        self.page.wait_for_function(
            """() => { const v = [...document.querySelectorAll('video')];
                       return v.length >= 3 && v.every(x => x.readyState >= 1 && x.duration > 0); }""",
            timeout=60_000,
        )
        facts = self.page.evaluate(
            """() => ({
                videos: [...document.querySelectorAll('video')].map(v => ({src: v.getAttribute('src'),
                    duration: v.duration})),
                prompts: [...document.querySelectorAll('[data-testid=prompt]')].map(p => p.textContent)})"""
        )
        self.shot("09-videos-tab-after-a-run")
        srcs = [v["src"] for v in facts["videos"]]
        self.check(
            "Videos tab: the three clips of the run play, from the api-server",
            len(srcs) == 3
            and all(s.startswith("/veo-ui/") for s in srcs)
            and all(v["duration"] > 0 for v in facts["videos"]),
            str(facts["videos"]),
        )
        shown = [p.rstrip("…") for p in facts["prompts"]]  # a long prompt is cut until asked for
        self.check(
            "Videos tab: each clip with its prompt, in map order",
            len(shown) == len(prompts) == 3 and all(p and w.startswith(p) for p, w in zip(shown, prompts, strict=True)),
            str([p[:40] for p in shown]),
        )
        stream = self.cluster.url + srcs[0]
        ranged = self.page.request.get(stream, headers={"Range": "bytes=0-1023"})
        self.check(
            "Videos tab: the stream answers a Range request with 206 video/mp4",
            ranged.status == 206 and ranged.headers.get("content-type") == "video/mp4" and len(ranged.body()) == 1024,
            f"{ranged.status} {ranged.headers.get('content-type')}",
        )
        # This cluster makes every caller an admin (simple_auth_manager_all_admins): the refusals
        # without credentials or without access to the DAG are tests/ui/test_browser.py's, with real users.

    def _check_log(self, shot: str, what: str, *, waited: bool) -> None:
        """``waited``: this try's log holds the wait (not a second try that resumed a finished job)."""
        lines = [line for line in self.page.inner_text("body").splitlines() if " - " in line]
        self.shot(shot)
        finished = what == "finished"
        progress = [line for line in lines if re.search(r"Veo job \S+ is (still )?\w+ after \d+s; next check in", line)]
        if waited:
            self.check(
                f"{what} task log: state changes with elapsed time and next check", bool(progress), progress[-1:]
            )
        polls = [line for line in lines if "is still" in line]
        self.check(f"{what} task log: no line per poll", len(progress) <= 4 and len(polls) <= 1, f"{len(progress)}")
        dumps = [line for line in lines if "video_url" in line or len(line) > 400]
        self.check(f"{what} task log: no API answer dumped on one line", not dumps, dumps[0][:160] if dumps else "")
        if finished and waited:
            fired = [line for line in lines if "Trigger fired event" in line]
            self.check("finished task log: the trigger's event is one short line", bool(fired), fired[:1])

    def summary(self) -> int:
        failed = [r for r in self.results if not r[1]]
        print(f"\n{len(self.results) - len(failed)} passed, {len(failed)} failed; screenshots in {self.out}")
        for name, _, detail in failed:
            print(f"  FAILED {name}: {detail}")
        return 1 if failed or not self.results else 0


def run(out: Path, keep: bool = False) -> int:
    for reason in (postgres_unavailable(), browser_unavailable()):
        if reason:
            print(f"cannot run the UI check: {reason}", file=sys.stderr)
            return 2
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="veo-ui-check-"))
    dags = base / "dags"
    dags.mkdir()
    for name in (f"{DAILY}.py", f"{T2V}.py"):
        shutil.copy(ROOT / "dags_examples" / name, dags)
    shutil.copytree(ROOT / "dags_examples" / "data", dags / "data")
    emulator = VeoEmulator(EmulatorConfig(generation_seconds=3.0)).start()
    conn = {"conn_type": "veo", "host": emulator.url, "password": emulator.token}
    env = {
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn),
        "VEO_OUTPUT_DIR": str(base / "videos"),
        "VEO_POLL_INTERVAL": "2",
    }
    cluster = AirflowCluster(base / "airflow", dags, extra_env=env)
    if keep:
        os.environ["VEO_E2E_KEEP"] = "1"
    started = time.monotonic()
    try:
        with blackhole() as dead_port, sync_playwright() as p:
            cluster.start()
            print(f"Airflow {cluster.url} up in {time.monotonic() - started:.0f}s", flush=True)
            browser = p.chromium.launch(**_launch_args())
            page = browser.new_page(viewport={"width": 1500, "height": 1000})
            ui = UICheck(cluster, emulator, out, page)
            ui.guarded("providers page", ui.providers_page)
            ui.guarded("connection form", ui.connection_form)
            ui.guarded("connection tests", lambda: ui.connection_tests(dead_port))
            ui.guarded("daily prompts", ui.daily_prompts)
            ui.guarded("deferred task", ui.deferred_task)
            ui.guarded("videos tab", ui.videos_tab)
            browser.close()
    finally:
        cluster.stop()
        emulator.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)
    print(f"took {time.monotonic() - started:.0f}s")
    return ui.summary()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", nargs="?", default=str(ROOT / "out" / "ui-check"), help="screenshot folder")
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home and logs (printed path)")
    args = parser.parse_args(argv)
    return run(Path(args.out), keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
