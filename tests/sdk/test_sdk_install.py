"""``pip install ./sdk`` in a fresh venv gives an app the emitter and nothing of the server.

The venv is created without system site-packages and ``./sdk`` is installed as a user would (a
non-editable build, dependencies resolved from PyPI through pip's cache). A script in that venv then
sends events over HTTP to a real ``loopwatch serve`` and the test reads them back through the API; the
same script shows that the server's packages (and their heavy dependencies) cannot be imported there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server_process import ROOT, ServerProcess, run_cli
from tests.waiting import wait_until

#: What an SDK-only install must not bring: the server's own packages and its heavy dependencies.
SERVER_ONLY = ["fastapi", "chdb", "faust", "evidently", "pandas", "schemas", "detectors", "streams", "api", "loopwatch"]

APP = """
import dataclasses, importlib, importlib.metadata, json, sys

from loopwatch_sdk import Emitter

url, key = sys.argv[1], sys.argv[2]
with Emitter("sdkapp", http_url=url, api_key=key, default_model="chat") as emitter:
    ids = [emitter.log_inference(prompt=f"q{i}", response="a", latency_ms=10.0 + i) for i in range(40)]
    with emitter.track(model="chat", prompt="tracked") as call:
        call.response = "done"
    emitter.log_feedback(ids[0], kind="thumbs", value=True)
    emitter.log_inference(model="chat", latency_ms=-1)  # invalid: counted, never raised
    flushed = emitter.flush(60)
importable = []
for name in sys.argv[3:]:
    try:
        importlib.import_module(name)
    except ImportError:
        continue
    importable.append(name)
files = importlib.metadata.distribution("loopwatch-sdk").files or []
top_level = sorted({f.parts[0] for f in files if f.suffix == ".py" and not f.parts[0].startswith("..")})
print(json.dumps({"ids": ids, "flushed": flushed, "stats": dataclasses.asdict(emitter.stats),
                  "importable": importable, "top_level": top_level}))
"""


def _pypi_reachable() -> bool:
    try:
        with urllib.request.urlopen("https://pypi.org/simple/pip/", timeout=15):
            return True
    except OSError:
        return False


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run outside this test venv: no PYTHONPATH and no VIRTUAL_ENV leak into the SDK venv."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with ``./sdk`` pip-installed (not editable); its python."""
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: the fresh venv cannot fetch the SDK's dependencies")
    venv = tmp_path_factory.mktemp("sdk-venv")
    _run([sys.executable, "-m", "venv", str(venv)], cwd=venv)
    python = venv / "bin" / "python"
    copy = venv / "src"  # a clean copy: the build leaves nothing in the checkout, takes nothing from it
    shutil.copytree(ROOT / "sdk", copy, ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    _run([str(python), "-m", "pip", "install", "--quiet", str(copy)], cwd=venv)
    return python


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    data_dir = tmp_path_factory.mktemp("sdk-server") / "lw"
    token = run_cli(data_dir, "keys", "create", "--project", "sdkapp").strip().splitlines()[-1]
    server = ServerProcess(data_dir)
    try:
        yield server, token
    finally:
        server.terminate(60)


def test_the_sdk_alone_sends_events_that_are_stored(
    sdk_python: Path, server: tuple[ServerProcess, str], tmp_path: Path
) -> None:
    running, token = server
    script = tmp_path / "app.py"  # outside the checkout: the repo's packages are not on its sys.path
    script.write_text(APP)
    done = _run([str(sdk_python), str(script), running.url, token, *SERVER_ONLY], cwd=tmp_path, timeout=180)
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["importable"] == []
    assert report["top_level"] == ["loopwatch_sdk"]  # one non-generic name in the app's site-packages
    assert report["flushed"] is True
    assert report["stats"] == {"queued": 0, "sent": 42, "dropped": 0, "failed": 0, "invalid": 1}

    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=30) as client:

        def stored() -> bool:  # once the sink flushes
            models = client.get("/v1/models").json()
            return bool(models) and models[0]["inferences"] == 41 and models[0]["feedback"] == 1

        wait_until(stored, "the 41 inferences and 1 feedback to be stored", timeout=120, interval=0.2)
        first = client.get(f"/v1/inferences/{report['ids'][0]}").json()
    assert first["prompt"] == "q0"
    assert [item["kind"] for item in first["feedback"]] == ["thumbs"]
