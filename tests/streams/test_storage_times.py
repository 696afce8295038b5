"""``time_range``: the one rule every time filter is built with, checked against real chDB rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from streams.storage import Storage, time_range

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _select(storage: Storage, table: str, clauses: list[str], params: dict[str, Any]) -> list[int]:
    where = " AND ".join(clauses) or "1"
    return [int(row[0]) for row in storage.query(f"SELECT n FROM {table} WHERE {where} ORDER BY n", params).result_rows]


class TestTimeRange:
    """Moments in [since, until); spans (windows) that overlap it; open sides filter nothing."""

    def test_moments_since_inclusive_until_exclusive(self, storage: Storage) -> None:
        table = f"{storage.database}.moments"
        storage.command(f"CREATE TABLE {table} (n UInt8, timestamp DateTime64(3, 'UTC')) ENGINE = Memory")
        storage.insert_rows(table.split(".")[1], ["n", "timestamp"], [[i, T0 + timedelta(seconds=i)] for i in range(5)])
        params: dict[str, Any] = {}
        clauses = time_range(params, T0 + timedelta(seconds=1), T0 + timedelta(seconds=3))
        assert _select(storage, table, clauses, params) == [1, 2]
        params = {}
        assert _select(storage, table, time_range(params, None, T0 + timedelta(seconds=2)), params) == [0, 1]
        params = {}
        assert _select(storage, table, time_range(params, T0 + timedelta(seconds=4), None), params) == [4]
        assert time_range({}, None, None) == []

    def test_windows_overlapping_the_range(self, storage: Storage) -> None:
        table = f"{storage.database}.spans"
        storage.command(
            f"CREATE TABLE {table} (n UInt8, window_start DateTime64(3, 'UTC'), window_end DateTime64(3, 'UTC')) "
            "ENGINE = Memory"
        )
        rows = [[i, T0 + timedelta(seconds=10 * i), T0 + timedelta(seconds=10 * (i + 1))] for i in range(4)]
        storage.insert_rows(table.split(".")[1], ["n", "window_start", "window_end"], rows)
        params: dict[str, Any] = {}
        # [15 s, 25 s) overlaps the windows [10, 20) and [20, 30); [0, 10) ends where [10, …) begins
        clauses = time_range(
            params,
            T0 + timedelta(seconds=15),
            T0 + timedelta(seconds=25),
            column="window_start",
            end_column="window_end",
            names=("a", "b"),
        )
        assert set(params) == {"a", "b"}
        assert _select(storage, table, clauses, params) == [1, 2]
        params = {}
        clauses = time_range(
            params,
            T0 + timedelta(seconds=10),
            T0 + timedelta(seconds=20),
            column="window_start",
            end_column="window_end",
        )
        assert _select(storage, table, clauses, params) == [1]
