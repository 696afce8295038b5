"""Fixtures for monitor tests: settings that allow loopback receivers, a Monitoring on real chDB, rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from loopwatch.demo.receiver import WebhookReceiver
from schemas.settings import Settings
from schemas.stats import StatRow
from streams.monitors import Monitoring
from streams.storage import Storage
from tests.conftest import make_settings

SECRET = "whsec-0123456789abcdef"  # noqa: S105 - a test signing secret
T0 = datetime(2025, 3, 4, 10, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(
        data_dir,
        allow_private_webhooks=True,
        delivery_backoff_seconds=0.01,
        delivery_max_attempts=4,
        delivery_timeout_seconds=2.0,
        public_url="https://loopwatch.example.com",
    )


@pytest.fixture
def monitoring(storage: Storage, settings: Settings) -> Monitoring:
    return Monitoring(storage, settings, sweep_seconds=None)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


def window(n: int) -> tuple[datetime, datetime]:
    start = T0 + n * WINDOW
    return start, start + WINDOW


def row(
    n: int, family: str, metric: str, value: float, *, project: str = "shop", model: str = "m1", **fields: Any
) -> StatRow:
    start, end = window(n)
    fields.setdefault("sample_size", 500)
    return StatRow(project, model, start, end, family, metric, value, **fields)  # type: ignore[arg-type]


def drift_rows(n: int, *, drifted: bool = True, project: str = "shop", model: str = "m1") -> list[StatRow]:
    """A window's drift rows: two p-value columns, two distance columns, the dataset and features verdicts."""
    columns = [
        ("prompt.chars", 0.30 if drifted else 0.01, None, 0.1, "wasserstein"),
        ("feature.age", 0.001 if drifted else 0.6, 0.001 if drifted else 0.6, 0.05, "ks"),
        ("feature.country", 1e-9 if drifted else 0.9, 1e-9 if drifted else 0.9, 0.05, "chisquare"),
        ("response.words", 0.12 if drifted else 0.02, None, 0.1, "jensenshannon"),
        ("feature.income", 0.4, 0.4, 0.05, "ks"),  # never drifted
    ]
    rows = [
        row(
            n,
            "drift",
            "column_drift",
            value,
            project=project,
            model=model,
            dimension=name,
            p_value=p,
            threshold=threshold,
            flagged=(p is not None and p < threshold) or (p is None and value >= threshold),
            details={"method": method},
        )
        for name, value, p, threshold, method in columns
    ]
    share = sum(r.flagged for r in rows) / len(rows)
    family = row(
        n,
        "drift",
        "family_drift",
        0.5 if drifted else 0.0,
        project=project,
        model=model,
        dimension="features",
        p_value=1e-8 if drifted else 0.5,
        threshold=0.0033,
        flagged=drifted,
        details={"drifted_columns": ["feature.age", "feature.country"] if drifted else []},
    )
    rows.append(
        row(
            n,
            "drift",
            "dataset_drift",
            share,
            project=project,
            model=model,
            threshold=0.5,
            flagged=share >= 0.5,
            details={"drifted_columns": [r.dimension for r in rows if r.flagged], "columns": len(rows)},
        )
    )
    rows.insert(-1, family)  # the dataset verdict stays last
    return rows


def webhook(url: str, secret: str = SECRET) -> dict[str, Any]:
    return {"type": "webhook", "url": url, "secret": secret}
