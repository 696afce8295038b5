"""The ``feedback`` table's reads (and its erasure): the feedback listing's pages, the feedback a
window's quality and privacy counts are computed from, the newest feedback of sampled calls and counts per model. Writes
go through the sink.

The table is a ``ReplacingMergeTree(ingested_at)`` sorted by feedback id, with a projection sorted by
time (migration 0004) and one by inference id (0010). Reads here avoid ``FINAL`` (it costs ~8x on
unmerged parts): copies of one feedback (a redelivery, a re-send that corrects it) are collapsed by
keeping the newest ``ingested_at``, which is what a merge keeps.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from schemas.records import FEEDBACK_TEXT_FIELDS, FeedbackRecord
from schemas.stats import WindowKey
from streams.storage import expiry
from streams.storage.client import Storage
from streams.storage.inferences import newest_per_id, window_calls
from streams.storage.times import as_utc, time_range

_FEEDBACK_COLUMNS = "feedback_id, inference_id, timestamp, kind, value, label, name, text, source, user_id"
QUALITY_KINDS = ("thumbs", "rating", "score", "label")


@dataclass(frozen=True, slots=True)
class StoredFeedback:
    """One feedback as the listing shows it (``value`` is the label of a ``label`` feedback)."""

    feedback_id: str
    inference_id: str
    timestamp: datetime
    kind: str
    value: float | str | None
    name: str
    text: str
    source: str
    user_id: str


@dataclass(frozen=True, slots=True)
class JudgedFeedback:
    """The newest feedback of one (inference, kind, name) of a window, with the judged call's prediction
    and model version."""

    kind: str
    name: str
    value: float | None
    label: str
    prediction: str
    model_version: str
    source: str = ""


@dataclass(frozen=True, slots=True)
class JudgePair:
    """One call with both an evaluator's newest result and people's newest feedback of one kind."""

    inference_id: str
    score: float | None  # the judge's score (booleans: 1 = true); None for a label judge
    judge_label: str
    value: float | None  # people's thumbs (> 0 = up) or rating; None for a label
    label: str  # people's label


@dataclass(frozen=True, slots=True)
class PagePosition:
    """Where a newest-first page ends: the last item's time (a DateTime64 literal) and feedback id."""

    timestamp: str
    feedback_id: str


@dataclass(slots=True)
class FeedbackFilter:
    project: str
    model: str | None = None
    model_version: str | None = None
    kinds: list[str] = field(default_factory=list)
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tags: dict[str, str] = field(default_factory=dict)
    inference_id: str | None = None

    def where(self, db: str) -> tuple[str, dict[str, Any]]:
        clauses = ["project = {project:String}"]
        params: dict[str, Any] = {"project": self.project}
        clauses += time_range(params, self.since, self.until)
        if self.kinds:
            clauses.append("kind IN {kinds:Array(String)}")
            params["kinds"] = self.kinds
        if self.source:
            clauses.append("source = {source:String}")
            params["source"] = self.source
        if self.inference_id:
            clauses.append("inference_id = {inference_id:String}")
            params["inference_id"] = self.inference_id
        inner = []
        if self.model:
            inner.append("model = {model:String}")
            params["model"] = self.model
        if self.model_version:
            inner.append("model_version = {model_version:String}")
            params["model_version"] = self.model_version
        for index, (key, value) in enumerate(sorted(self.tags.items())):
            inner.append(f"tags[{{tk{index}:String}}] = {{tv{index}:String}}")
            params[f"tk{index}"], params[f"tv{index}"] = key, value
        if inner:
            clauses.append(
                f"inference_id IN (SELECT event_id FROM {db}.inferences WHERE project = {{project:String}} AND "
                + " AND ".join(inner)
                + ")"
            )
        return " AND ".join(clauses), params


def _feedback(row: Mapping[str, Any]) -> StoredFeedback:
    return StoredFeedback(
        feedback_id=row["feedback_id"],
        inference_id=row["inference_id"],
        timestamp=as_utc(row["timestamp"]),
        kind=row["kind"],
        value=row["label"] if row["kind"] == "label" else row["value"],
        name=row["name"],
        text=row["text"],
        source=row["source"],
        user_id=row["user_id"],
    )


