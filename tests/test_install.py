"""A plain ``pip install .`` of a clone gives a working ``loopwatch`` command, with no build warnings.

The way Python projects are normally installed (and how docker/Dockerfile installs): a fresh venv without
system site-packages, a clean copy of the tracked files, ``pip install <copy>`` (a non-editable build,
dependencies from the package index through pip's cache). The SDK package ships inside the server's
distribution, so nothing needs an index that does not have it. The installed command then creates a key
on embedded chDB, which imports the server's whole stack.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.sdk.test_sdk_install import _pypi_reachable
from tests.server_process import ROOT


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"}}
    done = subprocess.run(  # noqa: S603
        args, cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"{args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _tracked_copy(target: Path) -> Path:
    files = (
        subprocess.run(  # noqa: S603
            ["git", "ls-files", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,  # noqa: S607
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_pip_install_of_a_clone_gives_a_working_command(tmp_path: Path) -> None:
    if not _pypi_reachable():
        pytest.skip("PyPI is unreachable: the fresh venv cannot fetch loopwatch's dependencies")
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    clone = _tracked_copy(tmp_path / "clone")
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--verbose", str(clone)], cwd=tmp_path)
    output = installed.stdout + installed.stderr
    warnings = [line for line in output.splitlines() if "BuildBackendWarning" in line or "DeprecationWarning" in line]
    assert warnings == []  # e.g. setuptools' "`project.license` as a TOML table is deprecated"

    data = tmp_path / "data"
    created = _run(
        [str(venv / "bin" / "loopwatch"), "keys", "create", "--project", "fresh"],
        cwd=tmp_path,
        env={"LOOPWATCH_DATA_DIR": str(data)},
    )
    assert created.stdout.strip().splitlines()[-1].startswith("lw_")
    imported = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import loopwatch_sdk, api.app, streams.runtime; print(loopwatch_sdk.__file__)",
        ],
        cwd=tmp_path,
    )
    assert str(venv) in imported.stdout
