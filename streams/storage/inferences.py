"""The ``inferences`` table's reads: the calls explorer's pages, one call by id, the error types of a
range, the sampled calls of a window, and what the statistics engine reads of a window (its numbers,
its drift sample, its embeddings). Routes, the dashboard, the window drill-down and the statistics
engine call these; no other module writes SQL against this table (writes go through the sink).

Pages are newest first (or slowest / costliest first) with keyset cursors. The table is sorted by
``(project, model, timestamp, event_id)``: a newest-first page over a whole project cannot read that
order directly, so it reads time spans from the newest stored moment down, each eight times the last
(the ``timestamp`` minmax index skips every granule outside the span), and stops once the page is full.
A full page of recent calls therefore reads only the recent granules, however much older data is
stored. Rows are read without ``FINAL`` (re-sent copies of a call share model, timestamp and id, so
they are adjacent in every order this module uses, and the newest ingestion is kept, as a merge would).

Filters the sort key does not order use skip indexes (migration 0012): the minmax of latency and cost
and the sets of status and error_type per granule, so a range or a burst of errors reads only the
granules that hold matches; slowest / costliest first still reads the column of its whole range.

Text search (``q``) is a case-insensitive substring match (``ILIKE``) of the prompt or the response. A
bloom filter of the words of both texts per granule (migration 0021) serves the search's whole words:
a word with a space or punctuation on both sides inside the search (``123456`` in ``order 123456:``)
must be a word of a matching call's lower-cased texts, so the query also asks ``hasToken`` for it and
reads only the granules that may hold it; ``ILIKE`` still decides each call. A search without such a
word (one bare word, which may be part of a longer one) reads as before: a common one ends early in the
newest spans, a rare one reads the texts of its whole range, which a model or time filter keeps short.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from schemas.events import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from schemas.records import InferenceRecord, encode_records
from schemas.stats import WindowKey
from streams.storage import expiry
from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time, time_range

CallSort = Literal["newest", "latency", "cost"]
SORTS: tuple[CallSort, ...] = ("newest", "latency", "cost")
PREVIEW_CHARS = 300
# Every field of the event contract is a column of ``inferences`` (tests/schemas/test_contract_sync.py);
# one call returns all of them but the two bulky model outputs.
NOT_IN_DETAIL = frozenset({"probabilities", "embedding", "pii"})
DETAIL_COLUMNS = tuple(name for name in InferenceRecord.__struct_fields__ if name not in NOT_IN_DETAIL)
CURSOR_PATTERN = r"^[A-Za-z0-9_\-]{1,1200}$"
_SORT_COLUMN: dict[CallSort, str] = {"newest": "", "latency": "latency_ms", "cost": "cost_usd"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_EARLIEST_MILLIS = (EARLIEST_TIMESTAMP - _EPOCH) // _MILLISECOND
_LATEST_MILLIS = (LATEST_TIMESTAMP - _EPOCH) // _MILLISECOND
_FIRST_SPAN = timedelta(hours=1)
_MAX_GROWTH = 64.0
_SUMMARY_COLUMNS = (
    "event_id, model, model_version, provider, timestamp, latency_ms, status, error_type, input_tokens, "
    f"output_tokens, cost_usd, substringUTF8(prompt, 1, {PREVIEW_CHARS}) AS prompt_preview, "
    f"substringUTF8(response, 1, {PREVIEW_CHARS}) AS response_preview, "
    "lengthUTF8(prompt) AS prompt_chars, lengthUTF8(response) AS response_chars, tags"
)


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One call as a listing shows it: its numbers and the first ``PREVIEW_CHARS`` of its texts."""

    event_id: str
    model: str
    model_version: str
    provider: str
    timestamp: datetime
    latency_ms: float | None
    status: str
    error_type: str
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None
    prompt_preview: str
    response_preview: str
    prompt_chars: int
    response_chars: int
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class StoredInference:
    """One call as stored: every field of the event contract but ``probabilities`` and ``embedding``."""

    event_id: str
    project: str
    model: str
    model_version: str
    provider: str
    timestamp: datetime
    latency_ms: float | None
    status: str
    error_type: str
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cost_usd: float | None
    prompt: str
    response: str
    features: dict[str, Any]
    prediction: str
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class SampledCall:
    """A call of a window's sample with what the drift columns are computed from (features, full texts)."""

    call: CallSummary
    features: str
    prompt: str
    response: str


