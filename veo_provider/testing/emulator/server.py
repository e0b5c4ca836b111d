"""``VeoEmulator``: an emulator app served by uvicorn in a background thread, for tests."""

from __future__ import annotations

import dataclasses
import json
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from veo_provider.testing.emulator.app import create_app
from veo_provider.testing.emulator.faults import Faults
from veo_provider.testing.emulator.jobs import Job
from veo_provider.testing.emulator.state import EmulatorConfig, EmulatorState

__all__ = ["VeoEmulator"]


class VeoEmulator:
    """Runs an emulator app with uvicorn in a background thread on a free local port.

    The state is this process's: tests read counters and set faults directly, no HTTP needed.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any):
        cfg = config or EmulatorConfig()
        self.config = dataclasses.replace(cfg, **overrides) if overrides else cfg
        self.app = create_app(self.config)
        self.state: EmulatorState = self.app.state.emulator
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("the emulator is not started: call start() or use it as a context manager")
        return f"http://{self.config.host}:{self._port}"

    @property
    def token(self) -> str:
        return self.config.tokens[0]

    @property
    def headers(self) -> dict[str, str]:
        """Headers the real client sends, with a valid token."""
        return {
            "accept": "application/json",
            "authorization": f"Bearer {self.token}",
            "content-type": "application/json",
        }

    def start(self, timeout: float = 10.0) -> VeoEmulator:
        import uvicorn

        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.config.host, self.config.port))
        self._sock, self._port = sock, sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                log_config=None,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=1,
            )
        )
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"veo-emulator-{self._port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the Veo emulator did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> VeoEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------- state access
    def set_faults(self, update: Mapping[str, Any] | Faults | None = None, **faults: Any) -> Faults:
        return self.state.set_faults(update, **faults)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def reset(self) -> None:
        self.state.reset()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    @property
    def access_log(self) -> list[dict[str, Any]]:
        """Every request received (oldest first): method, path, query, status, redacted headers."""
        return self.state.access_log()

    def access_log_text(self) -> str:
        """The access log as JSON lines, as a log file would hold it (e.g. for a secrets scan)."""
        return "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in self.access_log)

    @property
    def jobs(self) -> list[Job]:
        return self.state.jobs_snapshot()

    @property
    def jobs_created(self) -> int:
        return self.state.jobs_created

    @property
    def max_jobs_per_body(self) -> int:
        return self.state.max_jobs_per_body

    def jobs_for_body(self, body: Mapping[str, Any], path: str = "/veo/videos") -> int:
        return self.state.jobs_for_body(body, path)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
        """Poll ``predicate`` (e.g. on ``stats()``) until true or ``timeout``; returns the last value."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
