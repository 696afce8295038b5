"""The README's first command: the demo runs end to end and its read-back equals what it sent.

Run as a subprocess: the demo opens its own chDB data directory, and chDB allows one per process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_demo_counts_match(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "loopwatch", "demo", "--events", "1500", "--batch", "250", "--data-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "160", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "all counts match" in result.stdout
    assert "1500" in result.stdout
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "alert within one window of it: yes" in out
    assert "verified with the monitor's secret: True" in out
    assert '"type": "header"' in out  # the Slack Block Kit rendering of the alert
