"""The secrets sweep: find a token or secret wherever Airflow keeps what a run left.

``scan_for_secrets(needles, log_dirs=..., db_url=..., texts=...)`` looks for each needle, in the
encodings it could take on the way (raw, URL-encoded, JSON-escaped, base64 at any alignment, and a
16-character head or tail of a long needle, e.g. a truncated URL), in:

* every file under ``log_dirs``, recursively (task logs, component logs, a SQLite database file
  with its freed pages); ``.gz`` files and zlib/gzip blobs are scanned decompressed too;
* every text, JSON and binary column of every table of the metadata database at ``db_url``,
  found by inspecting its schema (xcom, rendered_task_instance_fields, trigger, task_state_store,
  task_instance, log, dag_run, variable, serialized_dag, ...), except ``EXCLUDED_TABLES``;
* ``texts``: anything else by name (exception texts, captured output, the API's access log).

Fernet tokens (trigger kwargs, encrypted variables) are decrypted with the Fernet key(s) given,
else ``AIRFLOW__CORE__FERNET_KEY``, else the ``[core] fernet_key`` of an ``airflow.cfg`` at the top
of a log dir (an AIRFLOW_HOME). A Fernet token no key opens is reported as a hit of its own
(``<undecryptable>``): an unscanned place is not a clean one.

A ``Hit`` names the place, the needle's name and encoding, and a short context in which every
needle is replaced by ``[name]``: reports never print a needle.

The fault campaign calls ``assert_no_secrets(needles, log_dirs=[airflow_home], db_url=...)`` at
its end (or ``scan_for_secrets`` to inspect the hits itself); ``recognisable_secrets()`` makes a
token and callback secret to configure the connection with, and ``callback_signatures(urls)`` the
``sig_token`` values of the callback URLs the API was given (also secrets).
"""

from __future__ import annotations

import base64
import configparser
import gzip
import json
import os
import re
import secrets
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

__all__ = [
    "EXCLUDED_TABLES",
    "Hit",
    "assert_no_secrets",
    "callback_signatures",
    "format_hits",
    "recognisable_secrets",
    "scan_for_secrets",
]

#: Tables that legitimately hold a secret, so a hit there is no leak:
#: ``connection`` stores the token (password) and callback secret (extra) by design, Fernet-encrypted;
#: a connection defined by an ``AIRFLOW_CONN_*`` environment variable never reaches it.
EXCLUDED_TABLES = frozenset({"connection", "alembic_version"})
#: Shorter needles would match by chance.
MIN_NEEDLE_LENGTH = 8
#: Length of the head/tail fragments searched for in needles of at least ``2 * PARTIAL`` characters.
PARTIAL = 16
_CONTEXT = 40
_FERNET = re.compile(rb"gAAAAA[A-Za-z0-9_\-]{40,}={0,2}")
UNDECRYPTABLE = "<undecryptable>"


@dataclass(frozen=True)
class Hit:
    """One place where a needle was found: ``where`` (file, table.column[row], text name), the
    needle's name, its encoding there, and a redacted context (no needle in it)."""

    where: str
    needle: str
    encoding: str
    context: str

    def __str__(self) -> str:
        return f"{self.where}: {self.needle} ({self.encoding}): …{self.context}…"


def format_hits(hits: Sequence[Hit], limit: int = 50) -> str:
    lines = [str(hit) for hit in hits[:limit]]
    if len(hits) > limit:
        lines.append(f"... and {len(hits) - limit} more")
    return "\n".join(lines)


def recognisable_secrets() -> dict[str, str]:
    """A token and a callback secret that appear nowhere by chance (the secret is 48+ characters)."""
    return {"token": "veo-tok-" + secrets.token_hex(16), "callback_secret": "veo-cbs-" + secrets.token_urlsafe(36)}


def callback_signatures(urls: Iterable[str | None]) -> list[str]:
    """The ``sig_token`` values of signed callback URLs (a signature is a bearer credential)."""
    sigs = {sig for url in urls if url for sig in parse_qs(urlsplit(url).query).get("sig_token", [])}
    return sorted(sigs)


# ------------------------------------------------------------------------------------ matching


def _b64_variants(raw: bytes) -> set[str]:
    """The base64 text of ``raw`` wherever it sits in a longer encoded value: for each of the three
    alignments, the characters that depend on ``raw`` alone."""
    out: set[str] = set()
    for pad in range(3):
        encoded = base64.b64encode(b"\0" * pad + raw).decode()
        start = (pad * 4 + 2) // 3  # first character not touched by the padding bytes
        end = (4 * (pad + len(raw))) // 3  # last character made of ``raw``'s bits alone
        core = encoded[start:end]
        if len(core) >= MIN_NEEDLE_LENGTH:
            out |= {core, core.replace("+", "-").replace("/", "_")}
    return out


