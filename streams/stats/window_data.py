"""One window's raw events (read through ``streams.storage.inferences``) in the shapes the detectors take."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from detectors import text_descriptors
from detectors.kinds import ColumnKind
from schemas.stats import WindowKey
from streams.storage import Storage, inferences


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
    sample = inferences.window_sample(storage, key, limit)
    out = drift_columns(sample.features, sample.prompts, sample.responses)
    out.versions = sample.versions
    return out


def fetch_embeddings(storage: Storage, key: WindowKey, limit: int) -> np.ndarray:
    """At most ``limit`` stored embeddings of the window (the same deterministic event-id-hash sample as
    the drift columns), as a float32 matrix; rows whose dimension differs from the most common one are
    dropped. Memory is bounded by ``limit x 4096 x 4`` bytes (16 MB at 1000 rows)."""
    vectors = inferences.window_embeddings(storage, key, limit)
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
    pii: list[dict[str, int]] = field(default_factory=list)  # per event, what redaction found ({}: not scanned)

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
            pii=[self.pii[i] for i in picked] if self.pii else [],
        )


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def fetch_window_rows(storage: Storage, key: WindowKey, tag_keys: Sequence[str] = ()) -> WindowRows:
    """Every event of the window, exactly once, with the values of ``tag_keys`` (cost per tag value):
    one read for the latency and cost families."""
    keys = tuple(tag_keys)
    columns = inferences.window_columns(storage, key, keys)
    return WindowRows(
        _floats(columns.latencies),
        columns.statuses,
        columns.versions,
        _floats(columns.costs),
        _floats(columns.input_tokens),
        _floats(columns.output_tokens),
        keys,
        columns.tag_values,
        columns.pii,
    )
