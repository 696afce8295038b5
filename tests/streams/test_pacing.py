"""Ingest first: the closer pauses between windows while events arrive, and runs flat out otherwise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from schemas.settings import Settings
from streams.pipeline import Pipeline
from streams.stats.pacing import BUSY_SECONDS, Pacer
from streams.storage import Storage

WINDOW = 60


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def test_pause_is_the_rest_of_the_share_while_ingest_is_active() -> None:
    clock = Clock()
    pacer = Pacer(0.25, clock=clock, sleep=clock.sleep)
    assert pacer.pause(0.1) == 0.0  # no ingest seen yet
    pacer.ingest_seen()
    clock.now += BUSY_SECONDS / 2
    assert pacer.pause(0.1) == pytest.approx(0.3)  # 0.1 s computing is a quarter of 0.4 s
    clock.now += BUSY_SECONDS
    assert pacer.pause(0.1) == 0.0  # ingest went quiet: full speed
    assert clock.slept == [pytest.approx(0.3)]


def test_share_of_one_never_pauses_and_nonsense_is_refused() -> None:
    clock = Clock()
    pacer = Pacer(1.0, clock=clock, sleep=clock.sleep)
    pacer.ingest_seen()
    assert pacer.pause(5.0) == 0.0 and clock.slept == []
    with pytest.raises(ValueError, match="share"):
        Pacer(0)


def _events(windows: int, *, backlog: bool) -> bytes:
    """``windows`` consecutive windows: an hour old (a backfill) or the last ones up to now (on time)."""
    now = datetime.now(UTC).replace(microsecond=0)
    current = now - timedelta(seconds=now.timestamp() % WINDOW)
    start = current - timedelta(hours=1) if backlog else current - timedelta(seconds=(windows - 1) * WINDOW)
    return orjson.dumps(
        [
            {
                "event_id": f"bf-{w}-{i}",
                "project": "p",
                "model": "chat",
                "latency_ms": 100.0 + i,
                "timestamp": (start + timedelta(seconds=w * WINDOW + i)).isoformat(),
            }
            for w in range(windows)
            for i in range(5)
        ]
    )


@pytest.mark.parametrize(
    ("case", "backlog", "ingest_active", "pauses"),
    [
        ("backlog-while-ingest-active", True, True, 3),  # after each window but the last
        ("backlog-ingest-quiet", True, False, 0),
        ("on-time-while-ingest-active", False, True, 0),  # steady traffic never slows the usual closes
    ],
)
def test_closer_pauses_between_backlog_windows_only_while_events_arrive(
    storage: Storage, settings: Settings, case: str, backlog: bool, ingest_active: bool, pauses: int
) -> None:
    windows = 4 if backlog else 2
    pipeline = Pipeline(storage, settings.model_copy(update={"window_seconds": WINDOW, "allowed_lateness_seconds": 0}))
    assert pipeline.stats is not None
    clock = Clock()
    pipeline.stats.pacer = Pacer(0.5, clock=clock, sleep=clock.sleep)
    pipeline.accept_raw("inference", _events(windows, backlog=backlog))  # observed: ingest seen at clock.now
    pipeline.flush()
    if not ingest_active:
        clock.now += BUSY_SECONDS + 1
    pipeline.close_windows(force_all=True)
    closed = storage.scalar(
        f"SELECT uniqExact(window_start) FROM {storage.database}.window_stats "
        "WHERE family = 'latency' AND metric = 'count'"
    )
    assert closed == windows  # the windows are closed either way
    assert len(clock.slept) == pauses, case
    assert all(pause > 0 for pause in clock.slept)  # as long as the window took (share 0.5)
