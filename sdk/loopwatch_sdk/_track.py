"""``emitter.track(...)``: time one model call and log it as an inference when the block ends.

The tracker gets the emitter's two entry points as callables rather than the emitter itself, so this
module does not import ``_emitter`` (which imports this one): no import cycle, not even a typing one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from loopwatch_sdk.wire import Kind

#: Validates and queues an inference from ``log_inference``-style keyword values; returns its id.
Submit = Callable[[dict[str, Any]], str]
#: Counts and logs an event that could not even be built (kind, the error).
ReportInvalid = Callable[[Kind, Exception], None]


@dataclass(eq=False)
class TrackedCall:
    """The inference being recorded; set what the call returned (``call.response = …``) inside the block.

    ``event_id`` is fixed on entry, so feedback can be linked before the call even finishes.
    ``latency_ms`` is measured unless you set it; ``status``/``error_type`` are filled in when the block
    raises (the exception itself propagates unchanged). Arguments ``track`` did not recognise are kept in
    ``extra`` and make the event invalid on exit (counted and logged) instead of raising into your code.
    """

    event_id: str
    timestamp: datetime | None = None
    model: str | None = None
    prompt: str | None = None
    response: str | None = None
    model_version: str | None = None
    provider: str | None = None
    latency_ms: float | None = None
    status: Literal["ok", "error"] = "ok"
    error_type: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    features: dict[str, Any] = field(default_factory=dict)
    prediction: Any = None
    probabilities: dict[str, float] | None = None
    embedding: list[float] | None = None
    tags: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def event_fields(self) -> dict[str, Any]:
        """The keyword arguments for ``log_inference`` (unset optional fields left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        values = {name: value for name, value in values.items() if value is not None}
        return {**values, **self.extra}


_FIELDS = frozenset(f.name for f in fields(TrackedCall)) - {"extra"}


class Tracker:
    """The context manager ``Emitter.track`` returns (sync and async)."""

    __slots__ = ("_call", "_fixed_timestamp", "_invalid", "_started", "_submit")

    def __init__(self, submit: Submit, invalid: ReportInvalid, event_id: str, values: dict[str, Any]) -> None:
        known = {name: value for name, value in values.items() if name in _FIELDS}
        extra = {name: value for name, value in values.items() if name not in _FIELDS}
        known["event_id"] = event_id
        self._fixed_timestamp = known.get("timestamp") is not None
        self._submit = submit
        self._invalid = invalid
        self._call = TrackedCall(extra=extra, **known)
        self._started = time.perf_counter()

    @property
    def event_id(self) -> str:
        return self._call.event_id

    def __enter__(self) -> TrackedCall:
        if not self._fixed_timestamp:  # event time = when the call started
            self._call.timestamp = datetime.now(UTC)
        self._started = time.perf_counter()
        return self._call

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        call = self._call
        try:
            if call.latency_ms is None:
                call.latency_ms = (time.perf_counter() - self._started) * 1000.0
            if exc_type is not None:
                call.status = "error"
                call.error_type = call.error_type or exc_type.__name__
            self._submit(call.event_fields())
        except Exception as error:  # e.g. ``call.extra`` replaced by a non-dict: report, never raise
            self._invalid("inference", error)
        return False  # never swallow the host's exception

    async def __aenter__(self) -> TrackedCall:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)
