"""The ``review_queues``, ``queue_items``, ``queue_reviews`` and ``queue_watermarks`` tables, and who
holds which item.

A queue is filled by its rules (one ``INSERT … SELECT`` per rule over ``inferences``, sampled by a hash
of the call id so a refill takes the same calls) or by hand. Past its creation a queue keeps taking
calls as they arrive: ``arrivals`` reads, in arrival order from the queue's watermark, the calls that
arrived and the calls that feedback arrived for (a thumbs-down or an evaluator's score hours later),
and, for a ``drifted`` rule, the calls of windows whose drift was flagged since; ``take`` applies the
rules to just those calls. An item is one row per (queue, call) in a ReplacingMergeTree, so adding a
call twice (a pass redone after a crash) keeps one. A reviewer asking for the next item gets
the oldest one that still needs a review, that they have not reviewed or skipped, and that nobody else
holds: holding is a claim (``streams.storage.claims``, kind ``hold``) on ``<queue>/<call>``, so of two
reviewers asking at once one wins; a hold ends when its reviewer reviews or skips the item, or after
the queue's ``hold_seconds``, and the next reviewer claims the key's next generation. A review is one
row per (item, reviewer), replaced when undone or redone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.queues import Queue, QueueRule, ScoreValue
from streams.storage import expiry
from streams.storage.claims import Claims, generation
from streams.storage.client import Storage
from streams.storage.times import as_utc, ch_time

_CANDIDATES = 50  # items looked at per "next" query


def reviewer_owner(reviewer: str) -> str:
    """The claim owner of a reviewer's holds."""
    return f"reviewer:{reviewer}"


@dataclass(frozen=True, slots=True)
class Review:
    queue_id: str
    inference_id: str
    reviewer: str
    skipped: bool
    scores: dict[str, ScoreValue]
    feedback_ids: tuple[str, ...]
    reviewed_at: datetime


@dataclass(frozen=True, slots=True)
class QueueProgress:
    items: int
    done: int  # reviewed by ``reviews_per_item`` reviewers
    held: int  # held by a reviewer right now
    per_reviewer: dict[str, tuple[int, int]]  # reviewer → (reviews, skips)


@dataclass(frozen=True, slots=True, order=True)
class Watermark:
    """A position in arrival order: what arrived at ``arrived_at`` up to call ``inference_id`` is read."""

    arrived_at: datetime
    inference_id: str = ""


def _review(row: Mapping[str, Any]) -> Review:
    return Review(
        queue_id=row["queue_id"],
        inference_id=row["inference_id"],
        reviewer=row["reviewer"],
        skipped=bool(row["skipped"]),
        scores=orjson.loads(row["scores"] or "{}"),
        feedback_ids=tuple(row["feedback_ids"]),
        reviewed_at=as_utc(row["reviewed_at"]),
    )


_REVIEW_COLUMNS = "queue_id, inference_id, reviewer, skipped, scores, feedback_ids, reviewed_at"


