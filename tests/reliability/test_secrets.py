"""The secrets sweep: the scanner finds planted secrets in every kind of place, and
every example DAG, run with a recognisable token and callback secret, leaves none behind.

The sweep runs each example with ``airflow dags test`` (as tests/integration does) plus failing
paths whose exception texts could echo a request: a job the API fails, a 401 (wrong token), a
500 after the job was created (uncertain submission) and read retries, and a request refused before
any HTTP call. It scans the Airflow home (task logs, component logs, the SQLite file), the metadata
database (schema inspected), the captured output of every command and the emulator's access log.
"""

from __future__ import annotations

import gzip
import json
import shutil
import sqlite3
import subprocess
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.dialects import postgresql

from tests.reliability.secrets_scan import (
    UNDECRYPTABLE,
    Hit,
    assert_no_secrets,
    callback_signatures,
    format_hits,
    recognisable_secrets,
    scan_for_secrets,
)
from tests.support import ROOT, DagRunResult, airflow_cli, migrated_airflow_home
from veo_provider.testing.emulator import CallbackRecorder, EmulatorConfig, VeoEmulator

SECRETS = recognisable_secrets()
TOKEN, CALLBACK_SECRET = SECRETS["token"], SECRETS["callback_secret"]
ENCODINGS = ("raw", "url-encoded", "base64", "partial (first 16 characters)")


def where(hits: list[Hit]) -> set[str]:
    return {hit.where.split("[")[0] for hit in hits}


# ------------------------------------------------------------------------ the scanner, unit tests


def test_finds_a_secret_in_a_nested_log_file_and_a_gzipped_one(tmp_path):
    task_log = tmp_path / "logs" / "dag_id=d" / "run_id=r" / "task_id=t" / "attempt=1.log"
    task_log.parent.mkdir(parents=True)
    task_log.write_text('{"event": "calling the API with token ' + TOKEN + '"}\n')
    (tmp_path / "scheduler.log.gz").write_bytes(gzip.compress(f"header Bearer {TOKEN}\n".encode()))
    (tmp_path / "clean.log").write_text("nothing to see\n" * 1000)

    hits = scan_for_secrets([TOKEN], log_dirs=[tmp_path])

    assert where(hits) == {f"file:{task_log}", f"file:{tmp_path / 'scheduler.log.gz'} (decompressed)"}
    assert all(TOKEN not in str(hit) and TOKEN[8:16] not in str(hit) for hit in hits), "a report never shows it"
    assert "[needle#0 (veo-…, 40 chars)]" in hits[0].context


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (f"POST /veo/callback?key=k&sig_token={TOKEN}", "raw"),
        ("callback_url=https%3A%2F%2Fx%2Fveo%2Fcallback%3Fsig_token%3D{}", "url-encoded"),
        ("Authorization: Basic {}", "base64"),
        ("GET /api?token={}&x=1", "partial (first 16 characters)"),
    ],
    ids=ENCODINGS,  # the token is drawn per run: the ids name the encoding only
)
def test_finds_a_secret_in_a_text_in_its_common_encodings(text, encoding):
    secret = CALLBACK_SECRET + "/+ é"  # characters that every encoding changes
    import base64
    from urllib.parse import quote

    encoded = {
        "url-encoded": quote(secret, safe=""),
        "base64": base64.b64encode(f"user:{secret}".encode()).decode(),
        "partial (first 16 characters)": secret[:20],
    }.get(encoding, secret)
    body = text.replace(TOKEN, secret).format(encoded)
    hits = scan_for_secrets({"callback_secret": secret}, texts={"exception": body})
    assert [(h.where, h.needle, h.encoding) for h in hits] == [("text:exception", "callback_secret", encoding)]


