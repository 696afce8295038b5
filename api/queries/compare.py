"""Two model versions' events and feedback over a time range for ``GET /v1/models/{m}/compare``, read
through ``streams.storage.inferences`` and ``streams.storage.feedback``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np

from detectors import is_error_status
from streams.stats import drift_columns
from streams.stats.compare import VersionData
from streams.storage import Storage
from streams.storage.feedback import newest_values
from streams.storage.inferences import version_sample


def _floats(values: list[Any]) -> np.ndarray:
    return np.array([np.nan if value is None else value for value in values], dtype=np.float64)


def fetch_version(
    storage: Storage, project: str, model: str, version: str, since: datetime, until: datetime, limit: int
) -> VersionData | None:
    """A deterministic sample (event-id hash) of at most ``limit`` events of the version in the range,
    and the newest feedback of each sampled event; ``None`` when the version has no event there."""
    sample = version_sample(storage, project, model, version, since, until, limit)
    if sample is None:
        return None
    feedback = newest_values(storage, project, sample.event_ids, ("thumbs", "rating"))
    return VersionData(
        events=len(sample.event_ids),
        latencies=_floats(list(sample.latencies)),
        errors=sum(is_error_status(status) for status in sample.statuses),
        costs=_floats(list(sample.costs)),
        input_tokens=_floats(list(sample.input_tokens)),
        output_tokens=_floats(list(sample.output_tokens)),
        columns=drift_columns(sample.features, sample.prompts, sample.responses),
        thumbs=[float(v) for kind, v in feedback if kind == "thumbs" and v is not None],
        ratings=[float(v) for kind, v in feedback if kind == "rating" and v is not None],
    )