class QueueStore:
    """All SQL about review queues, their items and reviews."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._db = storage.database

    # ------------------------------------------------------------------ queues

    def put(self, queue: Queue, *, deleted: bool = False) -> None:
        self._storage.insert_rows(
            "review_queues",
            ["project", "queue_id", "body", "deleted", "updated_at"],
            [[queue.project, queue.queue_id, queue.model_dump_json(), int(deleted), datetime.now(UTC)]],
        )

    def get(self, project: str, queue_id: str) -> Queue | None:
        rows = self._storage.rows(
            f"SELECT body FROM {self._db}.review_queues FINAL WHERE project = {{project:String}} "
            "AND queue_id = {queue:String} AND deleted = 0",
            {"project": project, "queue": queue_id},
        )
        return Queue.model_validate_json(rows[0]["body"]) if rows else None

    def all(self, project: str) -> list[Queue]:
        rows = self._storage.rows(
            f"SELECT body FROM {self._db}.review_queues FINAL WHERE project = {{project:String}} AND deleted = 0 "
            "ORDER BY queue_id",
            {"project": project},
        )
        return [Queue.model_validate_json(row["body"]) for row in rows]

    def with_rules(self) -> list[Queue]:
        """Every project's queues that have rules (those that keep filling), in a stable order."""
        rows = self._storage.rows(
            f"SELECT body FROM {self._db}.review_queues FINAL WHERE deleted = 0 ORDER BY project, queue_id"
        )
        return [queue for queue in (Queue.model_validate_json(row["body"]) for row in rows) if queue.rules]

    # ------------------------------------------------------------------ filling as events arrive

    def clock(self) -> datetime:
        """Storage's time now: the clock ``ingested_at`` is written with."""
        return as_utc(self._storage.scalar("SELECT now64(3, 'UTC')"))

    def watermark(self, queue: Queue) -> Watermark:
        """Where the queue's arrival scan stands (its creation, before any pass)."""
        rows = self._storage.query(
            f"SELECT max((arrived_at, inference_id)) FROM {self._db}.queue_watermarks "
            "WHERE project = {project:String} AND queue_id = {queue:String} HAVING count() > 0",
            {"project": queue.project, "queue": queue.queue_id},
        ).result_rows
        if not rows:
            return Watermark(as_utc(queue.created_at))
        at, inference_id = rows[0][0]
        return Watermark(as_utc(at), inference_id)

    def start_watermark(self, queue: Queue, settle_seconds: float) -> None:
        """Where a new queue's passes start: storage's clock less the settling time, taken before the
        queue's first fill, so a call that arrives while that fill runs (or whose insert was in flight)
        is read by a pass, whatever the API's clock says. A pass reading a call the fill took adds
        nothing."""
        self.advance(queue, Watermark(self.clock() - timedelta(seconds=settle_seconds)))

    def advance(self, queue: Queue, mark: Watermark) -> None:
        self._storage.insert_rows(
            "queue_watermarks",
            ["project", "queue_id", "arrived_at", "inference_id"],
            [[queue.project, queue.queue_id, mark.arrived_at, mark.inference_id]],
        )

    def arrivals(self, queue: Queue, after: Watermark, upto: datetime, limit: int) -> list[Watermark]:
        """What arrived after ``after`` up to ``upto`` that the queue's rules can take, in arrival order
        (at most ``limit``): new calls; calls that feedback arrived for, when a rule looks at feedback;
        calls of windows flagged as drifted since, when a rule takes drifted windows."""
        db = self._db
        arrived = "ingested_at >= {at:DateTime64(3, 'UTC')} AND ingested_at <= {upto:DateTime64(3, 'UTC')}"
        parts = [
            f"SELECT event_id AS id, ingested_at AS at FROM {db}.inferences WHERE project = {{project:String}} "
            f"AND {arrived}"
        ]
        if any(rule.thumbs_down or rule.evaluator_below is not None for rule in queue.rules):
            parts.append(
                f"SELECT inference_id, ingested_at FROM {db}.feedback WHERE project = {{project:String}} AND {arrived}"
            )
        if any(rule.drifted for rule in queue.rules):
            parts.append(
                "SELECT i.event_id, w.computed FROM (SELECT model, window_start, window_end, "
                "max(computed_at) AS computed "
                f"FROM {db}.window_stats WHERE project = {{project:String}} AND family = 'drift' "
                "AND metric IN ('dataset_drift', 'family_drift') AND flagged = 1 "
                "AND computed_at >= {at:DateTime64(3, 'UTC')} AND computed_at <= {upto:DateTime64(3, 'UTC')} "
                "GROUP BY model, window_start, window_end) AS w INNER JOIN (SELECT event_id, toString(model) AS model, "
                f"timestamp FROM {db}.inferences WHERE project = {{project:String}}) AS i ON i.model = w.model "
                "WHERE i.timestamp >= w.window_start AND i.timestamp < w.window_end"
            )
        rows = self._storage.query(
            f"SELECT DISTINCT id, at FROM ({' UNION ALL '.join(parts)}) "
            "WHERE (at, id) > ({at:DateTime64(3, 'UTC')}, {id:String}) ORDER BY at, id LIMIT {limit:UInt32}",
            {
                "project": queue.project,
                "at": ch_time(after.arrived_at),
                "id": after.inference_id,
                "upto": ch_time(upto),
                "limit": limit,
            },
        ).result_rows
        return [Watermark(as_utc(at), inference_id) for inference_id, at in rows]

    def take(self, queue: Queue, inference_ids: Sequence[str]) -> int:
        """Apply the queue's rules to these calls only (up to its ``max_items``); returns how many were added."""
        return self._by_rules(queue, queue.max_items, only=inference_ids) if inference_ids else 0

    # ------------------------------------------------------------------ items

    def add(self, project: str, queue_id: str, inference_ids: Sequence[str], *, by: str) -> int:
        """Add calls by hand (ids of stored calls only); returns how many were new to the queue."""
        if not inference_ids:
            return 0
        params = {"project": project, "queue": queue_id, "ids": sorted(set(inference_ids)), "by": by}
        before = self.count(project, queue_id)
        self._storage.command(
            f"INSERT INTO {self._db}.queue_items (project, queue_id, inference_id, added_by) "
            "SELECT DISTINCT {project:String}, {queue:String}, event_id, {by:String} "
            f"FROM {self._db}.inferences WHERE project = {{project:String}} AND event_id IN {{ids:Array(String)}} "
            f"AND event_id NOT IN (SELECT inference_id FROM {self._db}.queue_items "
            "WHERE project = {project:String} AND queue_id = {queue:String})",
            params,
        )
        return self.count(project, queue_id) - before

    def items(self, project: str, queue_id: str) -> list[str]:
        """The calls in a queue, in the order they were added."""
        rows = self._storage.query(
            f"SELECT inference_id FROM {self._db}.queue_items FINAL WHERE project = {{project:String}} "
            "AND queue_id = {queue:String} ORDER BY added_at, inference_id",
            {"project": project, "queue": queue_id},
        ).result_rows
        return [row[0] for row in rows]

    def known_calls(self, project: str, inference_ids: Sequence[str]) -> set[str]:
        rows = self._storage.query(
            f"SELECT DISTINCT event_id FROM {self._db}.inferences WHERE project = {{project:String}} "
            "AND event_id IN {ids:Array(String)}",
            {"project": project, "ids": list(inference_ids)},
        ).result_rows
        return {row[0] for row in rows}

    def fill(self, queue: Queue) -> int:
        """Apply the queue's rules to the stored calls now (up to ``max_fill`` calls, and to its
        ``max_items``); returns how many calls were added."""
        return self._by_rules(queue, min(queue.max_items, self.count(queue.project, queue.queue_id) + queue.max_fill))

    def _by_rules(self, queue: Queue, size: int, *, only: Sequence[str] | None = None) -> int:
        """Add the calls the rules take (of ``only``, if given) until the queue holds ``size``."""
        before = count = self.count(queue.project, queue.queue_id)
        for index, rule in enumerate(queue.rules):
            if count >= size:
                break
            where, params = self._rule_where(queue.project, rule)
            if only is not None:
                where += " AND event_id IN {only:Array(String)}"
                params["only"] = list(only)
            self._storage.command(
                f"INSERT INTO {self._db}.queue_items (project, queue_id, inference_id, added_by) "
                f"SELECT project, {{queue:String}}, event_id, {{by:String}} FROM {self._db}.inferences "
                f"WHERE {where} AND event_id NOT IN (SELECT inference_id FROM {self._db}.queue_items "
                "WHERE project = {project:String} AND queue_id = {queue:String}) "
                "ORDER BY timestamp DESC LIMIT 1 BY event_id LIMIT {limit:UInt32}",
                {**params, "queue": queue.queue_id, "by": f"rule {index + 1}", "limit": size - count},
            )
            count = self.count(queue.project, queue.queue_id)
        return count - before

    def _rule_where(self, project: str, rule: QueueRule) -> tuple[str, dict[str, Any]]:
        db = self._db
        clauses = ["project = {project:String}"]
        params: dict[str, Any] = {"project": project}
        if rule.sample_rate < 1:
            clauses.append("cityHash64(event_id) % 10000 < {rate:UInt32}")
            params["rate"] = round(rule.sample_rate * 10000)
        for column in ("model", "model_version"):
            if value := getattr(rule, column):
                clauses.append(f"{column} = {{{column}:String}}")
                params[column] = value
        if rule.since:
            clauses.append("timestamp >= {since:DateTime64(3, 'UTC')}")
            params["since"] = ch_time(rule.since)
        if rule.until:
            clauses.append("timestamp < {until:DateTime64(3, 'UTC')}")
            params["until"] = ch_time(rule.until)
        if rule.errors:
            clauses.append("status = 'error'")
        if rule.thumbs_down:
            clauses.append(
                f"event_id IN (SELECT inference_id FROM {db}.feedback WHERE project = {{project:String}} "
                "AND kind = 'thumbs' AND value < 0)"
            )
        if rule.evaluator_below is not None:
            named = " AND name = {evaluator:String}" if rule.evaluator_name else ""
            clauses.append(
                f"event_id IN (SELECT inference_id FROM {db}.feedback WHERE project = {{project:String}} "
                f"AND source = 'evaluator' AND value < {{below:Float64}}{named})"
            )
            params["below"] = rule.evaluator_below
            params["evaluator"] = rule.evaluator_name or ""
        if rule.drifted:
            clauses.append(
                f"(model, toStartOfInterval(timestamp, INTERVAL 1 SECOND)) IN (SELECT i.model, i.second FROM "
                f"(SELECT DISTINCT model, window_start, window_end FROM {db}.window_stats FINAL "
                "WHERE project = {project:String} AND family = 'drift' AND metric IN ('dataset_drift', 'family_drift') "
                "AND flagged = 1) AS w "
                "INNER JOIN (SELECT model, toStartOfInterval(timestamp, INTERVAL 1 SECOND) AS second "
                f"FROM {db}.inferences WHERE project = {{project:String}}) AS i ON i.model = w.model "
                "WHERE i.second >= w.window_start AND i.second < w.window_end)"
            )
        return " AND ".join(clauses), params

    def count(self, project: str, queue_id: str) -> int:
        return int(
            self._storage.scalar(
                f"SELECT uniqExact(inference_id) FROM {self._db}.queue_items WHERE project = {{project:String}} "
                "AND queue_id = {queue:String}",
                {"project": project, "queue": queue_id},
            )
            or 0
        )

    # ------------------------------------------------------------------ holding and reviewing

    def _claims(self, reviewer: str) -> Claims:
        return Claims(self._storage, owner=reviewer_owner(reviewer))

    def next_item(self, queue: Queue, reviewer: str) -> str | None:
        """The call this reviewer reviews next, now held by them (the one they hold already, if any)."""
        rows = self._storage.query(
            f"SELECT inference_id FROM {self._db}.queue_items FINAL WHERE project = {{project:String}} "
            "AND queue_id = {queue:String} AND inference_id NOT IN (SELECT inference_id FROM "
            f"{self._db}.queue_reviews FINAL WHERE project = {{project:String}} AND queue_id = {{queue:String}} "
            "AND undone = 0 AND (reviewer = {reviewer:String} OR skipped = 0) GROUP BY inference_id "
            "HAVING countIf(reviewer = {reviewer:String}) > 0 OR countIf(skipped = 0) >= {needed:UInt32}) "
            "ORDER BY added_at, inference_id LIMIT {limit:UInt32}",
            {
                "project": queue.project,
                "queue": queue.queue_id,
                "reviewer": reviewer,
                "needed": queue.reviews_per_item,
                "limit": _CANDIDATES,
            },
        ).result_rows
        candidates = [row[0] for row in rows]
        if not candidates:
            return None
        claims = self._claims(reviewer)
        prefixes = {f"{queue.queue_id}/{item}": item for item in candidates}
        holders = claims.holders(queue.project, "hold", list(prefixes))
        expired_before = datetime.now(UTC) - timedelta(seconds=queue.hold_seconds)
        held_by_me = [
            p for p in prefixes if (h := holders.get(p)) and h.owner == claims.owner and h.claimed_at > expired_before
        ]
        if held_by_me:
            return prefixes[held_by_me[0]]
        released = self._released(queue, [h.owner for h in holders.values()], candidates)
        for prefix, item in prefixes.items():
            holder = holders.get(prefix)
            if holder is not None and holder.claimed_at > expired_before and (item, holder.owner) not in released:
                continue  # someone else is on it
            key = generation(prefix, holder.generations if holder else 0)
            if claims.claim(queue.project, "hold", [key]) and self._open(queue, item, reviewer):
                return item
        return None

    def _open(self, queue: Queue, item: str, reviewer: str) -> bool:
        """Whether ``item`` still needs a review from ``reviewer``: read after winning its hold, since the
        candidates were read before (a review stored in between has released the previous holder's hold
        and may have completed the item)."""
        reviews = self._storage.query(
            f"SELECT countIf(reviewer = {{reviewer:String}}), countIf(skipped = 0) FROM {self._db}.queue_reviews "
            "FINAL WHERE project = {project:String} AND queue_id = {queue:String} AND inference_id = {item:String} "
            "AND undone = 0",
            {"project": queue.project, "queue": queue.queue_id, "item": item, "reviewer": reviewer},
        ).result_rows
        mine, done = reviews[0] if reviews else (0, 0)
        return not mine and done < queue.reviews_per_item

    def _released(self, queue: Queue, owners: Sequence[str], items: Sequence[str]) -> set[tuple[str, str]]:
        """(item, holder) pairs whose holder has reviewed or skipped the item (their hold ended there)."""
        reviewers = [owner.removeprefix("reviewer:") for owner in owners if owner.startswith("reviewer:")]
        if not reviewers:
            return set()
        rows = self._storage.query(
            f"SELECT inference_id, reviewer FROM {self._db}.queue_reviews FINAL WHERE project = {{project:String}} "
            "AND queue_id = {queue:String} AND undone = 0 AND inference_id IN {items:Array(String)} "
            "AND reviewer IN {reviewers:Array(String)}",
            {"project": queue.project, "queue": queue.queue_id, "items": list(items), "reviewers": reviewers},
        ).result_rows
        return {(item, reviewer_owner(reviewer)) for item, reviewer in rows}

    def holder(self, queue: Queue, inference_id: str) -> tuple[str, datetime] | None:
        """Who holds an item (the reviewer) and since when, whether or not the hold has expired."""
        found = Claims(self._storage).holders(queue.project, "hold", [f"{queue.queue_id}/{inference_id}"])
        hold = next(iter(found.values()), None)
        return (hold.owner.removeprefix("reviewer:"), hold.claimed_at) if hold else None

    def record(
        self,
        queue: Queue,
        inference_id: str,
        reviewer: str,
        *,
        skipped: bool = False,
        scores: Mapping[str, ScoreValue] | None = None,
        feedback_ids: Sequence[str] = (),
        undone: bool = False,
        at: datetime | None = None,
    ) -> None:
        self._storage.insert_rows(
            "queue_reviews",
            [
                "project",
                "queue_id",
                "inference_id",
                "reviewer",
                "skipped",
                "undone",
                "scores",
                "feedback_ids",
                "reviewed_at",
                "version",
            ],
            [
                [
                    queue.project,
                    queue.queue_id,
                    inference_id,
                    reviewer,
                    int(skipped),
                    int(undone),
                    orjson.dumps(dict(scores or {})).decode(),
                    list(feedback_ids),
                    at or datetime.now(UTC),
                    time.time_ns(),
                ]
            ],
        )

    def last_review(self, queue: Queue, reviewer: str) -> Review | None:
        rows = self._storage.rows(
            f"SELECT {_REVIEW_COLUMNS} FROM {self._db}.queue_reviews FINAL WHERE project = {{project:String}} "
            "AND queue_id = {queue:String} AND reviewer = {reviewer:String} AND undone = 0 "
            "ORDER BY reviewed_at DESC LIMIT 1",
            {"project": queue.project, "queue": queue.queue_id, "reviewer": reviewer},
        )
        return _review(rows[0]) if rows else None

    def reviews(self, queue: Queue, inference_id: str | None = None) -> list[Review]:
        """Reviews (not undone, not skipped) of the queue, or of one item, oldest first."""
        one = " AND inference_id = {item:String}" if inference_id else ""
        rows = self._storage.rows(
            f"SELECT {_REVIEW_COLUMNS} FROM {self._db}.queue_reviews FINAL WHERE project = {{project:String}} "
            f"AND queue_id = {{queue:String}} AND undone = 0 AND skipped = 0{one} ORDER BY reviewed_at, reviewer",
            {"project": queue.project, "queue": queue.queue_id, "item": inference_id or ""},
        )
        return [_review(row) for row in rows]

    def progress(self, queue: Queue) -> QueueProgress:
        params = {"project": queue.project, "queue": queue.queue_id, "needed": queue.reviews_per_item}
        done = self._storage.scalar(
            f"SELECT count() FROM (SELECT inference_id FROM {self._db}.queue_reviews FINAL "
            "WHERE project = {project:String} AND queue_id = {queue:String} AND undone = 0 AND skipped = 0 "
            "GROUP BY inference_id HAVING count() >= {needed:UInt32})",
            params,
        )
        per = self._storage.query(
            f"SELECT reviewer, countIf(skipped = 0), countIf(skipped = 1) FROM {self._db}.queue_reviews FINAL "
            "WHERE project = {project:String} AND queue_id = {queue:String} AND undone = 0 "
            "GROUP BY reviewer ORDER BY reviewer",
            params,
        ).result_rows
        since = datetime.now(UTC) - timedelta(seconds=queue.hold_seconds)
        held = self._storage.scalar(
            f"SELECT count() FROM (SELECT splitByChar('#', claim_key)[1] AS item, argMax(owner, claimed_at) AS who, "
            f"max(claimed_at) AS at FROM {self._db}.claims WHERE project = {{project:String}} AND kind = 'hold' "
            "AND startsWith(claim_key, {prefix:String}) GROUP BY item) AS h "
            f"WHERE at > {{since:DateTime64(3, 'UTC')}} AND (substring(item, {{cut:UInt32}}), "
            "replaceOne(who, 'reviewer:', '')) NOT IN "
            f"(SELECT inference_id, reviewer FROM {self._db}.queue_reviews FINAL WHERE project = {{project:String}} "
            "AND queue_id = {queue:String} AND undone = 0) "
            # a hold won on an item completed meanwhile (see ``_open``) holds nothing
            f"AND substring(item, {{cut:UInt32}}) NOT IN (SELECT inference_id FROM {self._db}.queue_reviews FINAL "
            "WHERE project = {project:String} AND queue_id = {queue:String} AND undone = 0 AND skipped = 0 "
            "GROUP BY inference_id HAVING count() >= {needed:UInt32})",
            {**params, "prefix": queue.queue_id + "/", "since": ch_time(since), "cut": len(queue.queue_id) + 2},
        )
        return QueueProgress(
            items=self.count(queue.project, queue.queue_id),
            done=int(done or 0),
            held=int(held or 0),
            per_reviewer={reviewer: (int(r), int(s)) for reviewer, r, s in per},
        )


def erase_calls(storage: Storage, project: str, inference_ids: Sequence[str]) -> int:
    """Delete review queue items and reviews of the erased calls; returns the rows removed. A queue's
    watermark that stands at an erased call keeps its arrival time and loses the call's id (a pass then
    reads the calls of that millisecond again, which adds nothing twice)."""
    if not inference_ids:
        return 0
    where = "project = {project:String} AND has({ids:Array(String)}, inference_id)"
    params = {"project": project, "ids": list(inference_ids)}
    expiry.blank_where(storage, "queue_watermarks", ["inference_id"], where, params)
    return sum(expiry.delete_where(storage, table, where, params) for table in ("queue_items", "queue_reviews"))
