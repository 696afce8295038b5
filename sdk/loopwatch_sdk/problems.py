"""Validation problems as ``location: message`` lines, written once (the server depends on the SDK).

The SDK's logs, ingest's dead letters, the monitors-file loader and the dashboard's forms all word a
problem the same way. A location names fields with dots and list items in brackets, e.g.
``monitors[2].condition.value: Input should be a valid number``.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError


def location(parts: Iterable[str | int]) -> str:
    """``monitors[2].condition.value`` for ``["monitors", 2, "condition", "value"]``; '' for none."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problem_line(loc: Iterable[str | int], msg: str, *, whole: str = "") -> str:
    """``loc: msg``. A problem without a location (the whole value) reads ``whole: msg``, or just
    ``msg`` when ``whole`` is ''."""
    where = location(loc) or whole
    return f"{where}: {msg}" if where else msg


def problem_lines(exc: ValidationError, prefix: Iterable[str | int] = (), *, whole: str = "") -> list[str]:
    """Every error of ``exc`` as a line, its location after ``prefix``. Inputs are never included:
    they may be prompts, responses or secrets, and these lines reach logs and dead letters."""
    head = list(prefix)
    return [
        problem_line([*head, *error["loc"]], error["msg"], whole=whole)
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
