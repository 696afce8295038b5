"""The README documents every setting (a new ``Settings`` field without a line there fails here), and its
API examples work when pasted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx

from schemas.settings import Settings
from tests.test_cli import serving

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
# `LOOPWATCH_BATCH_MAX_EVENTS` / `_SECONDS`: the short form replaces as many trailing words as it has
_NAMED = re.compile(r"`(LOOPWATCH_[A-Z0-9_]+)`((?:\s*/\s*`_[A-Z0-9_]+`)*)")
_SHORT = re.compile(r"`(_[A-Z0-9_]+)`")


def shorthand() -> set[str]:
    """Settings named in the short form only (e.g. `_SECONDS` after `LOOPWATCH_BATCH_MAX_EVENTS`)."""
    names = set()
    for match in _NAMED.finditer(README):
        full = match.group(1)
        for short in _SHORT.findall(match.group(2)):
            words = short.strip("_").split("_")
            names.add("_".join([*full.split("_")[: -len(words)], *words]))
    return names


def documented() -> set[str]:
    return set(re.findall(r"\bLOOPWATCH_[A-Z0-9_]*[A-Z0-9]", README)) | shorthand()


def test_every_setting_is_documented() -> None:
    missing = sorted(f"LOOPWATCH_{name.upper()}" for name in Settings.model_fields)
    missing = [name for name in missing if name not in documented()]
    assert not missing, f"add these to README's configuration table: {missing}"


def test_the_short_forms_name_real_settings() -> None:
    known = {f"LOOPWATCH_{name.upper()}" for name in Settings.model_fields}
    assert {"LOOPWATCH_BATCH_MAX_SECONDS", "LOOPWATCH_ACK_TIMEOUT_SECONDS", "LOOPWATCH_LOG_LEVEL"} <= shorthand()
    assert shorthand() <= known, sorted(shorthand() - known)


# --- the README's API examples, run as written against a real `loopwatch serve` ---------------------

_BLOCK = re.compile(r"^( *)```bash\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
# How the examples run here: `curl` fails on an HTTP error (the examples use `curl -s`, which would not),
# `loopwatch` is this checkout's, and `open` (a browser) is not run. The server runs on a free port.
_PRELUDE = """set -euo pipefail
curl() { command curl --fail-with-body --show-error "$@"; echo; }
loopwatch() { "$PYTHON" -m loopwatch "$@"; }
open() { :; }
"""


def examples(section: str) -> list[str]:
    """The ```bash blocks of a README section (``## name``) that talk to the API, dedented."""
    start = README.index(f"\n## {section}\n")
    end = README.find("\n## ", start + 1)
    blocks = [textwrap.dedent(indent + body) for indent, body in _BLOCK.findall(README[start:end])]
    return [block for block in blocks if "localhost:8000" in block]


def test_the_api_examples_work_as_written(tmp_path: Path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "PYTHON": sys.executable,
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "LOOPWATCH_DATA_DIR": str(tmp_path),
        "LOOPWATCH_LOG_LEVEL": "warning",
    }

    def run(script: str, port: int = 0) -> str:
        script = script.replace("localhost:8000", f"localhost:{port}")
        result = subprocess.run(  # noqa: S603 - a fixed interpreter
            ["/bin/bash", "-c", _PRELUDE + script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, (
            f"{script}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
        )
        return result.stdout

    first, *others = examples("Using the API")
    setup, _, rest = first.partition("loopwatch serve --port 8000 &")
    assert setup.startswith("loopwatch keys create --project shop")
    assert "export KEY=lw_...\n" in setup
    env["KEY"] = run(setup.replace("export KEY=lw_...\n", "")).splitlines()[-1]  # the token it printed
    assert env["KEY"].startswith("lw_")
    # the reference upload example sends the user's own training rows
    (tmp_path / "train.csv").write_text("tenure,plan\n" + "".join(f"{i % 37},{'ab'[i % 2]}\n" for i in range(200)))
    scripts = [rest, *others, *examples("Statistics per window"), *examples("Monitors, alerts and retraining")]
    # the version comparison example compares two versions' traffic since 2026-11-23: the user's own
    canary = [
        {
            "model": "gpt-4o-mini",
            "model_version": f"2026-1{i % 2}",
            "timestamp": f"2026-11-24T10:{i // 2:02d}:00Z",
            "latency_ms": 500 + i * 7 % 300,
            "input_tokens": 100 + i,
            "output_tokens": 200 + i,
        }
        for i in range(120)
    ]
    with serving(env) as url:
        port = int(url.rsplit(":", 1)[1])
        headers = {"authorization": f"Bearer {env['KEY']}"}
        assert httpx.post(f"{url}/v1/inferences", json=canary, headers=headers, timeout=60).status_code == 202
        outputs = [run(script, port) for script in scripts]
    documented = re.search(r"# → 202 (\{.*\})", first)
    assert documented
    assert json.loads(outputs[0].splitlines()[0]) == json.loads(documented.group(1))
    assert any('"monitor_id":"support-drift"' in output for output in outputs)  # the monitor example made one
    assert any('"kind":"range"' in output for output in outputs)  # the reference pinned on the example's event