def test_finds_a_json_escaped_secret_and_ignores_near_misses():
    secret = 'pa"ss\\word-0123456789'
    hits = scan_for_secrets([secret], texts={"xcom": json.dumps({"v": secret}), "other": "pa ss word-0123456789"})
    assert [(h.where, h.encoding) for h in hits] == [("text:xcom", "json-escaped")]
    near = TOKEN[:12] + "X" + TOKEN[13:-12] + "Y" + TOKEN[-11:]  # neither its head nor its tail
    assert scan_for_secrets([TOKEN], texts={"near": near, "cut": TOKEN[:12]}) == []
    [tail] = scan_for_secrets([TOKEN], texts={"truncated": "…" + TOKEN[-20:]})
    assert tail.encoding == "partial (last 16 characters)"


def test_refuses_needles_too_short_to_mean_anything():
    with pytest.raises(ValueError, match="at least 8"):
        scan_for_secrets(["abc"], texts={"t": "abc"})


# Airflow's tables (the columns that matter) with the JSON/binary types of the database.
TABLES: dict[str, dict[str, str]] = {
    "xcom": {"value": "json"},
    "rendered_task_instance_fields": {"rendered_fields": "json"},
    "trigger": {"kwargs": "text"},
    "task_state_store": {"value": "text"},
    "task_instance": {"next_kwargs": "json", "rendered_map_index": "text"},
    "log": {"extra": "text"},
    "dag_run": {"conf": "json"},
    "variable": {"val": "text"},
    "serialized_dag": {"data_compressed": "binary"},
    "connection": {"password": "text"},
}
PLANTS: dict[str, tuple[str, Any]] = {
    "xcom": ("value", {"result": {"headers": {"authorization": f"Bearer {TOKEN}"}}}),
    "rendered_task_instance_fields": ("rendered_fields", {"prompt": f"token={TOKEN}"}),
    "trigger": ("kwargs", "fernet"),
    "task_state_store": ("value", json.dumps({"callback_url": f"https://a/veo/callback?sig_token={TOKEN}"})),
    "task_instance": ("next_kwargs", {"event": {"error_message": f"401 for {TOKEN}"}}),
    "log": ("extra", f"Traceback ... {TOKEN}"),
    "dag_run": ("conf", {"token": TOKEN}),
    "variable": ("val", TOKEN),
    "serialized_dag": ("data_compressed", zlib.compress(json.dumps({"op_kwargs": {"t": TOKEN}}).encode())),
}


def _create_tables(engine: sa.Engine) -> sa.MetaData:
    json_type = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    kinds = {"json": json_type, "text": sa.Text(), "binary": sa.LargeBinary()}
    meta = sa.MetaData()
    for name, columns in TABLES.items():
        sa.Table(
            name,
            meta,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("updated_at", sa.DateTime),
            *(sa.Column(col, kinds[kind]) for col, kind in columns.items()),
        )
    meta.create_all(engine)
    return meta


