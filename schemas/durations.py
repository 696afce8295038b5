"""Durations as people type them on the command line: ``90s``, ``15m``, ``24h``, ``30d``, ``2w``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d{1,6})([smhdw])")


def parse_duration(text: str, *, zero: bool = False) -> timedelta:
    """``text`` as a ``timedelta``; ``ValueError`` naming the accepted form otherwise (or for zero,
    unless ``zero``)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write a number and a unit, e.g. 90s, 15m, 24h, 30d, 2w")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not seconds and not zero:
        raise ValueError(f"{text!r} is no time at all: give a duration above zero")
    return timedelta(seconds=seconds)
