"""``streams.storage.inferences``: the calls listing's query plans give the same pages as the plain answer,
over a real chDB store (no API): the feedback filter built from either side, and migration 0012's skip
indexes on an upgraded store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.settings import Settings
from streams.storage import Storage
from streams.storage.inferences import CallFilter, _read, _Stored, call_page

START = datetime(2026, 11, 1, tzinfo=UTC)
CALLS = 300  # one call a minute for five hours, two models
THUMBS = {i for i in range(CALLS) if i % 2 == 0}  # 150 rows: more than the calls of a one-hour span
CORRECTIONS = {7, 150, 293}  # a rare kind: fewer rows than the calls of any span


def _call(i: int) -> dict[str, object]:
    return {
        "project": "p",
        "event_id": f"c{i:03d}",
        "model": "m-a" if i % 2 else "m-b",
        "timestamp": (START + timedelta(minutes=i)).isoformat(),
        "latency_ms": float(100 + (i * 37) % 500),
        "status": "ok",
        "prompt": f"question {i}",
        "response": f"answer {i}",
    }


def _feedback() -> bytes:
    rows = [
        {"project": "p", "feedback_id": f"t{i}", "inference_id": f"c{i:03d}", "kind": "thumbs", "value": 1.0}
        for i in sorted(THUMBS)
    ] + [
        {"project": "p", "feedback_id": f"k{i}", "inference_id": f"c{i:03d}", "kind": "correction", "text": "x"}
        for i in sorted(CORRECTIONS)
    ]
    rows.append({"project": "other", "feedback_id": "o1", "inference_id": "c008", "kind": "correction"})
    return orjson.dumps([{**row, "timestamp": (START + timedelta(hours=6)).isoformat()} for row in rows])


@pytest.fixture
def storage(settings: Settings) -> Iterator[Storage]:
    storage = Storage(settings)
    storage.migrate()
    storage.insert_json("inferences", orjson.dumps([_call(i) for i in range(CALLS)]))
    storage.insert_json("feedback", _feedback())
    try:
        yield storage
    finally:
        storage.close()


def _newest(ids: set[int]) -> list[str]:
    return [f"c{i:03d}" for i in sorted(ids, reverse=True)]


FILTERS = [
    (CallFilter("p", feedback_kinds=("correction",)), CORRECTIONS),
    (CallFilter("p", has_feedback=True), THUMBS | CORRECTIONS),
    (CallFilter("p", has_feedback=False), set(range(CALLS)) - THUMBS - CORRECTIONS),
    (CallFilter("p", has_feedback=False, feedback_kinds=("thumbs",)), set(range(CALLS)) - THUMBS),
    (CallFilter("p", model="m-a", feedback_kinds=("correction", "thumbs")), {7, 293}),
]


class TestFeedbackFilterPlans:
    """A feedback filter looks up the feedback of a span's calls, or all feedback of its kinds: same calls."""

    @pytest.mark.parametrize(("flt", "expected"), FILTERS)
    @pytest.mark.parametrize("narrow", [True, False], ids=["span-calls-first", "feedback-first"])
    def test_both_plans_find_the_same_calls(
        self, storage: Storage, flt: CallFilter, expected: set[int], narrow: bool
    ) -> None:
        found, _ = _read(storage, flt, "newest", (None, None), CALLS + 1, None, narrow_feedback=narrow)
        assert [call.event_id for call in found] == _newest(expected)

    @pytest.mark.parametrize(("flt", "expected"), FILTERS)
    def test_pages_mixing_both_plans(self, storage: Storage, flt: CallFilter, expected: set[int]) -> None:
        """Pages of 7 read spans of one hour and more: small spans look up their calls' feedback, the
        larger ones (more calls than the project has corrections) all corrections."""
        ids: list[str] = []
        cursor = None
        while True:
            page = call_page(storage, flt, limit=7, cursor=cursor)
            ids += [call.event_id for call in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert ids == _newest(expected)


class TestStoredShare:
    """The share of stored rows a span holds, which picks the feedback plan."""

    stored = _Stored(START, START + timedelta(hours=10), 1000)

    @pytest.mark.parametrize(
        ("low", "high", "rows"),
        [
            (None, None, 1000),
            (START + timedelta(hours=9), None, 100),
            (START - timedelta(days=1), START + timedelta(hours=1), 100),
            (START + timedelta(hours=11), None, 0),
        ],
    )
    def test_share(self, low: datetime | None, high: datetime | None, rows: int) -> None:
        assert self.stored.share(low, high) == rows
