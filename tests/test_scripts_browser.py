"""``scripts/browser`` installs Chromium as CI's machines need: as root, without sudo.

CI runs as root on machines that may have neither Chromium nor ``sudo``. The test hides the installed
chromedriver in a private mount namespace (bind-mounting ``/dev/null`` over it, so it is not executable
there) and runs the script with a PATH that has no ``sudo``: the script must go to apt-get itself and
succeed (apt-get finds the packages installed, so no download is needed once the suite's own
``scripts/browser`` ran).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server_process import ROOT


def test_installs_chromium_as_root_without_sudo(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare (as on CI): the test hides chromedriver in a mount namespace")
    bin_dir = tmp_path / "bin"  # the system's tools, minus sudo
    bin_dir.mkdir()
    for directory in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for tool in Path(directory).iterdir():
            if tool.name != "sudo" and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    script = (
        f"mount --bind /dev/null /usr/bin/chromedriver && test ! -x /usr/bin/chromedriver && {ROOT}/scripts/browser"
    )
    done = subprocess.run(  # noqa: S603
        ["unshare", "-m", "bash", "-c", script],  # noqa: S607
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "installing chromium and chromium-driver" in done.stderr
    assert "chromium-driver" in done.stdout  # apt-get itself ran (and found or installed the package)


def test_a_user_who_is_not_root_is_told_what_to_install() -> None:
    """No privilege escalation: a non-root user without the browser gets the apt-get line and a failure."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("setpriv") is None:
        pytest.skip("needs root, unshare and setpriv to hide chromedriver and drop to another user")
    script = (
        "mount --bind /dev/null /usr/bin/chromedriver && "
        f"setpriv --reuid=65534 --regid=65534 --clear-groups {ROOT}/scripts/browser"
    )
    done = subprocess.run(  # noqa: S603
        ["unshare", "-m", "bash", "-c", script],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "apt-get install chromium chromium-driver" in done.stderr
    assert "installing" not in done.stderr  # it tried nothing
