"""Error shapes: every 4xx is documented in OpenAPI, and 422s keep FastAPI's list-of-problems shape."""

from __future__ import annotations

import math
from typing import Any

from fastapi import HTTPException, status
from pydantic import BaseModel


class ErrorMessage(BaseModel):
    detail: str


class Problem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class Unprocessable(BaseModel):
    detail: list[Problem]


_DESCRIPTIONS = {
    400: "malformed request (e.g. body is not JSON)",
    401: "missing, invalid or revoked API key",
    403: "the key may not act on this project",
    404: "not found in this project",
    413: "body or batch over the configured limits",
    415: "unsupported Content-Type or Content-Encoding",
    422: "",
    503: "storage unavailable, retry later",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error status codes."""
    documented: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorMessage, "description": _DESCRIPTIONS[code]} for code in codes if code != 422
    }
    if 422 in codes:
        documented[422] = {"model": Unprocessable, "description": "invalid input; each problem names its location"}
    return documented


def problem(loc: list[str | int], message: str, kind: str = "value_error") -> dict[str, Any]:
    """One item of a 422's ``detail`` (``Problem``'s JSON)."""
    return {"loc": loc, "msg": message, "type": kind}


def unprocessable_all(problems: list[dict[str, Any]]) -> HTTPException:
    """A 422 in FastAPI's own shape, so clients parse every validation error the same way."""
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)


def unprocessable(loc: list[str | int], message: str, kind: str = "value_error") -> HTTPException:
    """A 422 with one problem."""
    return unprocessable_all([problem(loc, message, kind)])


def finite(value: Any) -> Any:
    """``value`` (a 422's problems, as JSON types) with each non-finite float as its text: a problem
    quotes the input, and a JSON number past a double (``1e400``) was read as ``inf``, which JSON
    cannot write (the 422 would have become a 500)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite(item) for item in value]
    return value