def _variants(value: str) -> dict[str, str]:
    """encoded text -> encoding name."""
    out: dict[str, str] = {}

    def add(text: str, how: str) -> None:
        if text and text not in out:
            out[text] = how

    add(value, "raw")
    add(json.dumps(value)[1:-1], "json-escaped")
    add(json.dumps(value, ensure_ascii=False)[1:-1], "json-escaped")
    add(quote(value, safe=""), "url-encoded")
    add(quote_plus(value, safe=""), "url-encoded")
    add(quote(quote(value, safe=""), safe=""), "url-encoded twice")
    for text in sorted(_b64_variants(value.encode())):
        add(text, "base64")
    if len(value) >= 2 * PARTIAL:
        add(value[:PARTIAL], f"partial (first {PARTIAL} characters)")
        add(value[-PARTIAL:], f"partial (last {PARTIAL} characters)")
    return out


class _Matcher:
    def __init__(self, needles: Sequence[str] | Mapping[str, str]) -> None:
        named = dict(needles) if isinstance(needles, Mapping) else {_name(i, n): n for i, n in enumerate(needles)}
        self.encodings: dict[bytes, tuple[str, str]] = {}
        for name, value in named.items():
            if not isinstance(value, str) or len(value) < MIN_NEEDLE_LENGTH:
                raise ValueError(f"needle {name!r} must be a string of at least {MIN_NEEDLE_LENGTH} characters")
            for text, how in _variants(value).items():
                self.encodings.setdefault(text.encode("utf-8"), (name, how))
        # Longest first, so a needle is reported whole rather than as its head fragment.
        alternatives = sorted(self.encodings, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(a) for a in alternatives))
        self.longest = len(alternatives[0])

    def hits(self, where: str, data: bytes) -> list[Hit]:
        found: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        for match in self.pattern.finditer(data):
            name, how = self.encodings[match.group()]
            if (name, how) in seen:  # one hit per needle and encoding per place is enough to act on
                continue
            seen.add((name, how))
            found.append(Hit(where, name, how, self._context(data, match.start(), match.end())))
        return found

    def _context(self, data: bytes, start: int, end: int) -> str:
        """Up to ``_CONTEXT`` bytes each side, every needle replaced by ``[name]``; the rest of a
        token-like word the match sits in (another encoding of it, say) is cut too."""
        reach = _CONTEXT + self.longest
        before = self._redact(data[max(0, start - reach) : start])[-_CONTEXT:]
        after = self._redact(data[end : end + reach])[:_CONTEXT]
        before, after = _WORD_END.sub("…", before), _WORD_START.sub("…", after)
        name = self.encodings[data[start:end]][0]
        return f"{before}[{name}]{after}"

    def _redact(self, window: bytes) -> str:
        window = self.pattern.sub(lambda m: b"[" + self.encodings[m.group()][0].encode() + b"]", window)
        text = window.decode("utf-8", "backslashreplace")
        return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_WORD_END = re.compile(r"[\w%+/=.~-]+$")
_WORD_START = re.compile(r"^[\w%+/=.~-]+")


def _name(index: int, needle: str) -> str:
    return f"needle#{index} ({needle[:4]}…, {len(needle)} chars)"


# ------------------------------------------------------------------------------------- decoding


class _Decoder:
    """Everything a stored value may hide its text in: compression, Fernet encryption."""

    def __init__(self, keys: Sequence[str]) -> None:
        self.fernet: Any = None
        if keys:
            from cryptography.fernet import Fernet, MultiFernet

            self.fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys if k.strip()])

    def layers(self, where: str, data: bytes, depth: int = 0) -> Iterator[tuple[str, bytes]]:
        """``(where, bytes)`` of the value itself and of what it decompresses or decrypts to."""
        yield where, data
        if depth >= 3:
            return
        inflated = _inflate(data)
        if inflated is not None:
            yield from self.layers(f"{where} (decompressed)", inflated, depth + 1)
        for match in _FERNET.finditer(data):
            plain = self._decrypt(match.group())
            yield from self.layers(f"{where} (decrypted)", plain if plain is not None else b"", depth + 1)
            if plain is None:
                yield f"{where} ({UNDECRYPTABLE})", b""

    def _decrypt(self, token: bytes) -> bytes | None:
        if self.fernet is None:
            return None
        from cryptography.fernet import InvalidToken

        try:
            return self.fernet.decrypt(token)
        except InvalidToken:
            return None


