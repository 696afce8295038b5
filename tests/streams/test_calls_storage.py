"""``streams.storage.inferences``: the calls listing's query plans give the same pages as the plain answer,
over a real chDB store (no API): the feedback filter built from either side, migration 0012's skip
indexes on an upgraded store, and the text search's words index (0021) against a scan in Python."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from schemas.settings import Settings
from streams.storage import Storage
from streams.storage.inferences import CallFilter, CallSort, _read, _Stored, call_page
from tests.conftest import make_settings
from tests.waiting import wait_until

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


# Migration 0012: 50,000 calls, one a second (seven granules of 8,192), with a latency incident (calls
# 20,000-20,100 slow), a burst of timeouts (30,000-30,050) and a price spike (40,000-40,030).
BIG = 50_000
SLOW = range(20_000, 20_101)
TIMEOUTS = range(30_000, 30_051)
PRICEY = range(40_000, 40_031)
_BIG_CALLS = f"""
INSERT INTO {{db}}.inferences (project, event_id, model, timestamp, latency_ms, cost_usd, status, error_type)
SELECT 'p', concat('c', leftPad(toString(number), 5, '0')), 'm',
       toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + number,
       if(number BETWEEN {SLOW.start} AND {SLOW.stop - 1}, 5000 + number, 100 + number % 400),
       if(number BETWEEN {PRICEY.start} AND {PRICEY.stop - 1}, 1 + number / 1e6, (number % 7) / 1000),
       if(number BETWEEN {TIMEOUTS.start} AND {TIMEOUTS.stop - 1}, 'error', 'ok'),
       if(number BETWEEN {TIMEOUTS.start} AND {TIMEOUTS.stop - 1}, 'timeout', '')
FROM numbers({BIG})
"""
INDEXES = {"idx_latency", "idx_cost", "idx_status", "idx_error_type"}


def _selected_marks(storage: Storage) -> int:
    """Granules chosen for reading by every query of this process so far (its counter of ProfileEvents)."""
    return int(storage.scalar("SELECT sum(value) FROM system.events WHERE event = 'SelectedMarks'") or 0)


def _indexed(storage: Storage) -> bool:
    """The migration's indexes exist and their background builds are done."""
    db = storage.database
    names = {
        row[0]
        for row in storage.query(
            "SELECT name FROM system.data_skipping_indices WHERE database = {db:String} AND table = 'inferences'",
            {"db": db},
        ).result_rows
    }
    pending = storage.scalar(
        "SELECT count() FROM system.mutations WHERE database = {db:String} AND NOT is_done", {"db": db}
    )
    return INDEXES <= names and not int(pending)


class TestCallsIndexesMigration:
    """0012 adds skip indexes to a store of the previous schema; the filters they serve skip granules and
    list the same calls."""

    @pytest.fixture
    def upgraded(self, settings: Settings) -> Iterator[Storage]:
        storage = Storage(settings)
        try:
            assert storage.migrate(up_to=11) == list(range(1, 12))
            storage.command(_BIG_CALLS.replace("{db}", storage.database))
            storage.command(f"OPTIMIZE TABLE {storage.database}.inferences FINAL")
            assert storage.migrate(up_to=12) == [12]
            storage.migrate()  # and the later ones, as an upgrade applies them all
            wait_until(lambda: _indexed(storage), "the indexes of migration 0012 built")
            yield storage
        finally:
            storage.close()

    @pytest.mark.parametrize(
        ("flt", "sort", "expected"),
        [
            (CallFilter("p", min_latency_ms=1000), "latency", sorted(SLOW, reverse=True)),
            (CallFilter("p", min_cost_usd=0.5), "cost", sorted(PRICEY, reverse=True)),
            (
                CallFilter("p", error_type="timeout"),
                "latency",
                sorted(TIMEOUTS, key=lambda n: (100 + n % 400, n))[::-1],
            ),
            (CallFilter("p", status="error", max_latency_ms=200), "cost", None),
        ],
        ids=["latency range", "cost range", "error_type", "status"],
    )
    def test_filters_skip_granules_and_list_the_same_calls(
        self, upgraded: Storage, flt: CallFilter, sort: CallSort, expected: list[int] | None
    ) -> None:
        if expected is None:  # errors with latency <= 200: cost (n % 7) descending, then newest
            matching = [n for n in TIMEOUTS if 100 + n % 400 <= 200]
            expected = sorted(matching, key=lambda n: (n % 7, n), reverse=True)
        before = _selected_marks(upgraded)
        page = call_page(upgraded, flt, sort=sort, limit=200)
        read = _selected_marks(upgraded) - before
        assert [call.event_id for call in page.items] == [f"c{n:05d}" for n in expected]
        assert 1 <= read <= 2, (
            f"{read} granules read (6 without the indexes)"
        )  # the matches lie in one granule (two at most)


