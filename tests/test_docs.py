"""The README documents every setting: a new ``Settings`` field without a line there fails here."""

from __future__ import annotations

import re
from pathlib import Path

from schemas.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
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