def _newest_unique(storage: Storage, sql: str, params: dict[str, Any], want: int) -> list[dict[str, Any]]:
    """The first ``want`` feedback ids in the query's order, each as its newest ingestion.

    Not FINAL, which costs ~8x on unmerged parts, and not ``LIMIT 1 BY`` (~2.5x even when merged: it
    stops ClickHouse reading the time-sorted projection in order and stopping early). Copies of one
    feedback (a redelivery, or a re-send that corrects it) share id and timestamp, so they are
    adjacent in this order; the newest ingestion wins, as it does when the parts merge. Copies are
    rare, so one query almost always suffices; a page short of ``want`` ids after dropping them is
    fetched again, larger.
    """
    fetch = want
    while True:
        rows = storage.rows(sql, {**params, "limit": fetch})
        newest = newest_per_id(rows, "feedback_id")
        if len(newest) >= want or len(rows) < fetch:
            return list(newest.values())[:want]
        fetch *= 4


def page(storage: Storage, flt: FeedbackFilter, *, limit: int, after: PagePosition | None) -> list[StoredFeedback]:
    """Up to ``limit`` matching feedback, newest first (then by id, descending), after ``after``."""
    where, params = flt.where(storage.database)
    if after is not None:
        params["cts"], params["cid"] = after.timestamp, after.feedback_id
        # the plain bound lets the time-sorted projection skip newer granules; the tuple decides ties
        where += (
            " AND timestamp <= {cts:DateTime64(3, 'UTC')}"
            " AND (timestamp, feedback_id) < ({cts:DateTime64(3, 'UTC')}, {cid:String})"
        )
    sql = (
        f"SELECT {_FEEDBACK_COLUMNS}, ingested_at FROM {storage.database}.feedback WHERE {where} "
        "ORDER BY timestamp DESC, feedback_id DESC LIMIT {limit:UInt32}"
    )
    return [_feedback(row) for row in _newest_unique(storage, sql, params, limit)]


def window_feedback(storage: Storage, key: WindowKey, since: datetime) -> list[JudgedFeedback]:
    """Newest feedback per (inference, kind, name) of the quality kinds for the window's inferences,
    taking feedback stamped from ``since`` on.

    The feedback side is narrowed before the join: by time (read through the table's time-sorted
    projection) and by the window's ids, so the cost follows the window and the time since it, not the
    size of the table. Per group the newest timestamp wins and, among copies of one event, the newest
    ingestion (what a merge keeps).
    """
    db = storage.database
    in_window, params = window_calls(key)
    (feedback_since,) = time_range(params, since, None, names=("fsince", "funtil"))
    rows = storage.query(
        "SELECT f.kind, f.name, f.value, f.label, i.prediction, i.model_version, f.source FROM ("
        "SELECT inference_id, kind, name, argMax(value, (timestamp, ingested_at)) AS value, "
        "argMax(label, (timestamp, ingested_at)) AS label, argMax(source, (timestamp, ingested_at)) AS source "
        f"FROM {db}.feedback WHERE project = {{project:String}} AND {feedback_since} "
        f"AND kind IN {QUALITY_KINDS!r} AND inference_id IN (SELECT event_id FROM {db}.inferences "
        f"WHERE {in_window}) GROUP BY inference_id, kind, name) AS f "
        "INNER JOIN (SELECT event_id, argMax(prediction, ingested_at) AS prediction, "
        f"argMax(model_version, ingested_at) AS model_version FROM {db}.inferences WHERE {in_window} "
        "GROUP BY event_id) AS i ON f.inference_id = i.event_id",
        params,
    ).result_rows
    return [JudgedFeedback(*row) for row in rows]


@dataclass(frozen=True, slots=True)
class TextCounts:
    """What redaction found in one feedback text about a window's call (``FeedbackRecord.pii``), with
    the call's model version."""

    pii: dict[str, int]
    model_version: str


def window_text_counts(storage: Storage, key: WindowKey, since: datetime) -> list[TextCounts]:
    """The redaction counts of each correction and comment on the window's calls (each feedback once,
    its newest copy), taking feedback stamped from ``since`` on; feedback without counts is left out."""
    db = storage.database
    in_window, params = window_calls(key)
    (feedback_since,) = time_range(params, since, None, names=("fsince", "funtil"))
    rows = storage.query(
        "SELECT f.pii, i.model_version FROM ("
        "SELECT feedback_id, inference_id, argMax(pii, ingested_at) AS pii "
        f"FROM {db}.feedback WHERE project = {{project:String}} AND {feedback_since} "
        f"AND kind IN {FEEDBACK_TEXT_FIELDS!r} AND inference_id IN (SELECT event_id FROM {db}.inferences "
        f"WHERE {in_window}) GROUP BY feedback_id, inference_id HAVING notEmpty(pii)) AS f "
        "INNER JOIN (SELECT event_id, argMax(model_version, ingested_at) AS model_version "
        f"FROM {db}.inferences WHERE {in_window} GROUP BY event_id) AS i ON f.inference_id = i.event_id",
        params,
    ).result_rows
    return [TextCounts(dict(pii), str(version)) for pii, version in rows]