# The PostgreSQL variant is an integration test: `make unit` needs no database server.
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def db_url(request, tmp_path) -> Iterator[str]:
    """A throwaway database with Airflow-like tables (SQLite file, or a PostgreSQL database dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"veo_secrets_{uuid.uuid4().hex[:8]}"
    try:
        admin = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {exc}")
    admin.autocommit = True
    try:
        admin.cursor().execute(f"CREATE DATABASE {name}")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _plant(db_url: str, table: str, fernet: Fernet) -> None:
    engine = sa.create_engine(db_url)
    try:
        meta = _create_tables(engine)
        with engine.begin() as conn:
            for name in TABLES:  # a clean row in every table
                conn.execute(meta.tables[name].insert().values(id=1))
            column, value = PLANTS.get(table, ("password", TOKEN))
            if value == "fernet":  # what Trigger.encrypt_kwargs writes
                value = fernet.encrypt(json.dumps({"conn_id": "veo", "token": TOKEN}).encode()).decode()
            conn.execute(meta.tables[table].insert().values(id=2, **{column: value}))
    finally:
        engine.dispose()


@pytest.mark.parametrize("table", list(PLANTS))
def test_finds_a_secret_in_each_kind_of_metadata_table(db_url, table):
    key = Fernet.generate_key().decode()
    _plant(db_url, table, Fernet(key))

    hits = scan_for_secrets([TOKEN], db_url=db_url, fernet_keys=[key])

    column = PLANTS[table][0]
    assert [h.where.split("[")[0] for h in hits] == [f"db:{table}.{column}"], format_hits(hits)
    assert hits[0].where.startswith(f"db:{table}.{column}[row 1]")


def test_the_connection_table_holds_the_token_by_design(db_url):
    _plant(db_url, "connection", Fernet(Fernet.generate_key()))
    assert scan_for_secrets([TOKEN], db_url=db_url) == []


def test_encrypted_values_are_decrypted_or_reported_never_skipped(db_url, tmp_path, monkeypatch):
    monkeypatch.delenv("AIRFLOW__CORE__FERNET_KEY", raising=False)
    key = Fernet.generate_key().decode()
    _plant(db_url, "trigger", Fernet(key))

    [blind] = scan_for_secrets([TOKEN], db_url=db_url)
    assert blind.needle == UNDECRYPTABLE and blind.where.startswith("db:trigger.kwargs[row 1]")
    # The key of an AIRFLOW_HOME's airflow.cfg (a log dir) is used, as the cluster's own would be.
    home = tmp_path / "home"
    home.mkdir()
    (home / "airflow.cfg").write_text(f"[core]\nfernet_key = {Fernet.generate_key().decode()},{key}\n")
    [hit] = scan_for_secrets([TOKEN], db_url=db_url, log_dirs=[home])
    assert hit.where == "db:trigger.kwargs[row 1] (decrypted)" and hit.encoding == "raw"


def test_assert_no_secrets_fails_with_redacted_hits(tmp_path):
    (tmp_path / "a.log").write_text(f"token {TOKEN}")
    with pytest.raises(AssertionError, match=r"1 secret\(s\) found") as failed:
        assert_no_secrets({"token": TOKEN}, log_dirs=[tmp_path])
    assert TOKEN not in str(failed.value) and "[token]" in str(failed.value)
    assert_no_secrets({"token": TOKEN}, texts={"clean": "nothing"})


def test_callback_signatures_are_read_from_signed_urls():
    urls = ["https://a/veo/callback?dag_id=d&key=k&sig_token=abcDEF123_-x", None, "https://a/veo/x"]
    assert callback_signatures(urls) == ["abcDEF123_-x"]


def test_the_emulator_access_log_keeps_requests_but_not_credentials():
    import httpx

    with VeoEmulator(EmulatorConfig(token=TOKEN, generation_seconds=0)) as emu:
        headers = {**emu.headers, "x-api-key": CALLBACK_SECRET, "user-agent": "agent/" + CALLBACK_SECRET}
        httpx.post(f"{emu.url}/veo/tasks?debug={TOKEN}", json={"id": "x", "action": "retrieve"}, headers=headers)
        [entry] = emu.access_log
        text = emu.access_log_text()
    assert (entry["method"], entry["path"], entry["status"]) == ("POST", "/veo/tasks", 404)
    assert entry["headers"]["authorization"] == "Bearer [redacted]" and entry["headers"]["x-api-key"] == "[redacted]"
    # What the client put elsewhere (a query string, an ordinary header) is kept, so a scan catches it.
    hits = scan_for_secrets({"token": TOKEN, "secret": CALLBACK_SECRET}, texts={"access log": text})
    assert sorted((h.needle, h.encoding) for h in hits) == [("secret", "raw"), ("token", "raw")]


# --------------------------------------------------------------------------------------- the sweep


class Sweep:
    """Runs example DAGs against the emulator with the recognisable token, keeping every output."""

    def __init__(self, env: dict[str, str], emulator: VeoEmulator) -> None:
        self.env = env
        self.emulator = emulator
        self.outputs: dict[str, str] = {}
        self.results: dict[str, DagRunResult] = {}
        self.seconds = 0.0
        self.took: dict[str, float] = {}
        self.callback_urls: list[str | None] = []
        self.callback_paths: list[str] = []
        self.access_log = self.access_log_other = self.jobs_text = ""
        self.rejected: dict[str, Any] = {}

    def run(self, label: str, dag_id: str, conf: dict | None = None, host: str | None = None, **extra: Any) -> None:
        conn = {"conn_type": "veo", "host": host or self.emulator.url, "password": TOKEN, "extra": extra}
        env = {**self.env, "AIRFLOW_CONN_VEO_DEFAULT": json.dumps(conn)}
        cmd = airflow_cli("dags", "test", dag_id) + (["--conf", json.dumps(conf)] if conf else [])
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        self.took[label] = time.monotonic() - started
        self.seconds += self.took[label]
        self.outputs[label] = proc.stdout + proc.stderr
        self.results[label] = DagRunResult(
            proc.returncode, self.outputs[label], Path(env["AIRFLOW_HOME"]) / "airflow.db"
        )


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """An Airflow home of the sweep's own: what it scans is what its runs left, nothing else's."""
    return migrated_airflow_home(tmp_path_factory.mktemp("secrets-airflow-home"))


@pytest.fixture(scope="module")
def sweep(airflow_env, tmp_path_factory) -> Sweep:
    dags = Path(airflow_env["AIRFLOW__CORE__DAGS_FOLDER"])
    shutil.copytree(ROOT / "dags_examples" / "data", dags / "data", dirs_exist_ok=True)
    env = {**airflow_env, "VEO_SAFETY_POLL_INTERVAL": "0.5"}
    # veo_review waits for a person (human-in-the-loop; `airflow dags test` waits until it is answered):
    # its own test answers it (tests/integration/test_examples.py); nobody answers it here.
    examples = sorted(p.stem for p in (ROOT / "dags_examples").glob("veo_*.py") if p.stem != "veo_review")
    store = tmp_path_factory.mktemp("store")
    with (
        VeoEmulator(EmulatorConfig(token=TOKEN, generation_seconds=1.0)) as emu,
        VeoEmulator(EmulatorConfig(token="another-accounts-token", generation_seconds=1.0)) as other,
        CallbackRecorder() as receiver,
    ):
        s = Sweep(env, emu)
        callback = {"callback_base_url": receiver.url + "/veo", "callback_secret": CALLBACK_SECRET}
        for dag_id in examples:  # every example, callback mode where it waits by callback
            emu.set_faults(fail_jobs={"times": 1} if dag_id == "veo_daily_prompts" else None)
            conf = {"output_url": store.as_uri()} if dag_id == "veo_generate_1080p" else None
            s.run(dag_id, dag_id, conf, **(callback if dag_id == "veo_callback_mode" else {}))
        emu.clear_faults()
        # Failing paths whose exception texts could carry what was sent.
        s.run("401", "veo_submit_then_sense", host=other.url, **callback)
        emu.set_faults(
            server_error={"times": 1, "path": "/veo/videos", "after_create": True},
            gateway_timeout={"times": 2, "path": "/veo/tasks"},
            rate_limit={"times": 1, "path": "/veo/videos"},
        )
        s.run("500 after create, read retries", "veo_text_to_video")  # poll mode: an uncertain one fails
        emu.clear_faults()
        s.run("refused before HTTP", "veo_generate_1080p", {"output_url": "/dev/null/not-a-folder"})
        s.run("token in the host URL", "veo_text_to_video", host=f"{emu.url}/?api_key={TOKEN}")
        s.callback_urls = [job.callback_url for job in emu.jobs]
        s.jobs_text = json.dumps([job.summary() for job in emu.jobs], default=str)
        s.access_log = emu.access_log_text()
        s.access_log_other = other.access_log_text()
        s.callback_paths = [c.path for c in receiver.received]
        s.rejected = other.stats()["responses_per_path"]
    return s


def _needles(sweep: Sweep) -> dict[str, str]:
    sigs = callback_signatures(sweep.callback_urls)
    return {"token": TOKEN, "callback_secret": CALLBACK_SECRET, **{f"sig_token#{i}": s for i, s in enumerate(sigs)}}


@pytest.mark.integration
@pytest.mark.reliability
def test_the_sweep_exercised_every_example_and_every_failing_path(sweep):
    # veo_review waits for a person (human-in-the-loop; `airflow dags test` waits until it is answered):
    # its own test answers it (tests/integration/test_examples.py); nobody answers it here.
    examples = sorted(p.stem for p in (ROOT / "dags_examples").glob("veo_*.py") if p.stem != "veo_review")
    assert set(examples) <= set(sweep.results)
    failing = {"veo_daily_prompts", "401", "500 after create, read retries", "refused before HTTP"}
    failing.add("token in the host URL")
    for label, result in sweep.results.items():
        ok = result.returncode == 0 and result.succeeded and "DagRun failed" not in result.output
        assert ok == (label not in failing), f"{label}:\n{result.output[-3000:]}"
    assert "generation_failed" in sweep.outputs["veo_daily_prompts"]
    assert "invalid_token" in sweep.outputs["401"] and sweep.rejected == {"/veo/videos": {"401": 1}}
    assert "may have reached the Veo API" in sweep.outputs["500 after create, read retries"]
    assert "cannot be written" in sweep.outputs["refused before HTTP"]
    assert "without query or fragment" in sweep.outputs["token in the host URL"]
    # The token went where it belongs, the Authorization header, and nowhere else the API logs.
    assert '"authorization": "Bearer [redacted]"' in sweep.access_log
    assert sweep.callback_paths and len(callback_signatures(sweep.callback_urls)) >= 1
    # Control: the needles are right, the signatures are where they belong (the bodies the API got).
    found = scan_for_secrets(_needles(sweep), texts={"API's jobs": sweep.jobs_text})
    assert {h.needle for h in found} == set(_needles(sweep)) - {"token", "callback_secret"}


@pytest.mark.integration
@pytest.mark.reliability
def test_no_secret_in_logs_metadata_db_outputs_or_the_api_access_log(sweep, airflow_env):
    home = Path(airflow_env["AIRFLOW_HOME"])
    texts = {f"output of {label}": out for label, out in sweep.outputs.items()}
    texts |= {"API access log": sweep.access_log, "API access log (401)": sweep.access_log_other}
    started = time.monotonic()
    hits = scan_for_secrets(_needles(sweep), log_dirs=[home], db_url=f"sqlite:///{home / 'airflow.db'}", texts=texts)
    took = time.monotonic() - started
    runs = ", ".join(f"{label} {t:.0f}s" for label, t in sweep.took.items())
    print(f"secrets sweep: {len(sweep.results)} dags test runs in {sweep.seconds:.0f}s ({runs}); scan in {took:.1f}s")
    assert not hits, format_hits(hits)
    assert took < 30


@pytest.mark.integration
@pytest.mark.reliability
def test_the_scan_reads_the_real_airflow_schema(sweep, airflow_env, tmp_path):
    """A secret planted in a copy of the sweep's metadata DB is found in each table that held rows."""
    db = tmp_path / "copy.db"
    shutil.copy(Path(airflow_env["AIRFLOW_HOME"]) / "airflow.db", db)
    targets = {
        "xcom": "value",
        "task_state_store": "value",
        "task_instance": "rendered_map_index",
        "rendered_task_instance_fields": "rendered_fields",
        "dag_run": "conf",
        "log": "extra",
    }
    with sqlite3.connect(db) as conn:
        for table, column in targets.items():
            conn.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = (SELECT MAX(rowid) FROM {table})", [TOKEN])
    hits = scan_for_secrets([TOKEN], db_url=f"sqlite:///{db}")
    assert {h.where.split("[")[0] for h in hits} == {f"db:{t}.{c}" for t, c in targets.items()}
