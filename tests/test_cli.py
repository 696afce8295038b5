"""The ``loopwatch`` command against a data directory a running server holds.

Real processes: ``loopwatch serve`` in a subprocess owns the chDB directory, and the keys commands run
as other processes on the same directory, as a person at a terminal would run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from loopwatch._server import free_port
from tests.waiting import wait_until

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

    def ready() -> bool:
        assert process.poll() is None, f"loopwatch serve exited with {process.returncode}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(ready, "loopwatch serve to be ready", timeout=120, interval=0.2)
    except AssertionError:
        process.kill()
        raise
    yield process
    process.terminate()
    process.wait(60)


@contextmanager
def serving(env: dict[str, str]) -> Iterator[str]:
    """``loopwatch serve`` on a free port; yields its URL once it printed that it listens."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "loopwatch", "serve", "--port", str(port)],
        cwd=REPO,
        env={**env, "COLUMNS": "80"},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()  # printed once the server listens ('' if it died)
        assert first.startswith(f"loopwatch serving on http://127.0.0.1:{port} "), first
        yield f"http://127.0.0.1:{port}"
    finally:
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


class TestServeSaysWhereItIs:
    """``loopwatch serve`` prints the address, the dashboard and the docs once it listens; they answer."""

    def test_the_printed_urls_answer(self, env: dict[str, str], tmp_path: Path) -> None:
        port = free_port()
        process = subprocess.Popen(  # noqa: S603 - fixed argv
            [sys.executable, "-m", "loopwatch", "serve", "--port", str(port)],
            cwd=REPO,
            env={**env, "COLUMNS": "80"},
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            lines = [process.stdout.readline() for _ in range(3)]  # printed once the server listens
            url = f"http://127.0.0.1:{port}"
            assert lines == [
                f"loopwatch serving on {url} (data: {tmp_path}); Ctrl-C stops it\n",
                f"  dashboard  {url}/ui  (sign in with a key from `loopwatch keys create --project NAME`)\n",
                f"  API docs   {url}/docs\n",
            ]
            with httpx.Client(base_url=url, timeout=30) as client:
                root = client.get("/", follow_redirects=False)
                assert (root.status_code, root.headers["location"]) == (307, "/ui")
                assert client.get("/ui", follow_redirects=True).url.path == "/ui/signin"
                assert "swagger-ui-bundle.js" in client.get("/docs").text
        finally:
            process.terminate()
            process.wait(60)


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
