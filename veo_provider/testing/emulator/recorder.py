"""``CallbackRecorder``: a tiny HTTP server that records the callbacks POSTed to it (a webhook.site for tests).

Not to be confused with ``veo_provider.callbacks.decision.CallbackPort``, the receiver's database port.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any

__all__ = ["CallbackRecorder", "ReceivedCallback"]


@dataclasses.dataclass
class ReceivedCallback:
    """One POST the recorder received (``json`` parses its body)."""

    path: str
    headers: dict[str, str]
    raw: bytes
    received_at: float

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


class CallbackRecorder:
    """A tiny threaded HTTP server that records every POST: a webhook.site for tests."""

    def __init__(self, status: int = 200, host: str = "127.0.0.1"):
        self.status = status
        self.host = host
        self.received: list[ReceivedCallback] = []
        self._cond = threading.Condition()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the callback recorder is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> CallbackRecorder:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                item = ReceivedCallback(self.path, {k.lower(): v for k, v in self.headers.items()}, raw, time.time())
                with recorder._cond:
                    recorder.received.append(item)
                    recorder._cond.notify_all()
                self.send_response(recorder.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # so that stop() is quick
            name="veo-callback-recorder",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> CallbackRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[ReceivedCallback]:
        """Block until ``n`` callbacks arrived (or ``timeout``); returns all received so far."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= n, timeout)
            return list(self.received)
