"""Run the API under uvicorn in a background thread (the demo and end-to-end tests use it)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class BackgroundServer:
    app: FastAPI
    port: int
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        config = uvicorn.Config(self.app, host=self.host, port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="loopwatch-api", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Graceful: uvicorn runs the lifespan shutdown, which flushes everything accepted."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def browsable(host: str, port: int) -> str:
    """The URL a person opens for a server bound to ``host`` (a wildcard address means this machine)."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104 - a name, no bind
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


class AnnouncingServer(uvicorn.Server):
    """uvicorn's server that calls ``announce`` once it listens (after the lifespan start-up), so what
    is printed is true: the address answers."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self._announce = announce

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._announce()


def serve_forever(app: FastAPI, host: str, port: int, announce: Callable[[], None]) -> None:
    """Run the API in the foreground until Ctrl-C / SIGTERM, calling ``announce`` once it listens."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    AnnouncingServer(config, announce).run()