def newest_values(
    storage: Storage, project: str, inference_ids: Sequence[str], kinds: Sequence[str]
) -> list[tuple[str, float | None]]:
    """(kind, value) of the newest feedback per (inference, kind, name) of ``inference_ids``."""
    rows = storage.query(
        "SELECT kind, argMax(value, (timestamp, ingested_at)) AS value "
        f"FROM {storage.database}.feedback WHERE project = {{project:String}} AND kind IN {{kinds:Array(String)}} "
        "AND inference_id IN {ids:Array(String)} GROUP BY inference_id, kind, name",
        {"project": project, "ids": list(inference_ids), "kinds": list(kinds)},
    ).result_rows
    return [(str(kind), value) for kind, value in rows]


def count_by_model(storage: Storage, project: str) -> dict[str, int]:
    """model → how many feedback the project's calls of it have received (each feedback once)."""
    db = storage.database
    rows = storage.query(
        f"SELECT i.model, count() FROM {db}.feedback AS f FINAL "
        f"INNER JOIN (SELECT event_id, model FROM {db}.inferences FINAL WHERE project = {{project:String}}) AS i "
        "ON f.inference_id = i.event_id WHERE f.project = {project:String} GROUP BY i.model",
        {"project": project},
    ).result_rows
    return {str(model): int(count) for model, count in rows}


# --- a judge against people ----------------------------------------------------------------------------

MAX_JUDGE_PAIRS = 20_000


def judge_pairs(
    storage: Storage,
    project: str,
    evaluator_id: str,
    kind: str,
    since: datetime | None,
    until: datetime | None,
    limit: int = MAX_JUDGE_PAIRS,
    *,
    model: str | None = None,
) -> list[JudgePair]:
    """Per call judged by ``evaluator_id`` in ``[since, until)`` (judge results are stamped with the
    call's time) that also has feedback of ``kind`` from people (``source != 'evaluator'``): the
    evaluator's newest result beside the people's newest feedback, the newest ``limit`` calls; only
    calls of ``model`` when it is given."""
    db = storage.database
    params: dict[str, Any] = {"project": project, "evaluator_id": evaluator_id, "kind": kind, "limit": limit}
    period = " AND ".join(["", *time_range(params, since, until)])
    judged = (
        f"project = {{project:String}} AND source = 'evaluator' AND name = {{evaluator_id:String}} "
        f"AND kind IN ('score', 'label'){period}{_of_model(db, params, model, period)}"
    )
    rows = storage.query(
        "SELECT j.inference_id, j.value, j.label, h.value, h.label FROM ("
        "SELECT inference_id, argMax(value, (timestamp, ingested_at)) AS value, "
        "argMax(label, (timestamp, ingested_at)) AS label, max(timestamp) AS judged_at "
        f"FROM {db}.feedback WHERE {judged} GROUP BY inference_id) AS j INNER JOIN ("
        "SELECT inference_id, argMax(value, (timestamp, ingested_at)) AS value, "
        "argMax(label, (timestamp, ingested_at)) AS label "
        f"FROM {db}.feedback WHERE project = {{project:String}} AND source != 'evaluator' AND kind = {{kind:String}} "
        f"AND inference_id IN (SELECT inference_id FROM {db}.feedback WHERE {judged}) GROUP BY inference_id) AS h "
        "ON j.inference_id = h.inference_id ORDER BY j.judged_at DESC, j.inference_id LIMIT {limit:UInt32}",
        params,
    ).result_rows
    return [JudgePair(str(row[0]), row[1], str(row[2]), row[3], str(row[4])) for row in rows]


def judge_scores(
    storage: Storage,
    project: str,
    evaluator_id: str,
    since: datetime | None,
    until: datetime | None,
    *,
    model: str | None = None,
) -> list[float]:
    """The newest score of each call ``evaluator_id`` judged in ``[since, until)`` (of ``model`` if given)."""
    params: dict[str, Any] = {"project": project, "evaluator_id": evaluator_id}
    period = " AND ".join(["", *time_range(params, since, until)])
    rows = storage.query(
        "SELECT argMax(value, (timestamp, ingested_at)) AS value "
        f"FROM {storage.database}.feedback WHERE project = {{project:String}} AND source = 'evaluator' "
        f"AND name = {{evaluator_id:String}} AND kind = 'score'{period}"
        f"{_of_model(storage.database, params, model, period)} GROUP BY inference_id",
        params,
    ).result_rows
    return [float(value) for (value,) in rows if value is not None]


