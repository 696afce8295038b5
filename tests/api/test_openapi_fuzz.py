"""The served OpenAPI is what the server does: schemathesis runs every check over every operation.

The schemathesis CLI runs against a real uvicorn server (real app, real chDB) with all checks (no
server errors; documented status codes, content types, headers and bodies; schema-valid requests
accepted and schema-violating ones refused; ``Allow`` on 405; deleted resources gone; auth enforced)
in every phase, stateful included. Requests carry a project key, and the admin key on ``/v1/keys``, so
they reach the handlers. Rules across fields, which JSON Schema cannot carry and the spec states in
prose, shape the positive cases in ``schemathesis_hooks``. Bounded by examples per operation and a
fixed seed (~30 s on 2 cores); the timeout only catches a hang.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from loopwatch._server import BackgroundServer, free_port
from loopwatch.process import serving_app
from tests.conftest import make_settings

REPO = Path(__file__).resolve().parents[2]
ADMIN_KEY = "fuzz-admin-key-0123456789"


def _schemathesis() -> list[str]:
    found = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "schemathesis.cli"]


def test_all_checks_over_all_operations(data_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        f'[[operations]]\ninclude-path-regex = "^/v1/keys"\nheaders = {{ Authorization = "Bearer {ADMIN_KEY}" }}\n'
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"}
    app = serving_app(make_settings(data_dir, admin_key=ADMIN_KEY))
    with BackgroundServer(app, free_port()) as server:
        token = server.app.state.runtime.keys.create("fuzz").token
        operations = sum(len(methods) for methods in app.openapi()["paths"].values())
        argv = [
            *_schemathesis(),
            "--config-file",
            str(config),
            "run",
            f"{server.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--generation-database",
            "none",
            "--request-timeout",
            "30",
            "--no-color",
        ]
        result = subprocess.run(  # noqa: S603 - fixed argv, loopback target
            argv,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=tmp_path,
            env=env,
        )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    summary = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", result.stdout)
    assert summary is not None, result.stdout[-3000:]
    assert summary.groups() == (str(operations),) * 3  # every operation of the served spec was tested
