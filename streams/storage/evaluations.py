"""The ``evaluations`` table: the durable queue of sampled calls and each evaluation's outcome.

One row per (project, evaluator, event) after ``FINAL``; every state change writes a new row with a
higher ``version``. A sampled call is ``pending`` until an evaluation worker stores its score as a
feedback row and then marks it ``done`` (or ``error`` / ``skipped``): a process that dies in between
leaves it ``pending``, and the next worker evaluates it again, writing the same feedback id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from streams.storage.client import Storage
from streams.storage.times import as_utc

TABLE = "evaluations"
Status = Literal["pending", "done", "error", "skipped"]
_COLUMNS = [
    "project",
    "evaluator_id",
    "event_id",
    "status",
    "enqueued_at",
    "backfill_id",
    "attempts",
    "score",
    "label",
    "explanation",
    "judge_model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "error",
    "version",
    "updated_at",
]


@dataclass(frozen=True, slots=True)
class Sampled:
    """A call an evaluator sampled (a ``pending`` row)."""

    project: str
    evaluator_id: str
    event_id: str
    enqueued_at: datetime
    backfill_id: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one evaluation ended: its result (a score and/or label) or its error, and the judge's usage."""

    status: Status
    score: float | None = None
    label: str = ""
    explanation: str = ""
    judge_model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 1
    error: str = ""


@dataclass(frozen=True, slots=True)
class Evaluation:
    """A row as read back: the sampled call and its outcome so far."""

    sampled: Sampled
    outcome: Outcome
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Usage:
    """An evaluator's evaluations and judge spend since a moment (its daily budget)."""

    calls: int
    cost_usd: float


def enqueue(storage: Storage, sampled: Sequence[Sampled]) -> None:
    """Add pending rows. Sampling the same call again rewrites its pending row only while it is pending
    (``version`` 0 loses against any outcome), so re-sent events are not evaluated twice."""
    if not sampled:
        return
    now = datetime.now(UTC)
    storage.insert_rows(
        TABLE,
        _COLUMNS,
        [
            [
                s.project,
                s.evaluator_id,
                s.event_id,
                "pending",
                s.enqueued_at,
                s.backfill_id,
                0,
                None,
                "",
                "",
                "",
                0,
                0,
                0.0,
                0.0,
                "",
                0,
                now,
            ]
            for s in sampled
        ],
    )


def finish(storage: Storage, finished: Sequence[tuple[Sampled, Outcome]]) -> None:
    """Record outcomes (one insert for the batch)."""
    if not finished:
        return
    version, now = time.time_ns(), datetime.now(UTC)
    storage.insert_rows(
        TABLE,
        _COLUMNS,
        [
            [
                s.project,
                s.evaluator_id,
                s.event_id,
                o.status,
                s.enqueued_at,
                s.backfill_id,
                o.attempts,
                o.score,
                o.label,
                o.explanation,
                o.judge_model,
                o.input_tokens,
                o.output_tokens,
                o.cost_usd,
                o.latency_ms,
                o.error,
                version,
                now,
            ]
            for s, o in finished
        ],
    )


def pending(storage: Storage, limit: int) -> list[Sampled]:
    """The oldest pending rows, over every project."""
    rows = storage.rows(
        "SELECT project, evaluator_id, event_id, enqueued_at, backfill_id "
        f"FROM {storage.database}.{TABLE} FINAL WHERE status = 'pending' ORDER BY enqueued_at LIMIT {{limit:UInt32}}",
        {"limit": limit},
    )
    return [
        Sampled(r["project"], r["evaluator_id"], r["event_id"], as_utc(r["enqueued_at"]), r["backfill_id"])
        for r in rows
    ]


def pending_count(storage: Storage) -> int:
    return int(storage.scalar(f"SELECT count() FROM {storage.database}.{TABLE} FINAL WHERE status = 'pending'"))


def _evaluation(row: dict[str, object]) -> Evaluation:
    sampled = Sampled(
        str(row["project"]),
        str(row["evaluator_id"]),
        str(row["event_id"]),
        as_utc(row["enqueued_at"]),  # type: ignore[arg-type]
        str(row["backfill_id"]),
    )
    outcome = Outcome(
        status=row["status"],  # type: ignore[arg-type]
        score=row["score"],  # type: ignore[arg-type]
        label=str(row["label"]),
        explanation=str(row["explanation"]),
        judge_model=str(row["judge_model"]),
        input_tokens=int(row["input_tokens"]),  # type: ignore[call-overload]
        output_tokens=int(row["output_tokens"]),  # type: ignore[call-overload]
        cost_usd=float(row["cost_usd"]),  # type: ignore[arg-type]
        latency_ms=float(row["latency_ms"]),  # type: ignore[arg-type]
        attempts=int(row["attempts"]),  # type: ignore[call-overload]
        error=str(row["error"]),
    )
    return Evaluation(sampled, outcome, as_utc(row["updated_at"]))  # type: ignore[arg-type]


_READ = ", ".join(c for c in _COLUMNS if c != "version")


def of_evaluator(storage: Storage, project: str, evaluator_id: str, limit: int = 100) -> list[Evaluation]:
    """An evaluator's newest evaluations (any status)."""
    rows = storage.rows(
        f"SELECT {_READ} FROM {storage.database}.{TABLE} FINAL WHERE project = {{project:String}} "
        "AND evaluator_id = {evaluator_id:String} ORDER BY updated_at DESC LIMIT {limit:UInt32}",
        {"project": project, "evaluator_id": evaluator_id, "limit": limit},
    )
    return [_evaluation(row) for row in rows]


def of_event(storage: Storage, project: str, event_id: str) -> list[Evaluation]:
    """Every evaluator's evaluation of one call (the call detail page)."""
    rows = storage.rows(
        f"SELECT {_READ} FROM {storage.database}.{TABLE} FINAL WHERE project = {{project:String}} "
        "AND event_id = {event_id:String} ORDER BY evaluator_id",
        {"project": project, "event_id": event_id},
    )
    return [_evaluation(row) for row in rows]


def usage_since(storage: Storage, since: datetime) -> dict[tuple[str, str], Usage]:
    """(project, evaluator) → evaluations finished since ``since`` and their judge cost."""
    rows = storage.rows(
        "SELECT project, evaluator_id, count() AS calls, sum(cost_usd) AS cost "
        f"FROM {storage.database}.{TABLE} FINAL WHERE status IN ('done', 'error') "
        "AND updated_at >= {since:DateTime64(3, 'UTC')} GROUP BY project, evaluator_id",
        {"since": since},
    )
    return {(r["project"], r["evaluator_id"]): Usage(int(r["calls"]), float(r["cost"])) for r in rows}


def counts(storage: Storage, project: str, evaluator_id: str, backfill_id: str | None = None) -> dict[str, int]:
    """status → rows of an evaluator (of one backfill when given)."""
    extra = " AND backfill_id = {backfill_id:String}" if backfill_id is not None else ""
    rows = storage.rows(
        f"SELECT status, count() AS n FROM {storage.database}.{TABLE} FINAL WHERE project = {{project:String}} "
        f"AND evaluator_id = {{evaluator_id:String}}{extra} GROUP BY status",
        {"project": project, "evaluator_id": evaluator_id, "backfill_id": backfill_id or ""},
    )
    return {str(r["status"]): int(r["n"]) for r in rows}