# Migration 0021: the words index of the text search. Planted calls (text, where: prompt or response),
# one a minute, between 50,000 filler calls (one a second, seven granules) numbered in their prompts.
PLANTED = [
    ("Where is order 123456: it is late", "prompt"),
    ("ORDER 123456: shipped", "prompt"),
    ("your Order 123456: ships today", "response"),
    ("order 1234567: another one", "prompt"),
    ("reorder 123456: again", "prompt"),
    ("order", "prompt"),  # its response starts "123456:" below: no call matches across the two texts
    ("Die Straße ist lang", "prompt"),
    ("DIE STRASSE IST LANG", "prompt"),
    ("STRAẞE 5", "response"),
    ("ÉCOLE normale", "prompt"),
    ("une école normale", "response"),
    ("Ecole normale", "prompt"),
    ("a_b%c literal", "prompt"),
    ("axbyc literal", "prompt"),
    ("50% off", "response"),
    ("500 off", "response"),
    ("tab\tA1\tend", "prompt"),
    ("(ID-77) done", "prompt"),
    ("id-77 done", "response"),
    ("ID 77 done", "prompt"),
    # letters outside ASCII that fold to ASCII ones elsewhere (Kelvin sign, long s, dotted capital I):
    # ILIKE matches none of them with an ASCII letter, so neither may the words index
    ("the \u212aEY 42 here", "prompt"),
    ("\u017fign 42 here", "response"),
    ("\u0130D 42 here", "prompt"),
]
SEARCHES = [
    "order 123456:",
    "Order 123456",
    "123456:",
    "123456",
    " 1234567: ",
    "straße",
    "ÉCOLE",
    "école normale",
    "a_b%c",
    "50%",
    "(id-77)",
    "id-77 ",
    "\ta1\t",
    " IST ",
    "ﬁ",  # a needle no call holds
]
FILLER = 50_000
_FILLER_CALLS = f"""
INSERT INTO {{db}}.inferences (project, event_id, model, timestamp, status, prompt, response)
SELECT 'p', concat('f', leftPad(toString(number), 5, '0')), 'm', toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + number,
       'ok', concat('Customer asks about order ', toString(number), ': where is my parcel?'),
       'Your order ships within two business days.'
FROM numbers({FILLER})
"""


def _planted() -> list[dict[str, object]]:
    calls = []
    for i, (text, where) in enumerate(PLANTED):
        prompt, response = (text, "Thanks.") if where == "prompt" else ("Hello?", text)
        if text == "order":
            response = "123456: is it late?"
        moment = START + timedelta(minutes=7 * i + 3)
        calls.append(
            {
                "project": "p",
                "event_id": f"w{i:02d}",
                "model": "m",
                "timestamp": moment.isoformat(),
                "status": "ok",
                "prompt": prompt,
                "response": response,
            }
        )
    return calls


