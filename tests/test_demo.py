"""The README's first command: the demo runs end to end and its read-back equals what it sent.

Run as a subprocess: the demo opens its own chDB data directory, and chDB allows one per process.
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from tests.test_cli import serving

REPO = Path(__file__).resolve().parents[1]


def test_demo_counts_match(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argv
        [
            sys.executable,
            "-m",
            "loopwatch",
            "demo",
            "--events",
            "1500",
            "--batch",
            "250",
            "--data-dir",
            str(tmp_path),
            "--no-serve",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "160", "HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "all counts match" in result.stdout
    assert "1500" in result.stdout
    out = " ".join(result.stdout.split())  # rich wraps long lines
    assert "alert within one window of it: yes" in out
    assert "verified with the monitor's secret: True" in out
    # the alert and the table word drift alike: the family's drifted columns, Evidently's share apart
    assert re.search(r"— (response|prompt|features) family drifted: \d+ of \d+ columns", out)
    assert "Evidently share" in out
    # its links lead to where the dashboard will be: the `loopwatch serve` the demo tells people to run
    assert re.search(r"open the alert: http://127\.0\.0\.1:8000/ui/alerts/[0-9a-f]+\?project=demo", out)
    assert '"type": "header"' in out  # the Slack Block Kit rendering of the alert
    ended = datetime.now(UTC)
    # without a terminal the demo's server is gone: it names no URL of it, but how to serve what it left
    assert "the demo's server has stopped" in out
    assert set(re.findall(r"http://127\.0\.0\.1:(\d+)/ui", out)) == {"8000"}  # the port `loopwatch serve` takes
    found = re.search(r"LOOPWATCH_DATA_DIR=(\S+) (\S+) serve .* sign in with the demo project key: (lw_\S+)", out)
    assert found, out[-3000:]
    data_dir, command, token = found.groups()
    assert Path(data_dir) == tmp_path
    # the command runs as printed from where the demo ran, loopwatch not being on this PATH
    assert command == str(Path(sys.executable).parent.relative_to(REPO) / "loopwatch")
    assert "serve" in subprocess.run([REPO / command, "--help"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "HOME": str(tmp_path), "LOOPWATCH_DATA_DIR": data_dir}
    with serving(env) as url, httpx.Client(base_url=url, timeout=30) as client:
        page = client.get("/ui/signin").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert csrf
        client.post("/ui/signin", data={"csrf_token": csrf.group(1), "api_key": token})
        assert 'data-model="gpt-4o-mini"' in client.get("/ui").text
        # no event is stamped later than it was sent (all were sent before the demo ended)
        headers = {"authorization": f"Bearer {token}"}
        models = client.get("/v1/models", headers=headers).raise_for_status().json()
        assert max(datetime.fromisoformat(model["last_seen"]) for model in models) <= ended
        export = client.get("/v1/feedback/export", params={"format": "jsonl"}, headers=headers).raise_for_status()
        stamps = [datetime.fromisoformat(orjson.loads(line)["timestamp"]) for line in export.text.splitlines()]
        assert len(stamps) > 100
        assert max(stamps) <= ended


def test_demo_serves_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    """On a terminal the demo ends by serving the dashboard; the printed key signs in; Ctrl-C stops it."""
    import os
    import pty
    import signal
    import threading

    import httpx

    leader, follower = pty.openpty()
    # Started as a person's shell starts it: no signal blocked or ignored, whatever this test process picked
    # up from earlier tests (a child inherits both across exec; late in a full run Ctrl-C never arrived).
    clean_start = (
        "import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); "
        "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    process = subprocess.Popen(  # noqa: S603 - fixed argv
        [sys.executable, "-c", clean_start, "-m", "loopwatch", "demo", "--events", "1500", "--batch", "250"]
        + ["--data-dir", str(tmp_path)],
        cwd=REPO,
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "400", "HOME": str(tmp_path)},
    )
    os.close(follower)
    try:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if "serving the dashboard until Ctrl-C" in line:
                break
        found = re.search(
            r"open (http://127\.0\.0\.1:\d+)/ui and sign in with the demo project key: (lw_\S+)", "".join(seen)
        )
        assert found, "".join(seen)[-3000:]
        url, token = found.groups()
        with httpx.Client(base_url=url, timeout=30) as client:
            page = client.get("/ui/signin").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert csrf
            client.post("/ui/signin", data={"csrf_token": csrf.group(1), "api_key": token})
            overview = client.get("/ui")
            assert overview.status_code == 200
            assert 'data-model="gpt-4o-mini"' in overview.text
        # keep reading: a demo that logs while it shuts down must not block on a full pipe
        rest: list[str] = []
        drain = threading.Thread(target=lambda: rest.extend(process.stdout or ()), daemon=True)
        drain.start()
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:  # say what the demo was doing: its signal masks and last output
            status = Path(f"/proc/{process.pid}/status").read_text()
            masks = [line for line in status.splitlines() if line.startswith(("SigBlk", "SigIgn", "SigCgt", "Threads"))]
            pytest.fail(f"the demo did not stop on Ctrl-C: {masks}\n{''.join(rest)[-3000:]}")
        assert code == 0, "".join(rest)[-3000:]
        drain.join(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(leader)
