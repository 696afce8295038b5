"""Helpers shared by the detectors tests: running evidently and reading its per-column results."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest


@dataclass(frozen=True)
class EvidentlyColumn:
    """One column of evidently's DataDriftPreset output."""

    value: float
    method: str
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyDrift:
    """Per-column results plus the dataset counters of one evidently run."""

    columns: dict[str, EvidentlyColumn]
    count: float
    share: float
    dataset_drifted: bool


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame, **preset_kwargs: Any) -> EvidentlyDrift:
    """``Report([DataDriftPreset(...)], include_tests=True).run(current, reference)`` -> parsed result.

    Values come from the ``ValueDrift`` metrics, flags from the per-column ``drift``
    tests (FAIL = drift) and the dataset verdict from the ``lt(drift_share)`` test.
    """
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(**preset_kwargs)], include_tests=True).run(current, reference)
        data = snapshot.dict()
    values: dict[str, tuple[float, str, float]] = {}
    count = share = float("nan")
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            values[config["column"]] = (float(metric["value"]), config["method"], float(config["threshold"]))
        elif config["type"].endswith("DriftedColumnsCount"):
            count, share = float(metric["value"]["count"]), float(metric["value"]["share"])
    flags: dict[str, bool] = {}
    dataset_drifted = False
    for test in data["tests"]:
        if test["id"] == "drift":
            flags[test["metric_config"]["params"]["column"]] = test["status"] == "FAIL"
        elif test["id"] == "lt":
            dataset_drifted = test["status"] == "FAIL"
    columns = {
        name: EvidentlyColumn(value=v, method=m, threshold=t, drifted=flags[name]) for name, (v, m, t) in values.items()
    }
    return EvidentlyDrift(columns=columns, count=count, share=share, dataset_drifted=dataset_drifted)


@pytest.fixture(scope="session")
def evidently_runner():
    """The :func:`run_evidently` helper, skipping the test if evidently is unavailable."""
    pytest.importorskip("evidently")
    return run_evidently