@dataclass(frozen=True, slots=True)
class ErrorTypeCount:
    error_type: str  # '' = an error without a type
    calls: int


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What ``GET /v1/inferences`` filters on; ``None`` / empty = not filtered. ``text`` is a
    case-insensitive substring of the prompt or the response (``%`` and ``_`` are plain characters)."""

    project: str
    model: str | None = None
    model_version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    error_type: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    min_latency_ms: float | None = None
    max_latency_ms: float | None = None
    min_cost_usd: float | None = None
    max_cost_usd: float | None = None
    has_feedback: bool | None = None
    feedback_kinds: tuple[str, ...] = ()
    text: str | None = None

    def where(self) -> tuple[list[str], dict[str, Any]]:
        clauses = ["project = {project:String}"]
        params: dict[str, Any] = {"project": self.project}
        for column, value in (
            ("model", self.model),
            ("model_version", self.model_version),
            ("status", self.status),
            ("error_type", self.error_type),
        ):
            if value is not None:
                clauses.append(f"{column} = {{{column}:String}}")
                params[column] = value
        clauses += time_range(params, self.since, self.until)
        for name, column, op, amount in (
            ("min_latency", "latency_ms", ">=", self.min_latency_ms),
            ("max_latency", "latency_ms", "<=", self.max_latency_ms),
            ("min_cost", "cost_usd", ">=", self.min_cost_usd),
            ("max_cost", "cost_usd", "<=", self.max_cost_usd),
        ):
            if amount is not None:
                clauses.append(f"{column} {op} {{{name}:Float64}}")
                params[name] = amount
        for index, (key, value) in enumerate(self.tags):
            clauses.append(f"tags[{{tk{index}:String}}] = {{tv{index}:String}}")
            params[f"tk{index}"], params[f"tv{index}"] = key, value
        if self.text:
            for index, word in enumerate(whole_words(self.text)):  # served by the words index (0021)
                clauses.append(f"hasToken({_WORDS}, {{word{index}:String}})")
                params[f"word{index}"] = word
            clauses.append("(prompt ILIKE {text:String} OR response ILIKE {text:String})")
            params["text"] = f"%{like_escape(self.text)}%"
        return clauses, params

    @property
    def by_feedback(self) -> bool:
        return self.has_feedback is not None or bool(self.feedback_kinds)


# The expression migration 0021 indexes: both texts, lower-cased (ASCII letters only, as ``ILIKE`` matches
# an ASCII letter of the search only with that letter in either case), a line break between them.
_WORDS = "lower(concat(prompt, '\\n', response))"
# A run of ASCII letters and digits with an ASCII character that is neither on each side: the separators
# of ``hasToken`` (every byte of a non-ASCII character belongs to a word, so "ÉCOLE" holds no whole word).
_SEPARATOR = r"[\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]"
_WHOLE_WORD = re.compile(f"(?<={_SEPARATOR})[A-Za-z0-9]+(?={_SEPARATOR})")
_MAX_WORDS = 8


def whole_words(text: str) -> list[str]:
    """The words every call matching the search ``text`` has among the words of its lower-cased texts:
    its runs of ASCII letters and digits with a space or punctuation on both sides inside ``text`` (the
    first and the last run may continue in the text searched). Lower-cased, each once, at most eight."""
    words = dict.fromkeys(match.group().lower() for match in _WHOLE_WORD.finditer(text))
    return list(words)[:_MAX_WORDS]


def like_escape(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern: its ``\\``, ``%`` and ``_`` match only themselves."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class _Position:
    """Where a page ends, in the page's order: (sort value, timestamp, event id, model)."""

    value: float | None
    timestamp: datetime
    event_id: str
    model: str


def encode_cursor(sort: CallSort, call: CallSummary) -> str:
    value = {"newest": None, "latency": call.latency_ms, "cost": call.cost_usd}[sort]
    millis = int(as_utc(call.timestamp).timestamp() * 1000)
    raw = orjson.dumps([sort, value, millis, call.event_id, call.model])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: CallSort) -> _Position:
    """The position a cursor of ``encode_cursor`` names; ValueError for anything else, or a cursor of
    another sort order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, value, millis, event_id, model = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        raise ValueError("not a cursor of this listing: pass the previous page's next_cursor unchanged") from None
    if kind != sort:
        raise ValueError(f"this cursor pages the {kind!r} order, not {sort!r}")
    if (
        not isinstance(millis, int)
        or not isinstance(event_id, str)
        or not isinstance(model, str)
        or (value is not None and not isinstance(value, int | float))
        or (sort != "newest" and value is None)
    ):
        raise ValueError("not a cursor of this listing: pass the previous page's next_cursor unchanged")
    if not _EARLIEST_MILLIS <= millis < _LATEST_MILLIS:
        raise ValueError("not a cursor of this listing: pass the previous page's next_cursor unchanged")
    moment = _EPOCH + timedelta(milliseconds=millis)
    return _Position(None if value is None else float(value), moment, event_id, model)


def _summary(row: dict[str, Any]) -> CallSummary:
    return CallSummary(
        event_id=row["event_id"],
        model=row["model"],
        model_version=row["model_version"],
        provider=row["provider"],
        timestamp=as_utc(row["timestamp"]),
        latency_ms=row["latency_ms"],
        status=row["status"],
        error_type=row["error_type"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cost_usd=row["cost_usd"],
        prompt_preview=row["prompt_preview"],
        response_preview=row["response_preview"],
        prompt_chars=int(row["prompt_chars"]),
        response_chars=int(row["response_chars"]),
        tags=dict(row["tags"]),
    )


def newest_per_id(rows: list[dict[str, Any]], id_column: str) -> dict[str, dict[str, Any]]:
    """One row per id, the newest ``ingested_at`` winning (what a ReplacingMergeTree merge keeps), in the
    order the ids first appear: reads without ``FINAL`` collapse copies with this."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        kept = newest.get(row[id_column])
        if kept is None or row["ingested_at"] > kept["ingested_at"]:
            newest[row[id_column]] = row
    return newest


