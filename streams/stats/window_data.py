"""Reading one window's raw events back from ClickHouse, in the shapes the detectors take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from detectors import text_descriptors
from detectors.kinds import ColumnKind
from schemas.stats import WindowKey
from streams.storage import Storage, as_utc, ch_time


def window_params(key: WindowKey) -> dict[str, Any]:
    return {"project": key.project, "model": key.model, "start": ch_time(key.start), "end": ch_time(key.end)}


IN_WINDOW = (
    "project = {project:String} AND model = {model:String} "
    "AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}"
)


@dataclass
class DriftColumns:
    """Columns for drift: features (typed by their JSON values) and text descriptors."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)
    kinds: dict[str, ColumnKind] = field(default_factory=dict)
    rows: int = 0
    versions: list[str] = field(default_factory=list)  # model version of each row, when read with them

    def select(self, mask: np.ndarray) -> DriftColumns:
        """The rows where ``mask`` is true (e.g. one model version), same columns and kinds."""
        picked = np.flatnonzero(mask)
        return DriftColumns(
            {name: values[picked] for name, values in self.columns.items()},
            dict(self.kinds),
            int(picked.size),
            [self.versions[i] for i in picked] if self.versions else [],
        )


def drift_columns(features: list[str], prompts: list[str], responses: list[str]) -> DriftColumns:
    """Build drift columns from raw rows: ``feature.<name>``, ``prompt.<descriptor>``, ``response.<…>``."""
    out = DriftColumns(rows=len(features))
    parsed = [orjson.loads(raw) if raw else {} for raw in features]
    names = sorted({name for row in parsed for name in row})
    for name in names:
        values = [row.get(name) for row in parsed]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
            out.columns[f"feature.{name}"] = np.array([np.nan if v is None else float(v) for v in values])
            out.kinds[f"feature.{name}"] = "num"
        else:
            out.columns[f"feature.{name}"] = np.array([None if v is None else str(v) for v in values], dtype=object)
            out.kinds[f"feature.{name}"] = "cat"
    for prefix, texts in (("prompt", prompts), ("response", responses)):
        if not any(texts):
            continue
        for descriptor, scores in text_descriptors([t if t else None for t in texts]).items():
            out.columns[f"{prefix}.{descriptor}"] = scores
            out.kinds[f"{prefix}.{descriptor}"] = "num"
    return out


def fetch_drift_columns(storage: Storage, key: WindowKey, limit: int) -> DriftColumns:
    """A deterministic sample (by event id hash) of at most ``limit`` rows of the window."""
    rows = storage.query(
        f"SELECT features, prompt, response, model_version FROM {storage.database}.inferences FINAL WHERE {IN_WINDOW} "
        "ORDER BY cityHash64(event_id) LIMIT {limit:UInt32}",
        {**window_params(key), "limit": limit},
    ).result_rows
    out = drift_columns([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    out.versions = [r[3] for r in rows]
    return out


def fetch_embeddings(storage: Storage, key: WindowKey, limit: int) -> np.ndarray:
    """At most ``limit`` stored embeddings of the window (the same deterministic event-id-hash sample as
    the drift columns), as a float32 matrix; rows whose dimension differs from the most common one are
    dropped. Memory is bounded by ``limit x 4096 x 4`` bytes (16 MB at 1000 rows)."""
    rows = storage.query(
        f"SELECT embedding FROM {storage.database}.inferences FINAL WHERE {IN_WINDOW} AND notEmpty(embedding) "
        "ORDER BY cityHash64(event_id) LIMIT {limit:UInt32}",
        {**window_params(key), "limit": limit},
    ).result_rows
    vectors = [r[0] for r in rows]
    if not vectors:
        return np.empty((0, 0), dtype=np.float32)
    sizes = np.array([len(v) for v in vectors])
    common = int(np.bincount(sizes).argmax())
    return np.array([v for v in vectors if len(v) == common], dtype=np.float32)


@dataclass(frozen=True)
class WindowRows:
    """The per-event numbers of every event in a window, column by column (one read serves the
    latency and cost families, per model version too). Missing numbers are NaN."""

    latencies: np.ndarray
    statuses: list[str]
    versions: list[str]
    costs: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    # column by column, the value of each of ``tag_keys`` per event (None: the event has no such tag)
    tag_keys: tuple[str, ...] = ()
    tag_values: tuple[list[str | None], ...] = ()

    def __len__(self) -> int:
        return len(self.statuses)

    def select(self, mask: np.ndarray) -> WindowRows:
        """The events where ``mask`` is true (e.g. one model version); tags are left out."""
        picked = np.flatnonzero(mask)
        return WindowRows(
            self.latencies[picked],
            [self.statuses[i] for i in picked],
            [self.versions[i] for i in picked],
            self.costs[picked],
            self.input_tokens[picked],
            self.output_tokens[picked],
        )


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def fetch_window_rows(storage: Storage, key: WindowKey, tag_keys: Sequence[str] = ()) -> WindowRows:
    """Every event of the window, exactly once (``FINAL`` merges re-sent copies; with the table sorted
    by (project, model, timestamp) it only reads and merges the window's own granules), with the values
    of ``tag_keys`` (cost per tag value): one read for the latency and cost families."""
    keys = tuple(tag_keys)
    tags = "".join(
        f", if(mapContains(tags, {{tag{i}:String}}), tags[{{tag{i}:String}}], NULL)" for i in range(len(keys))
    )
    result = storage.query(
        "SELECT latency_ms, status, model_version, cost_usd, input_tokens, output_tokens"
        f"{tags} FROM {storage.database}.inferences FINAL WHERE {IN_WINDOW}",
        {**window_params(key), **{f"tag{i}": tag for i, tag in enumerate(keys)}},
    )
    columns = result.result_columns or [[] for _ in range(6 + len(keys))]
    latencies, statuses, versions, costs, inputs, outputs = columns[:6]
    return WindowRows(
        _floats(list(latencies)),
        list(statuses),
        list(versions),
        _floats(list(costs)),
        _floats(list(inputs)),
        _floats(list(outputs)),
        keys,
        tuple(list(values) for values in columns[6:]),
    )


def fetch_spend_history(storage: Storage, key: WindowKey, windows: int) -> list[tuple[datetime, float]]:
    """The model's total spend in the ``windows`` windows before ``key``, oldest first (model-wide
    rows only: per-version rows would mix into the spend-anomaly baseline)."""
    rows = storage.query(
        f"SELECT window_start, value FROM {storage.database}.window_stats FINAL "
        "WHERE project = {project:String} AND model = {model:String} AND family = 'cost' "
        "AND metric = 'cost_usd' AND dimension = '' AND model_version = '' "
        "AND window_start < {start:DateTime64(3, 'UTC')} ORDER BY window_start DESC LIMIT {n:UInt32}",
        {**window_params(key), "n": windows},
    ).result_rows
    return [(as_utc(start), float(value)) for start, value in reversed(rows)]