def _inflate(data: bytes) -> bytes | None:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            return None
    if len(data) > 2 and data[0] == 0x78 and (data[0] * 256 + data[1]) % 31 == 0:
        try:
            return zlib.decompress(data)
        except zlib.error:
            return None
    return None


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bool | int | float):
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    try:  # JSON columns come back as Python objects
        return json.dumps(value, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return str(value).encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------------------- sources


def _files(log_dirs: Sequence[Path]) -> Iterator[Path]:
    for root in log_dirs:
        root = Path(root)
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from (p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


def _cfg_fernet_keys(log_dirs: Sequence[Path]) -> list[str]:
    keys = []
    for root in log_dirs:
        cfg = Path(root) / "airflow.cfg"
        if cfg.is_file():
            parser = configparser.ConfigParser(interpolation=None, strict=False)
            try:
                parser.read(cfg, encoding="utf-8")
                keys += [k for k in parser.get("core", "fernet_key", fallback="").split(",") if k.strip()]
            except configparser.Error:
                continue
    return keys


def _db_values(db_url: str) -> Iterator[tuple[str, Any]]:
    """``(table.column[row], value)`` of every text/JSON/binary column of every table but the excluded."""
    import sqlalchemy as sa

    skipped = (sa.Integer, sa.Numeric, sa.Float, sa.Boolean, sa.DateTime, sa.Date, sa.Time, sa.Interval)
    engine = sa.create_engine(db_url)
    try:
        inspector = sa.inspect(engine)
        with engine.connect() as conn:
            for table_name in sorted(inspector.get_table_names()):
                if table_name in EXCLUDED_TABLES:
                    continue
                columns = [c["name"] for c in inspector.get_columns(table_name) if not isinstance(c["type"], skipped)]
                if not columns:
                    continue
                table = sa.table(table_name, *(sa.column(c) for c in columns))
                result = conn.execution_options(stream_results=True).execute(sa.select(table))
                for row_number, row in enumerate(result):
                    for column, value in zip(columns, row, strict=True):
                        yield f"db:{table_name}.{column}[row {row_number}]", value
    finally:
        engine.dispose()


# ------------------------------------------------------------------------------------ the scan


def scan_for_secrets(
    needles: Sequence[str] | Mapping[str, str],
    *,
    log_dirs: Sequence[Path] = (),
    db_url: str | None = None,
    texts: Mapping[str, str] | None = None,
    fernet_keys: Sequence[str] = (),
) -> list[Hit]:
    """Every place under ``log_dirs``, in the database at ``db_url`` and in ``texts`` holding a needle.

    ``needles``: the secrets (8+ characters each), or ``{name: secret}`` to name them in hits.
    ``fernet_keys``: to decrypt Fernet tokens (default: the environment's, then ``airflow.cfg``'s).
    """
    matcher = _Matcher(needles)
    keys = list(fernet_keys) or [k for k in os.environ.get("AIRFLOW__CORE__FERNET_KEY", "").split(",") if k.strip()]
    decoder = _Decoder(keys or _cfg_fernet_keys(log_dirs))
    hits: list[Hit] = []

    def scan(where: str, data: bytes) -> None:
        for place, layer in decoder.layers(where, data):
            if place.endswith(f"({UNDECRYPTABLE})"):
                hits.append(Hit(place, UNDECRYPTABLE, "fernet", "a Fernet token no given key decrypts"))
            else:
                hits.extend(matcher.hits(place, layer))

    for path in _files(log_dirs):
        try:
            scan(f"file:{path}", path.read_bytes())
        except OSError as exc:  # a file removed while we walk: say so rather than skip silently
            hits.append(Hit(f"file:{path}", "<unreadable>", "io", type(exc).__name__))
    if db_url:
        for where, value in _db_values(db_url):
            data = _as_bytes(value)
            if data:
                scan(where, data)
    for name, text in (texts or {}).items():
        scan(f"text:{name}", text.encode("utf-8", "surrogatepass"))
    return hits


def assert_no_secrets(
    needles: Sequence[str] | Mapping[str, str],
    *,
    log_dirs: Sequence[Path] = (),
    db_url: str | None = None,
    texts: Mapping[str, str] | None = None,
    fernet_keys: Sequence[str] = (),
) -> None:
    """``scan_for_secrets`` for a test's end: fails with every hit (redacted) if there is any."""
    hits = scan_for_secrets(needles, log_dirs=log_dirs, db_url=db_url, texts=texts, fernet_keys=fernet_keys)
    assert not hits, f"{len(hits)} secret(s) found:\n{format_hits(hits)}"