def _of_model(db: str, params: dict[str, Any], model: str | None, period: str) -> str:
    """The clause keeping feedback on calls of ``model`` ('' when None). Judge results are stamped with
    their call's time, so the calls are read over the same ``period`` (the inferences' sort key)."""
    if model is None:
        return ""
    params["model"] = model
    return (
        f" AND inference_id IN (SELECT event_id FROM {db}.inferences WHERE project = {{project:String}} "
        f"AND model = {{model:String}}{period})"
    )


# --- erasure -------------------------------------------------------------------------------------------

_OF_USER = (
    "project = {project:String} AND (user_id = {user_id:String} OR has({inference_ids:Array(String)}, inference_id))"
)


def erase_user(storage: Storage, project: str, user_id: str, inference_ids: Sequence[str]) -> int:
    """Delete the feedback the user gave (``user_id``) and the feedback on the user's events
    (``inference_ids``); returns how many feedback items that was (re-sent copies counted once)."""
    params = {"project": project, "user_id": user_id, "inference_ids": list(inference_ids)}
    return expiry.delete_where(storage, "feedback", _OF_USER, params, count="uniqExact(feedback_id)")


# --- evaluations ---------------------------------------------------------------------------------------


def references(storage: Storage, project: str, inference_ids: list[str]) -> dict[str, str]:
    """Each call's reference answer for a judge: its newest correction by a person, else its newest label
    (calls without either are missing). Evaluators' own labels never count."""
    if not inference_ids:
        return {}
    rows = storage.rows(
        "SELECT inference_id, argMax(if(kind = 'correction', text, label), (kind = 'correction', timestamp)) AS answer "
        f"FROM {storage.database}.feedback FINAL WHERE project = {{project:String}} "
        "AND inference_id IN {ids:Array(String)} AND kind IN ('correction', 'label') AND source != 'evaluator' "
        "GROUP BY inference_id",
        {"project": project, "ids": inference_ids},
    )
    return {str(row["inference_id"]): str(row["answer"]) for row in rows}


def rows_json(events: Sequence[FeedbackRecord]) -> bytes:
    """Feedback rows: ``value`` split into a number column and a label column for cheap aggregates."""
    rows = [
        {
            "project": event.project,
            "feedback_id": event.feedback_id,
            "inference_id": event.inference_id,
            "timestamp": event.timestamp.isoformat(),
            "kind": event.kind,
            "value": event.numeric_value,
            "label": event.label_value,
            "name": event.name or "",
            "text": event.text or "",
            "source": event.source,
            "user_id": event.user_id or "",
            "pii": event.pii if isinstance(event.pii, dict) else {},
        }
        for event in events
    ]
    return orjson.dumps(rows)


def insert(storage: Storage, events: Sequence[FeedbackRecord]) -> None:
    """Write ``events`` (one insert)."""
    storage.insert_json("feedback", rows_json(events))


@dataclass(frozen=True, slots=True)
class IngestedFeedback:
    """A thumbs-down or a correction by a person, as an evaluation sampler reads it."""

    project: str
    feedback_id: str
    inference_id: str
    kind: str
    ingested_at: datetime


def ingested_since(
    storage: Storage, since: datetime, after: tuple[datetime, str, str] | None, limit: int
) -> list[IngestedFeedback]:
    """Thumbs-downs and corrections (not evaluators' own feedback) ingested at or after ``since`` (past
    ``after`` = (ingested_at, project, feedback_id) when paging), in that order, at most ``limit``."""
    keyset = " AND (ingested_at, project, feedback_id) > ({at:DateTime64(3, 'UTC')}, {p:String}, {f:String})"
    at, project, feedback_id = after or (since, "", "")
    rows = storage.rows(
        "SELECT project, feedback_id, inference_id, kind, ingested_at "
        f"FROM {storage.database}.feedback WHERE ingested_at >= {{since:DateTime64(3, 'UTC')}} "
        "AND source != 'evaluator' AND (kind = 'correction' OR (kind = 'thumbs' AND value < 0))"
        + (keyset if after else "")
        + " ORDER BY ingested_at, project, feedback_id LIMIT {limit:UInt32}",
        {"since": since, "at": at, "p": project, "f": feedback_id, "limit": limit},
    )
    return [
        IngestedFeedback(r["project"], r["feedback_id"], r["inference_id"], r["kind"], as_utc(r["ingested_at"]))
        for r in rows
    ]


def blank_text_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Blank the texts (corrections, comments) of the project's feedback before ``cutoff``."""
    return expiry.expire(storage, "feedback", project, "timestamp", cutoff, blank=("text",))


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    return expiry.expire(storage, "feedback", project, "timestamp", cutoff)
