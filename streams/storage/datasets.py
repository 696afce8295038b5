"""The ``datasets`` and ``dataset_rows`` tables: immutable, versioned snapshots of feedback.

A snapshot is one ``INSERT … SELECT`` inside ClickHouse: the matching feedback (newest copy of each id)
joined to its call (newest copy too) is copied under a fresh ``build_id``, so building a million rows
never passes through Python. A version is committed afterwards by its ``datasets`` row, which names the
build; readers only ever follow a committed row, so a build that a crash left half made is invisible
and a retry simply makes a new build. Rows are stored in the order downloads read them (time, then
feedback id), so a download reads the table in its sort order, page by page.

Why a table rather than files under the data dir: with a ClickHouse server DSN every API replica and
worker must see the same snapshot; a table is shared by construction, files would not be.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson

from streams.storage import expiry
from streams.storage.claims import Claims
from streams.storage.client import Storage
from streams.storage.feedback import FeedbackFilter
from streams.storage.times import as_utc, ch_time

DatasetFormat = Literal["jsonl", "chat", "dpo", "csv", "parquet"]
FORMATS: tuple[DatasetFormat, ...] = ("jsonl", "chat", "dpo", "csv", "parquet")
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}$"
SNAPSHOT_STALE_AFTER = timedelta(minutes=10)  # a snapshot claimed on another host this long ago is taken over
ROW_COLUMNS = (
    "timestamp",
    "feedback_id",
    "inference_id",
    "kind",
    "value",
    "label",
    "name",
    "text",
    "source",
    "user_id",
    "model",
    "model_version",
    "prompt",
    "response",
    "tags",
)
# Which rows a format keeps: chat needs a prompt and a correction; DPO also the rejected response.
_FORMAT_ROWS: dict[str, str] = {
    "chat": "f.kind = 'correction' AND i.prompt != '' AND f.text != ''",
    "dpo": "f.kind = 'correction' AND i.prompt != '' AND i.response != '' AND f.text != ''",
}


@dataclass(frozen=True, slots=True)
class DatasetQuery:
    """What a snapshot selects: the filters of ``/v1/feedback/export`` (``None`` / empty = any), or the
    reviews of one review queue (``queue_id``)."""

    model: str | None = None
    model_version: str | None = None
    kinds: tuple[str, ...] = ()
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tags: tuple[tuple[str, str], ...] = ()
    queue_id: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The query as stored and shown: only the filters that are set, in the API's parameter names."""
        out: dict[str, Any] = {}
        for key, value in (
            ("model", self.model),
            ("model_version", self.model_version),
            ("source", self.source),
            ("queue_id", self.queue_id),
        ):
            if value:
                out[key] = value
        if self.kinds:
            out["kind"] = list(self.kinds)
        if self.since:
            out["since"] = as_utc(self.since).isoformat()
        if self.until:
            out["until"] = as_utc(self.until).isoformat()
        if self.tags:
            out["tag"] = [f"{k}:{v}" for k, v in self.tags]
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetQuery:
        return cls(
            model=data.get("model"),
            model_version=data.get("model_version"),
            kinds=tuple(data.get("kind", ())),
            source=data.get("source"),
            since=datetime.fromisoformat(data["since"]) if data.get("since") else None,
            until=datetime.fromisoformat(data["until"]) if data.get("until") else None,
            tags=tuple((t.split(":", 1)[0], t.split(":", 1)[1]) for t in data.get("tag", ())),
            queue_id=data.get("queue_id"),
        )

    def where(self, db: str, project: str) -> tuple[str, dict[str, Any]]:
        """The ``feedback`` table's WHERE for this query: the export's filters (``FeedbackFilter``: one
        definition, so a dataset selects what the export does), and a queue's reviewed feedback."""
        where, params = FeedbackFilter(
            project=project,
            model=self.model,
            model_version=self.model_version,
            kinds=list(self.kinds),
            source=self.source,
            since=self.since,
            until=self.until,
            tags=dict(self.tags),
        ).where(db)
        if self.queue_id:
            where += (
                f" AND feedback_id IN (SELECT arrayJoin(feedback_ids) FROM {db}.queue_reviews FINAL "
                "WHERE project = {project:String} AND queue_id = {queue_id:String} AND undone = 0 AND skipped = 0)"
            )
            params["queue_id"] = self.queue_id
        return where, params


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One committed version: what it holds, its content hash and the query that made it."""

    project: str
    name: str
    version: int
    format: DatasetFormat
    row_count: int
    byte_count: int
    sha256: str
    query: DatasetQuery
    created_at: datetime
    created_by: str = ""
    request_id: str = ""  # the retraining request it was made for, if any
    build_id: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class DatasetRow:
    """One snapshotted feedback item with its call as it was when the snapshot was made."""

    timestamp: datetime
    feedback_id: str
    inference_id: str
    kind: str
    value: float | None
    label: str
    name: str
    text: str
    source: str
    user_id: str
    model: str
    model_version: str
    prompt: str
    response: str
    tags: dict[str, str]


def _row(row: Mapping[str, Any]) -> DatasetRow:
    return DatasetRow(**{**row, "timestamp": as_utc(row["timestamp"]), "tags": dict(row["tags"])})


def _version(row: Mapping[str, Any]) -> DatasetVersion:
    return DatasetVersion(
        project=row["project"],
        name=row["name"],
        version=int(row["version"]),
        format=row["format"],
        row_count=int(row["row_count"]),
        byte_count=int(row["byte_count"]),
        sha256=row["sha256"],
        query=DatasetQuery.from_json(orjson.loads(row["query"] or "{}")),
        created_at=as_utc(row["created_at"]),
        created_by=row["created_by"],
        request_id=row["request_id"],
        build_id=row["build_id"],
    )


_VERSION_COLUMNS = (
    "project, name, version, build_id, format, row_count, byte_count, sha256, query, request_id, created_by, created_at"
)


class DatasetStore:
    """All SQL about ``datasets`` and ``dataset_rows``."""

    def __init__(self, storage: Storage, claims: Claims | None = None) -> None:
        self._storage = storage
        self._db = storage.database
        self._claims = claims or Claims(storage)

    def build(self, project: str, query: DatasetQuery, fmt: DatasetFormat) -> str:
        """Copy the rows ``query`` selects (those ``fmt`` can use) under a new build id; returns it.
        Nothing names the build until ``commit``."""
        build_id = secrets.token_hex(12)
        db = self._db
        where, params = query.where(db, project)
        keep = _FORMAT_ROWS.get(fmt, "1")
        columns = ", ".join(("project", "build_id", *ROW_COLUMNS))
        # Newest copy of each feedback id and of each call (FINAL), as merges keep.
        self._storage.command(
            f"INSERT INTO {db}.dataset_rows ({columns}) "
            "SELECT f.project, {build:String}, f.timestamp, f.feedback_id, f.inference_id, f.kind, f.value, f.label, "
            "f.name, f.text, f.source, f.user_id, i.model, i.model_version, i.prompt, i.response, i.tags "
            f"FROM (SELECT * FROM {db}.feedback FINAL WHERE {where}) AS f "
            "LEFT JOIN (SELECT event_id, toString(model) AS model, toString(model_version) AS model_version, prompt, "
            "response, CAST(tags, 'Map(String, String)') AS tags "
            f"FROM {db}.inferences FINAL WHERE project = {{project:String}} AND event_id IN "
            f"(SELECT inference_id FROM {db}.feedback WHERE {where})) AS i "
            f"ON f.inference_id = i.event_id WHERE {keep} "
            # bounded memory however large the selection: the calls' side of the join spills to disk, and
            # rows are written in parts of 16 MiB instead of the 256 MiB an INSERT … SELECT gathers by default
            "SETTINGS join_algorithm = 'grace_hash', grace_hash_join_initial_buckets = 8, "
            "min_insert_block_size_rows = 65536, min_insert_block_size_bytes = 16777216",
            {**params, "build": build_id},
        )
        return build_id

    def build_stats(self, project: str, build_id: str) -> int:
        return int(
            self._storage.scalar(
                f"SELECT count() FROM {self._db}.dataset_rows WHERE project = {{project:String}} "
                "AND build_id = {build:String}",
                {"project": project, "build": build_id},
            )
            or 0
        )

    def rows(self, project: str, build_id: str, *, page_size: int = 5_000) -> Iterator[DatasetRow]:
        """A build's rows in their stored order, page by page (memory stays bounded)."""
        cursor: tuple[str, str] | None = None
        columns = ", ".join(ROW_COLUMNS)
        while True:
            after = ""
            params: dict[str, Any] = {"project": project, "build": build_id, "limit": page_size}
            if cursor is not None:
                # the plain bound lets the sort key skip the pages read already; the tuple decides ties
                after = (
                    " AND timestamp >= {cts:DateTime64(3, 'UTC')}"
                    " AND (timestamp, feedback_id) > ({cts:DateTime64(3, 'UTC')}, {cid:String})"
                )
                params["cts"], params["cid"] = cursor
            page = self._storage.rows(
                f"SELECT {columns} FROM {self._db}.dataset_rows WHERE project = {{project:String}} "
                f"AND build_id = {{build:String}}{after} ORDER BY timestamp, feedback_id LIMIT {{limit:UInt32}}",
                params,
            )
            for row in page:
                yield _row(row)
            if len(page) < page_size:
                return
            last = page[-1]
            cursor = (ch_time(last["timestamp"]), last["feedback_id"])

    def claim_version(self, project: str, name: str) -> int:
        """The next version number of ``name``, claimed for this process (racing creators get distinct ones)."""
        latest = self._storage.scalar(
            f"SELECT max(version) FROM {self._db}.datasets "
            "WHERE project = {project:String} AND name = {name:String}",
            {"project": project, "name": name},
        )
        number = int(latest or 0) + 1
        # an owner of this call's own: two snapshots of one name in this process get distinct numbers too
        claims = Claims(self._storage, owner=f"{self._claims.owner}:{secrets.token_hex(6)}")
        while not claims.claim(project, "dataset", [f"{name}@{number}"]):
            number += 1
        return number

    def claim_snapshot(self, project: str, request_id: str) -> bool:
        """Whether this process makes the version of a retraining request (one process does; one that
        died making it is taken over, see ``Claims.claim_or_take_over``)."""
        return self._claims.claim_or_take_over(project, "snapshot", request_id, stale_after=SNAPSHOT_STALE_AFTER)

    def commit(self, version: DatasetVersion) -> None:
        """Name the build: from now on this version exists, and never changes."""
        self._storage.insert_rows(
            "datasets",
            [c.strip() for c in _VERSION_COLUMNS.split(",")],
            [
                [
                    version.project,
                    version.name,
                    version.version,
                    version.build_id,
                    version.format,
                    version.row_count,
                    version.byte_count,
                    version.sha256,
                    orjson.dumps(version.query.as_json()).decode(),
                    version.request_id,
                    version.created_by,
                    version.created_at,
                ]
            ],
        )

    def versions(self, project: str, name: str | None = None, *, limit: int = 500) -> list[DatasetVersion]:
        """Committed versions, newest first (of one dataset, or of all)."""
        only = " AND name = {name:String}" if name else ""
        rows = self._storage.rows(
            f"SELECT {_VERSION_COLUMNS} FROM {self._db}.datasets FINAL WHERE project = {{project:String}}{only} "
            "ORDER BY created_at DESC, name, version DESC LIMIT {limit:UInt32}",
            {"project": project, "name": name or "", "limit": limit},
        )
        return [_version(row) for row in rows]

    def get(self, project: str, name: str, version: int) -> DatasetVersion | None:
        rows = self._storage.rows(
            f"SELECT {_VERSION_COLUMNS} FROM {self._db}.datasets FINAL WHERE project = {{project:String}} "
            "AND name = {name:String} AND version = {version:UInt32}",
            {"project": project, "name": name, "version": version},
        )
        return _version(rows[0]) if rows else None

    def for_request(self, project: str, request_id: str) -> DatasetVersion | None:
        """The version made for a retraining request (the first committed, should two have been)."""
        rows = self._storage.rows(
            f"SELECT {_VERSION_COLUMNS} FROM {self._db}.datasets FINAL WHERE project = {{project:String}} "
            "AND request_id = {request:String} ORDER BY version LIMIT 1",
            {"project": project, "request": request_id},
        )
        return _version(rows[0]) if rows else None


def erase_user(storage: Storage, project: str, user_id: str, inference_ids: Sequence[str]) -> int:
    """Delete the user's rows from every dataset version: rows of their calls (``inference_ids``) and the
    feedback they gave. Erasure overrides immutability: an affected version's download no longer matches
    its ``sha256`` (which then tells that rows were erased from it). Returns the rows removed."""
    where = (
        "project = {project:String} AND (user_id = {user_id:String} OR tags['user_id'] = {user_id:String} "
        "OR has({ids:Array(String)}, inference_id))"
    )
    params = {"project": project, "user_id": user_id, "ids": list(inference_ids)}
    return expiry.delete_where(storage, "dataset_rows", where, params)
