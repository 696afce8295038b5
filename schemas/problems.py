"""Validation errors as the API's 422 items: one shape for every place that reports them.

Routes answer with these items, and the monitors-file loader (``streams.monitors.store``) prints the
same locations and messages, so a user sees one wording wherever a monitor is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError


def validation_problems(exc: ValidationError, prefix: Iterable[str | int] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as FastAPI 422 items (``loc``, ``msg``, ``type``), locations prefixed (e.g. ``body``)."""
    return [
        {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
