"""The ``loopwatch`` command against a data directory a running server holds.

Real processes: ``loopwatch serve`` in a subprocess owns the chDB directory, and the keys commands run
as other processes on the same directory, as a person at a terminal would run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from loopwatch._server import free_port

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("LOOPWATCH_")}
    return {**inherited, "PYTHONPATH": str(REPO), "LOOPWATCH_DATA_DIR": str(tmp_path), "LOOPWATCH_LOG_LEVEL": "warning"}


def _loopwatch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "loopwatch", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def server(env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "loopwatch", "serve", "--port", str(port)], cwd=REPO, env=env
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("loopwatch serve did not become ready")
        time.sleep(0.2)
    yield process
    process.terminate()
    process.wait(60)


class TestKeysWhileServing:
    """Keys commands on a directory a running server holds: one line saying what to do, exit 1."""

    def test_create_says_what_to_do(self, env: dict[str, str], server: subprocess.Popen[bytes], tmp_path: Path) -> None:
        result = _loopwatch(env, "keys", "create", "--project", "shop")
        assert result.returncode == 1
        assert (result.stdout + result.stderr).splitlines() == [
            f"the embedded database {(tmp_path / 'chdb').resolve()} is in use by process {server.pid}: "
            "stop that server, or use `POST /v1/keys` with the admin key"
        ]

    def test_list_and_revoke_name_their_endpoints(self, env: dict[str, str], server: subprocess.Popen[bytes]) -> None:
        listed, revoked = _loopwatch(env, "keys", "list"), _loopwatch(env, "keys", "revoke", "k1")
        assert (listed.returncode, revoked.returncode) == (1, 1)
        assert listed.stdout.rstrip().endswith("use `GET /v1/keys` with the admin key")
        assert revoked.stdout.rstrip().endswith("use `DELETE /v1/keys/k1` with the admin key")

    def test_a_second_server_says_what_to_do(
        self, env: dict[str, str], server: subprocess.Popen[bytes], tmp_path: Path
    ) -> None:
        result = _loopwatch(env, "serve", "--port", str(free_port()))
        assert result.returncode == 1
        assert (result.stdout + result.stderr).splitlines() == [
            f"the embedded database {(tmp_path / 'chdb').resolve()} is in use by process {server.pid}: "
            "stop it, or set another LOOPWATCH_DATA_DIR"
        ]

    def test_create_works_once_the_server_stopped(self, env: dict[str, str], server: subprocess.Popen[bytes]) -> None:
        server.terminate()
        server.wait(60)
        result = _loopwatch(env, "keys", "create", "--project", "shop")
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.splitlines()[-1].startswith("lw_")


class TestKeyScopes:
    """``loopwatch keys create --scope``: the scope is stored and listed; an unknown scope is refused."""

    def test_scoped_key_is_created_and_listed(self, env: dict[str, str]) -> None:
        created = _loopwatch(env, "keys", "create", "--project", "shop", "--name", "app", "--scope", "ingest")
        assert created.returncode == 0, created.stderr[-2000:]
        assert "(ingest)" in created.stdout
        assert created.stdout.splitlines()[-1].startswith("lw_")
        full = _loopwatch(env, "keys", "create", "--project", "shop")
        assert "(full access)" in full.stdout
        listed = _loopwatch(env, "keys", "list", "--project", "shop")
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert "ingest" in listed.stdout and "full" in listed.stdout

    def test_unknown_scope_is_refused(self, env: dict[str, str]) -> None:
        result = _loopwatch(env, "keys", "create", "--project", "shop", "--scope", "write")
        assert result.returncode == 2
        assert "'write' is not one of" in result.stderr