def _scan(search: str) -> list[str]:
    """The planted and filler calls whose prompt or response holds ``search`` in any case, newest first:
    the text search computed in Python, call by call."""
    needle = search.lower()
    found = []
    for call in _planted():
        if needle in str(call["prompt"]).lower() or needle in str(call["response"]).lower():
            found.append((datetime.fromisoformat(str(call["timestamp"])), str(call["event_id"])))
    for n in range(FILLER):
        prompt = f"Customer asks about order {n}: where is my parcel?"
        if needle in prompt.lower() or needle in "your order ships within two business days.":
            found.append((START + timedelta(seconds=n), f"f{n:05d}"))
    return [event_id for _, event_id in sorted(found, reverse=True)]


def _all_pages(storage: Storage, flt: CallFilter, limit: int) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = call_page(storage, flt, limit=limit, cursor=cursor)
        ids += [call.event_id for call in page.items]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def _words_indexed(storage: Storage) -> bool:
    db = storage.database
    names = {
        row[0]
        for row in storage.query(
            "SELECT name FROM system.data_skipping_indices WHERE database = {db:String} AND table = 'inferences'",
            {"db": db},
        ).result_rows
    }
    pending = storage.scalar(
        "SELECT count() FROM system.mutations WHERE database = {db:String} AND NOT is_done", {"db": db}
    )
    return "idx_words" in names and not int(pending)


class TestWordsIndexMigration:
    """0021 adds the words index to a store of the previous schema: a search with a whole word reads only
    the granules that may hold it, and every search lists the calls a plain scan finds, page by page."""

    @pytest.fixture(scope="class")
    def upgraded(self, data_dir: Path) -> Iterator[Storage]:
        storage = Storage(make_settings(data_dir))  # the session's chDB engine (one per process), its own database
        try:
            assert storage.migrate(up_to=20)[-1] < 21
            storage.command(_FILLER_CALLS.replace("{db}", storage.database))
            storage.insert_json("inferences", orjson.dumps(_planted()))
            storage.command(f"OPTIMIZE TABLE {storage.database}.inferences FINAL")
            assert storage.migrate(up_to=21) == [21]
            storage.migrate()  # the later ones
            wait_until(lambda: _words_indexed(storage), "the words index of migration 0021 built")
            yield storage
        finally:
            storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
            storage.close()

    @pytest.mark.parametrize("search", SEARCHES)
    def test_pages_list_what_a_plain_scan_finds(self, upgraded: Storage, search: str) -> None:
        expected = _scan(search)
        assert _all_pages(upgraded, CallFilter("p", text=search), limit=max(3, len(expected) // 3)) == expected

    @pytest.mark.parametrize(
        ("search", "found"), [(" key 42 ", 0), ("sign 42 ", 0), ("id 42 ", 0), (" 42 here", 3), ("\u212aey 42 ", 1)]
    )
    def test_letters_folding_to_ascii_ones_match_as_a_plain_ilike_finds(
        self, upgraded: Storage, search: str, found: int
    ) -> None:
        """What ``ILIKE`` alone finds, with no index used (Python's ``lower`` folds these letters otherwise)."""
        plain = upgraded.query(
            f"SELECT event_id FROM {upgraded.database}.inferences WHERE project = 'p' AND (prompt ILIKE {{t:String}} "
            "OR response ILIKE {t:String}) ORDER BY timestamp DESC, event_id DESC SETTINGS use_skip_indexes = 0",
            {"t": f"%{search}%"},
        ).result_rows
        assert len(plain) == found
        assert _all_pages(upgraded, CallFilter("p", text=search), limit=2) == [row[0] for row in plain]

    @pytest.mark.parametrize(
        ("search", "expected"),
        [("order 31234:", ["f31234"]), ("ORDER 123456: ", ["w04", "w02", "w01", "w00"]), ("(ID-77)", ["w17"])],
    )
    def test_a_whole_word_reads_only_the_granules_that_may_hold_it(
        self, upgraded: Storage, search: str, expected: list[str]
    ) -> None:
        assert _scan(search) == expected
        before = _selected_marks(upgraded)
        page = call_page(upgraded, CallFilter("p", text=search), limit=50)
        read = _selected_marks(upgraded) - before
        assert [call.event_id for call in page.items] == expected
        assert 1 <= read <= 2, f"{read} granules read (7 without the index)"
