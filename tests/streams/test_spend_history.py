"""The spend-anomaly baseline: each window's spend against the model's previous windows, carried in
memory between consecutive windows and read back from ``window_stats`` by a fresh engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from schemas.settings import Settings
from streams.pipeline import Pipeline
from streams.storage import Storage

T0 = datetime(2026, 3, 1, tzinfo=UTC)
WINDOW = 60


def _window(pipeline: Pipeline, window: int, cost: float) -> None:
    events = [
        {
            "project": "spend",
            "model": "m",
            "event_id": f"w{window}-{i}",
            "cost_usd": cost / 20,
            "timestamp": (T0 + timedelta(seconds=window * WINDOW + i)).isoformat(),
        }
        for i in range(20)
    ]
    pipeline.accept_raw("inference", orjson.dumps(events))


def _anomaly_rows(storage: Storage) -> dict[int, tuple[float, bool, int]]:
    rows = storage.query(
        f"SELECT window_start, value, flagged, sample_size FROM {storage.database}.window_stats FINAL "
        "WHERE family = 'cost' AND metric = 'spend_anomaly' ORDER BY window_start"
    ).result_rows
    return {int((start.replace(tzinfo=UTC) - T0).total_seconds()) // WINDOW: (v, bool(f), n) for start, v, f, n in rows}


def test_spike_flagged_against_history_kept_across_engines(storage: Storage, settings: Settings) -> None:
    settings = settings.model_copy(update={"window_seconds": WINDOW, "allowed_lateness_seconds": 0})
    pipeline = Pipeline(storage, settings)
    for window, cost in enumerate([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 10.0]):
        _window(pipeline, window, cost)
    pipeline.flush()
    pipeline.close_windows(force_all=True)
    rows = _anomaly_rows(storage)
    assert sorted(rows) == [3, 4, 5, 6]  # three windows of history at least
    assert [rows[w][2] for w in (3, 4, 5, 6)] == [3, 4, 5, 6]  # the baseline grows window by window
    assert [rows[w][1] for w in (3, 4, 5, 6)] == [False, False, False, True]

    restarted = Pipeline(storage, settings)  # no memory: the baseline comes from window_stats
    _window(restarted, 8, 1.0)  # after a gap (window 7 has no traffic)
    restarted.flush()
    restarted.close_windows(force_all=True)
    value, flagged, history = _anomaly_rows(storage)[8]
    assert history == 7
    assert not flagged
    assert abs(value) < 3
