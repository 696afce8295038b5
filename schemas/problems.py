"""Validation errors as the API's 422 items, and as ``location: message`` lines: one shape and one
wording for every place that reports them.

Routes answer with these items; the monitors-file loader (``streams.monitors.store``), ingest's dead
letters and the dashboard print the same locations and messages as lines (``problem_line``, written
once in the SDK, which the server depends on), so a user sees one wording wherever a value is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from loopwatch_sdk.problems import location, problem_line, problem_lines
from pydantic import ValidationError

__all__ = ["location", "problem_line", "problem_lines", "validation_problems"]


def validation_problems(exc: ValidationError, prefix: Iterable[str | int] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as FastAPI 422 items (``loc``, ``msg``, ``type``), locations prefixed (e.g. ``body``)."""
    return [
        {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