def _newest_copies(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per call (model, timestamp, id), the newest ingestion winning, in the rows' order."""
    newest: dict[tuple[str, Any, str], dict[str, Any]] = {}
    for row in rows:
        key = (row["model"], row["timestamp"], row["event_id"])
        kept = newest.get(key)
        if kept is None or row["ingested_at"] > kept["ingested_at"]:
            newest[key] = row
    return list(newest.values())


@dataclass(slots=True)
class CallPage:
    items: list[CallSummary] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class _Stored:
    """The first and last stored moment of the table and its row count (copies included)."""

    low: datetime
    high: datetime
    rows: int

    def share(self, low: datetime | None, high: datetime | None) -> int:
        """About how many stored rows lie in [low, high): the count spread evenly over the stored span."""
        start, end = max(low or self.low, self.low), min(high or self.high, self.high)
        whole = (self.high - self.low).total_seconds()
        if whole <= 0:
            return self.rows
        return int(self.rows * max(0.0, (end - start).total_seconds()) / whole)


def _stored_span(storage: Storage) -> _Stored | None:
    """The first and last stored moment of the table, from its parts' minmax index (no data read), kept
    for a few seconds: the spans only start from it, the first span is open upwards and the last one
    downwards, so a moment stored since is still read."""
    now = time.monotonic()
    hit = _stored_spans.get(storage.database)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = storage.query(
        "SELECT min(min_time), max(max_time), count(), sum(rows) FROM system.parts "
        "WHERE database = {db:String} AND table = 'inferences' AND active",
        {"db": storage.database},
    ).result_rows[0]
    if not row[2]:
        return None  # not kept: the first rows may land any moment
    low, high = as_utc(row[0]), as_utc(row[1])
    bounds = (EARLIEST_TIMESTAMP, LATEST_TIMESTAMP) if low <= _EPOCH else (low, high + timedelta(seconds=1))
    stored = _Stored(*bounds, int(row[3]))
    if len(_stored_spans) > 1000:
        _stored_spans.clear()
    _stored_spans[storage.database] = (now + _STORED_SPAN_SECONDS, stored)
    return stored


_STORED_SPAN_SECONDS = 5.0
_stored_spans: dict[str, tuple[float, _Stored]] = {}


def _order(sort: CallSort) -> str:
    column = _SORT_COLUMN[sort]
    keys = ([f"{column} DESC"] if column else []) + ["timestamp DESC", "event_id DESC", "model DESC"]
    return ", ".join(keys)


def _after(sort: CallSort, position: _Position, params: dict[str, Any]) -> str:
    params.update(
        {"ats": ch_time(position.timestamp), "aid": position.event_id, "amodel": position.model, "av": position.value}
    )
    column = _SORT_COLUMN[sort]
    if not column:  # the plain bound lets the minmax index skip newer granules; the tuple decides ties
        return (
            "timestamp <= {ats:DateTime64(3, 'UTC')} AND (timestamp, event_id, model) < "
            "({ats:DateTime64(3, 'UTC')}, {aid:String}, {amodel:String})"
        )
    return (
        f"{column} <= {{av:Float64}} AND ({column}, timestamp, event_id, model) < "
        "({av:Float64}, {ats:DateTime64(3, 'UTC')}, {aid:String}, {amodel:String})"
    )


def _feedback_rows(storage: Storage, flt: CallFilter) -> int:
    """How many feedback rows (copies included) the project has of ``flt.feedback_kinds`` (of any kind
    if none): the size of the set the feedback filter builds when it is not narrowed to a span's calls."""
    kinds = " AND kind IN {kinds:Array(String)}" if flt.feedback_kinds else ""
    return int(
        storage.scalar(
            f"SELECT count() FROM {storage.database}.feedback WHERE project = {{project:String}}{kinds}",
            {"project": flt.project, "kinds": list(flt.feedback_kinds)},
        )
    )


def _feedback_clause(flt: CallFilter, db: str, candidates: str | None) -> str:
    """Calls with (or without) feedback, of ``flt.feedback_kinds`` if given, in the same query (no round
    trip per batch). The set is built from the smaller side: with ``candidates`` (the WHERE of the span's
    calls), the feedback of those calls, read through the projection sorted by inference id (migration
    0010: the feedback of recent calls is spread over the whole table, which is sorted by feedback id);
    with None, every feedback row of those kinds in the project (a span of many calls, a rare kind)."""
    kinds = " AND kind IN {kinds:Array(String)}" if flt.feedback_kinds else ""
    negate = "NOT " if flt.has_feedback is False else ""
    narrow = f" AND inference_id IN (SELECT event_id FROM {db}.inferences WHERE {candidates})" if candidates else ""
    return (
        f"event_id {negate}IN (SELECT inference_id FROM {db}.feedback WHERE project = {{project:String}}{kinds}"
        f"{narrow})"
    )


def _read(
    storage: Storage,
    flt: CallFilter,
    sort: CallSort,
    span: tuple[datetime | None, datetime | None],
    want: int,
    after: _Position | None,
    *,
    narrow_feedback: bool = True,
) -> tuple[list[CallSummary], _Position | None]:
    """Up to ``want`` calls of a time span in ``sort`` order after ``after``, each once; and the position
    to go on from inside the span (None when the span is read to its end). ``narrow_feedback``: a
    feedback filter looks up the feedback of the span's calls (else it reads all feedback of its kinds)."""
    clauses, params = flt.where()
    column = _SORT_COLUMN[sort]
    if column:
        clauses.append(f"{column} IS NOT NULL")  # slowest / costliest first: the calls that have the number
    clauses += time_range(params, *span, names=("lo", "hi"))
    found: list[CallSummary] = []
    while len(found) < want:
        where = list(clauses)
        if after is not None:
            where.append(_after(sort, after, params))
        if flt.by_feedback:
            narrow = " AND ".join(where) if narrow_feedback else None
            where.append(_feedback_clause(flt, storage.database, narrow))
            params["kinds"] = list(flt.feedback_kinds)
        limit = want - len(found)
        rows = storage.rows(
            f"SELECT {_SUMMARY_COLUMNS}, ingested_at FROM {storage.database}.inferences "
            f"WHERE {' AND '.join(where)} ORDER BY {_order(sort)} LIMIT {{limit:UInt32}}",
            {**params, "limit": limit},
        )
        found += [_summary(row) for row in _newest_copies(rows)]
        if len(rows) < limit:
            return found, None
        last = rows[-1]
        after = _Position(
            last.get(column) if column else None, as_utc(last["timestamp"]), last["event_id"], last["model"]
        )
    return found, after


def call_page(
    storage: Storage, flt: CallFilter, *, sort: CallSort = "newest", limit: int = 50, cursor: str | None = None
) -> CallPage:
    """One page of calls in ``sort`` order and the cursor of the next (None on the last page).
    ValueError for a cursor that is not this listing's.

    Newest first, the page is read span by span from the newest stored moment down: the first span an
    hour long, each next one as long as the matches found so far say the rest of the page needs
    (between 2 and 64 times the last), the last one open downwards. A feedback filter looks up the
    feedback of a span's calls while the span holds fewer calls than the project has feedback rows of
    those kinds, and the other way round past that (both give the same page)."""
    after = decode_cursor(cursor, sort) if cursor else None
    want = limit + 1
    stored = _stored_span(storage)
    if stored is None:
        return CallPage()
    feedback_rows = _feedback_rows(storage, flt) if flt.by_feedback else 0

    def narrow(low: datetime | None, high: datetime | None) -> bool:
        return stored.share(low, high) < feedback_rows

    if sort != "newest":
        found, _ = _read(storage, flt, sort, (None, None), want, after, narrow_feedback=narrow(None, None))
    else:
        found = []
        bounds = [t for t in (flt.until, after.timestamp + _MILLISECOND if after else None) if t is not None]
        high = min(bounds) if bounds else None
        start = min(high, stored.high) if high is not None else stored.high
        floor = max(filter(None, (flt.since, stored.low)))
        length = _FIRST_SPAN
        while len(found) < want:
            low = start - length
            last = low <= floor
            span = (flt.since if last else low, high)
            got, _ = _read(storage, flt, sort, span, want - len(found), after, narrow_feedback=narrow(*span))
            found += got
            if last:
                break
            need = want - len(found)
            growth = _MAX_GROWTH if not got else min(_MAX_GROWTH, max(2.0, 1.5 * need / len(got)))
            high, start, length = low, low, length * growth
            after = None  # the next span lies wholly below the previous one
    items = found[:limit]
    more = len(found) > limit
    return CallPage(items, encode_cursor(sort, items[-1]) if more and items else None)


def inference(storage: Storage, project: str, event_id: str) -> StoredInference | None:
    """The call with this id (its newest copy), or None."""
    rows = storage.rows(
        f"SELECT {', '.join(DETAIL_COLUMNS)} FROM {storage.database}.inferences FINAL "
        "WHERE project = {project:String} AND event_id = {event_id:String} LIMIT 1",
        {"project": project, "event_id": event_id},
    )
    if not rows:
        return None
    row = rows[0]
    row["timestamp"] = as_utc(row["timestamp"])
    row["features"] = orjson.loads(row["features"]) if row["features"] else {}
    row["tags"] = dict(row["tags"])
    return StoredInference(**row)


def error_types(
    storage: Storage, project: str, model: str, since: datetime | None, until: datetime | None, top: int = 20
) -> list[ErrorTypeCount]:
    """The model's failed calls in the range, counted per ``error_type``, most frequent first."""
    flt = CallFilter(project=project, model=model, since=since, until=until, status="error")
    clauses, params = flt.where()
    rows = storage.query(
        f"SELECT error_type, count() AS calls FROM {storage.database}.inferences FINAL "
        f"WHERE {' AND '.join(clauses)} GROUP BY error_type ORDER BY calls DESC, error_type LIMIT {{top:UInt32}}",
        {**params, "top": top},
    ).result_rows
    return [ErrorTypeCount(str(error_type), int(calls)) for error_type, calls in rows]


def sampled_calls(
    storage: Storage, project: str, model: str, start: datetime, end: datetime, rows: int
) -> list[SampledCall]:
    """At most ``rows`` calls of the model in [start, end): the deterministic sample (by event-id hash)
    the window statistics compare, with their features and full texts."""
    flt = CallFilter(project=project, model=model, since=start, until=end)
    clauses, params = flt.where()
    found = storage.rows(
        f"SELECT {_SUMMARY_COLUMNS}, features, prompt, response FROM {storage.database}.inferences FINAL "
        f"WHERE {' AND '.join(clauses)} ORDER BY cityHash64(event_id) LIMIT {{rows:UInt32}}",
        {**params, "rows": rows},
    )
    return [SampledCall(_summary(row), row["features"], row["prompt"], row["response"]) for row in found]


def has_model(storage: Storage, project: str, model: str) -> bool:
    """Whether the project ever sent an inference of ``model`` (one granule read: the table is sorted
    by project and model)."""
    rows = storage.query(
        f"SELECT 1 FROM {storage.database}.inferences WHERE project = {{project:String}} "
        "AND model = {model:String} LIMIT 1",
        {"project": project, "model": model},
    ).result_rows
    return bool(rows)


def model_names(storage: Storage, project: str, limit: int = 1000) -> list[str]:
    """The models ``project`` has sent inferences of, by name (at most ``limit``)."""
    rows = storage.rows(
        f"SELECT DISTINCT model FROM {storage.database}.inferences WHERE project = {{project:String}} "
        "ORDER BY model LIMIT {limit:UInt32}",
        {"project": project, "limit": limit},
    )
    return [str(row["model"]) for row in rows]


def windows_of(storage: Storage, project: str, event_ids: Sequence[str], window_seconds: int) -> list[WindowKey]:
    """The windows (of ``window_seconds``) the stored calls of ``event_ids`` fall in, each once."""
    seconds = int(window_seconds)
    rows = storage.query(
        f"SELECT DISTINCT model, toStartOfInterval(timestamp, INTERVAL {seconds} SECOND) "
        f"FROM {storage.database}.inferences WHERE project = {{project:String}} "
        "AND event_id IN {ids:Array(String)}",
        {"project": project, "ids": list(event_ids)},
    ).result_rows
    return [
        WindowKey(project, model, as_utc(start), as_utc(start) + timedelta(seconds=seconds)) for model, start in rows
    ]


def project_names(storage: Storage) -> list[str]:
    """Every project with an inference or an API key (the ``api_keys`` table's projects are read here
    too: a project that has a key but has sent nothing yet is one to pick)."""
    db = storage.database
    rows = storage.query(
        f"SELECT DISTINCT project FROM {db}.api_keys UNION DISTINCT SELECT DISTINCT project FROM {db}.inferences"
    ).result_rows
    return sorted(str(row[0]) for row in rows)


@dataclass(frozen=True, slots=True)
class JudgedCall:
    """The call a feedback judges, as the feedback listing joins it."""

    event_id: str
    model: str
    model_version: str
    timestamp: datetime
    prompt: str
    response: str
    tags: dict[str, str]


def judged_calls(storage: Storage, project: str, event_ids: Sequence[str]) -> dict[str, JudgedCall]:
    """event_id → the stored call (its newest ingestion), for the ids of ``event_ids`` that have arrived.
    No FINAL (~30% cheaper): copies are collapsed here, the newest ``ingested_at`` winning."""
    if not event_ids:
        return {}
    rows = storage.rows(
        "SELECT event_id, model, model_version, timestamp, prompt, response, tags, ingested_at "
        f"FROM {storage.database}.inferences "
        "WHERE project = {project:String} AND event_id IN {ids:Array(String)}",
        {"project": project, "ids": sorted(set(event_ids))},
    )
    newest = newest_per_id(rows, "event_id")
    return {
        event_id: JudgedCall(
            event_id,
            row["model"],
            row["model_version"],
            as_utc(row["timestamp"]),
            row["prompt"],
            row["response"],
            dict(row["tags"]),
        )
        for event_id, row in newest.items()
    }


@dataclass(frozen=True, slots=True)
class VersionSample:
    """Column by column, a deterministic sample of one model version's calls over a range."""

    event_ids: list[str]
    latencies: list[float | None]
    statuses: list[str]
    costs: list[float | None]
    input_tokens: list[int | None]
    output_tokens: list[int | None]
    features: list[str]
    prompts: list[str]
    responses: list[str]


def version_sample(
    storage: Storage, project: str, model: str, version: str, since: datetime, until: datetime, limit: int
) -> VersionSample | None:
    """At most ``limit`` calls of ``version`` of the model in ``[since, until)``, sampled by event-id
    hash; ``None`` when the version has no call there."""
    flt = CallFilter(project=project, model=model, model_version=version, since=since, until=until)
    clauses, params = flt.where()
    rows = storage.query(
        "SELECT event_id, latency_ms, status, cost_usd, input_tokens, output_tokens, features, prompt, response "
        f"FROM {storage.database}.inferences FINAL WHERE {' AND '.join(clauses)} "
        "ORDER BY cityHash64(event_id) LIMIT {limit:UInt32}",
        {**params, "limit": limit},
    ).result_rows
    if not rows:
        return None
    return VersionSample(*(list(column) for column in zip(*rows, strict=True)))


@dataclass(frozen=True, slots=True)
class ModelCounts:
    """One model of a project: its named versions, calls, failed calls, first and last call."""

    model: str
    versions: list[str]
    inferences: int
    errors: int
    first_seen: datetime
    last_seen: datetime


def model_counts(storage: Storage, project: str) -> list[ModelCounts]:
    """Every model the project has sent calls of, by name."""
    rows = storage.rows(
        "SELECT model, groupUniqArray(model_version) AS versions, count() AS inferences, "
        "countIf(status = 'error') AS errors, min(timestamp) AS first_seen, max(timestamp) AS last_seen "
        f"FROM {storage.database}.inferences FINAL WHERE project = {{project:String}} GROUP BY model ORDER BY model",
        {"project": project},
    )
    return [
        ModelCounts(
            row["model"],
            sorted(v for v in row["versions"] if v),
            int(row["inferences"]),
            int(row["errors"]),
            as_utc(row["first_seen"]),
            as_utc(row["last_seen"]),
        )
        for row in rows
    ]


def window_calls(key: WindowKey) -> tuple[str, dict[str, Any]]:
    """The clause selecting one window's calls (``start`` and ``end`` bind its bounds), and its parameters."""
    params: dict[str, Any] = {"project": key.project, "model": key.model}
    clauses = ["project = {project:String}", "model = {model:String}"]
    clauses += time_range(params, key.start, key.end, names=("start", "end"))
    return " AND ".join(clauses), params


@dataclass(frozen=True, slots=True)
class WindowSample:
    """Column by column, the window's deterministic sample (by event-id hash) the drift tests read."""

    features: list[str]
    prompts: list[str]
    responses: list[str]
    versions: list[str]


def window_sample(storage: Storage, key: WindowKey, limit: int) -> WindowSample:
    """At most ``limit`` calls of the window, each once, in event-id-hash order."""
    where, params = window_calls(key)
    rows = storage.query(
        f"SELECT features, prompt, response, model_version FROM {storage.database}.inferences FINAL WHERE {where} "
        "ORDER BY cityHash64(event_id) LIMIT {limit:UInt32}",
        {**params, "limit": limit},
    ).result_rows
    return WindowSample([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


def window_embeddings(storage: Storage, key: WindowKey, limit: int) -> list[list[float]]:
    """At most ``limit`` stored embeddings of the window, in the sample's event-id-hash order."""
    where, params = window_calls(key)
    rows = storage.query(
        f"SELECT embedding FROM {storage.database}.inferences FINAL WHERE {where} AND notEmpty(embedding) "
        "ORDER BY cityHash64(event_id) LIMIT {limit:UInt32}",
        {**params, "limit": limit},
    ).result_rows
    return [r[0] for r in rows]


@dataclass(frozen=True, slots=True)
class WindowColumns:
    """Every call of a window, column by column: the numbers of the latency and cost families, and the
    value of each asked tag (None: the call has no such tag)."""

    latencies: list[float | None]
    statuses: list[str]
    versions: list[str]
    costs: list[float | None]
    input_tokens: list[int | None]
    output_tokens: list[int | None]
    tag_values: tuple[list[str | None], ...]
    pii: list[dict[str, int]]  # what redaction found per field and kind ({}: not scanned)


def window_columns(storage: Storage, key: WindowKey, tag_keys: Sequence[str]) -> WindowColumns:
    """Every call of the window, exactly once (``FINAL`` merges re-sent copies; with the table sorted
    by (project, model, timestamp) it only reads and merges the window's own granules)."""
    tags = "".join(
        f", if(mapContains(tags, {{tag{i}:String}}), tags[{{tag{i}:String}}], NULL)" for i in range(len(tag_keys))
    )
    where, params = window_calls(key)
    result = storage.query(
        "SELECT latency_ms, status, model_version, cost_usd, input_tokens, output_tokens, pii"
        f"{tags} FROM {storage.database}.inferences FINAL WHERE {where}",
        {**params, **{f"tag{i}": tag for i, tag in enumerate(tag_keys)}},
    )
    columns = result.result_columns or [[] for _ in range(7 + len(tag_keys))]
    latencies, statuses, versions, costs, inputs, outputs, pii = (list(column) for column in columns[:7])
    return WindowColumns(
        latencies, statuses, versions, costs, inputs, outputs, tuple(list(values) for values in columns[7:]), pii
    )


_OF_USER = "project = {project:String} AND tags['user_id'] = {user_id:String}"


def erase_user_ids(storage: Storage, project: str, user_id: str) -> list[str]:
    """The ids of the events whose ``tags.user_id`` is ``user_id`` (re-sent copies once)."""
    rows = storage.rows(
        f"SELECT DISTINCT event_id FROM {storage.database}.inferences WHERE {_OF_USER}",
        {"project": project, "user_id": user_id},
    )
    return [row["event_id"] for row in rows]


def erase_user(storage: Storage, project: str, user_id: str, event_ids: list[str]) -> int:
    """Delete the user's events (``ALTER TABLE … DELETE``, waited for); ``event_ids`` from
    ``erase_user_ids``. Returns how many events that was."""
    if event_ids:
        expiry.delete_where(storage, "inferences", _OF_USER, {"project": project, "user_id": user_id})
    return len(event_ids)


def inferences_by_id(storage: Storage, project: str, event_ids: list[str]) -> dict[str, StoredInference]:
    """The calls with these ids (their newest copies), by id; ids not stored are missing."""
    if not event_ids:
        return {}
    rows = storage.rows(
        f"SELECT {', '.join(DETAIL_COLUMNS)} FROM {storage.database}.inferences FINAL "
        "WHERE project = {project:String} AND event_id IN {ids:Array(String)}",
        {"project": project, "ids": event_ids},
    )
    found = {}
    for row in rows:
        row["timestamp"] = as_utc(row["timestamp"])
        row["features"] = orjson.loads(row["features"]) if row["features"] else {}
        row["tags"] = dict(row["tags"])
        found[row["event_id"]] = StoredInference(**row)
    return found


@dataclass(frozen=True, slots=True)
class CallKey:
    """What decides whether an evaluator takes a call: its id, model, version, status and tags."""

    event_id: str
    model: str
    model_version: str
    status: str
    tags: dict[str, str]


def calls_between(
    storage: Storage, project: str, since: datetime, until: datetime, model: str | None, limit: int
) -> list[CallKey]:
    """The calls of ``[since, until)`` (of ``model`` when given), oldest first, at most ``limit``."""
    rows = storage.rows(
        f"SELECT DISTINCT event_id, model, model_version, status, tags FROM {storage.database}.inferences "
        "WHERE project = {project:String} AND timestamp >= {since:DateTime64(3, 'UTC')} "
        "AND timestamp < {until:DateTime64(3, 'UTC')}"
        + (" AND model = {model:String}" if model else "")
        + " ORDER BY event_id LIMIT {limit:UInt32}",
        {"project": project, "since": since, "until": until, "model": model or "", "limit": limit},
    )
    return [CallKey(r["event_id"], r["model"], r["model_version"], r["status"], dict(r["tags"])) for r in rows]


def insert(storage: Storage, records: list[InferenceRecord]) -> None:
    """Write ``records`` (one insert)."""
    storage.insert_json("inferences", encode_records(records))


@dataclass(frozen=True, slots=True)
class IngestedCall:
    """A stored call as an evaluation sampler reads it: its project, key fields and ingestion time."""

    project: str
    key: CallKey
    ingested_at: datetime


@dataclass(frozen=True, slots=True)
class Share:
    """An evaluator's share of a project's calls: those whose ``sample_point`` is below ``rate``."""

    project: str
    evaluator_id: str
    rate: float


# ``streams.evals.sampling.sample_point`` in SQL: the first 8 bytes of SHA-256("evaluator id \x1f event id")
# as a big-endian integer, over 2^64 (the same double in both: a rounding of the integer, then an exact
# division by a power of two).
_POINT = (
    "reinterpretAsUInt64(reverse(substring(SHA256(concat({{e{i}:String}}, '\x1f', event_id)), 1, 8)))"
    " / 18446744073709551616."
)


def ingested_since(
    storage: Storage,
    since: datetime,
    after: tuple[datetime, str, str] | None,
    limit: int,
    shares: Sequence[Share] | None = None,
) -> list[IngestedCall]:
    """Calls ingested at or after ``since`` (past ``after`` = (ingested_at, project, event_id) when
    paging), in that order, at most ``limit``; the ``ingested_at`` minmax index skips older granules.
    With ``shares``, only the calls in one of them (computed in ClickHouse: a 10 % sampled evaluator reads
    a tenth of the calls back, not all of them)."""
    keyset = " AND (ingested_at, project, event_id) > ({at:DateTime64(3, 'UTC')}, {p:String}, {e:String})"
    at, project, event_id = after or (since, "", "")
    params: dict[str, Any] = {"since": since, "at": at, "p": project, "e": event_id, "limit": limit}
    sampled = ""
    if shares is not None:
        terms = []
        for i, share in enumerate(shares):
            params[f"p{i}"], params[f"e{i}"], params[f"r{i}"] = share.project, share.evaluator_id, share.rate
            taken = "1" if share.rate >= 1 else f"{_POINT.format(i=i)} < {{r{i}:Float64}}"
            terms.append(f"(project = {{p{i}:String}} AND {taken})")
        sampled = f" AND ({' OR '.join(terms) or '0'})"
    rows = storage.rows(
        "SELECT project, event_id, model, model_version, status, tags, ingested_at "
        f"FROM {storage.database}.inferences WHERE ingested_at >= {{since:DateTime64(3, 'UTC')}}"
        + (keyset if after else "")
        + sampled
        + " ORDER BY ingested_at, project, event_id LIMIT {limit:UInt32}",
        params,
    )
    return [
        IngestedCall(
            r["project"],
            CallKey(r["event_id"], r["model"], r["model_version"], r["status"], dict(r["tags"])),
            as_utc(r["ingested_at"]),
        )
        for r in rows
    ]


def newest_ingested(storage: Storage, since: datetime) -> datetime | None:
    """The newest ``ingested_at`` at or after ``since`` (one column of the newest granules), or None."""
    value = storage.scalar(
        f"SELECT max(ingested_at) FROM {storage.database}.inferences "
        "WHERE ingested_at >= {since:DateTime64(3, 'UTC')}",
        {"since": since},
    )
    return None if value is None or as_utc(value) < since else as_utc(value)


def blank_text_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Blank the prompts and responses of the project's events before ``cutoff`` (their numbers, tags and
    ``pii`` counts stay, and so do the statistics); returns the events changed."""
    return expiry.expire(storage, "inferences", project, "timestamp", cutoff, blank=("prompt", "response"))


def delete_before(storage: Storage, project: str, cutoff: datetime) -> int:
    """Delete the project's events before ``cutoff``; returns how many."""
    return expiry.expire(storage, "inferences", project, "timestamp", cutoff)
