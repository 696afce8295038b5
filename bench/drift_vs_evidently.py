"""Benchmark: evidently 0.7 DataDriftPreset vs loopwatch ``detectors.dataset_drift`` on the same frames.

Default workload: 20 numeric features (normal, lognormal, gamma, uniform) x 100,000
rows in both reference and current; columns f00/f05/f10/f15 are mean-shifted by
0.05/0.10/0.15/0.20 reference std and f03/f10/f17 rescaled x1.4, so some changes sit
just below evidently's 0.1 Wasserstein threshold. Reference > 1000 rows, so both sides pick the normed
Wasserstein distance for every column.

Rows of the summary table:

* ``evidently``: ``Report([DataDriftPreset()], include_tests=True).run(current, reference)``
  (tests are needed to read evidently's per-column drift flags);
* ``detectors (raw frames)``: ``dataset_drift(reference_df, current_df)`` -- same inputs;
* ``detectors (profile, full)``: the reference pre-summarised once with
  ``ReferenceProfile`` at a sample cap >= rows (exact; how a worker holds a fixed
  reference: it is sorted once, at profile build time, which is not timed);
* ``detectors (profile, 20k)``: the default 20,000-point profile (bounded memory,
  approximate values).

Run from the repository root::

    PYTHONPATH=. python bench/drift_vs_evidently.py [--rows 100000] [--features 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import DatasetDriftResult, ProfileConfig, ReferenceProfile, dataset_drift


@dataclass(frozen=True)
class EvidentlyResult:
    """Per-column values/flags and dataset verdict parsed from evidently's snapshot."""

    values: dict[str, float]
    flags: dict[str, bool]
    methods: dict[str, str]
    share: float
    dataset_drifted: bool


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    name: str
    seconds: float
    max_diff: float | None
    flags_equal: int | None
    n_columns: int
    dataset_equal: bool | None


def make_frames(rows: int, features: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference and current frames; every 5th column mean-shifted, every 7th rescaled."""
    rng = np.random.default_rng(seed)
    reference: dict[str, np.ndarray] = {}
    current: dict[str, np.ndarray] = {}
    for j in range(features):
        name = f"f{j:02d}"
        family = j % 4
        if family == 0:
            ref, cur = rng.normal(0, 1, rows), rng.normal(0, 1, rows)
        elif family == 1:
            ref, cur = rng.lognormal(0, 0.6, rows), rng.lognormal(0, 0.6, rows)
        elif family == 2:
            ref, cur = rng.gamma(2.0, 2.0, rows), rng.gamma(2.0, 2.0, rows)
        else:
            ref, cur = rng.uniform(-3, 3, rows), rng.uniform(-3, 3, rows)
        scale = float(np.std(ref))
        if j % 5 == 0:
            cur = cur + (0.05 + 0.05 * (j // 5)) * scale  # 0.05 .. 0.25 std shifts
        if j % 7 == 3:
            cur = cur * 1.4
        reference[name], current[name] = ref, cur
    return pd.DataFrame(reference), pd.DataFrame(current)


def run_evidently(reference: pd.DataFrame, current: pd.DataFrame) -> EvidentlyResult:
    """Run DataDriftPreset and parse per-column values, flags and the dataset test."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()], include_tests=True).run(current, reference)
        data: dict[str, Any] = snapshot.dict()
    values: dict[str, float] = {}
    methods: dict[str, str] = {}
    share = float("nan")
    for metric in data["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            values[config["column"]] = float(metric["value"])
            methods[config["column"]] = config["method"]
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    flags: dict[str, bool] = {}
    dataset_drifted = False
    for test in data["tests"]:
        if test["id"] == "drift":
            flags[test["metric_config"]["params"]["column"]] = test["status"] == "FAIL"
        elif test["id"] == "lt":
            dataset_drifted = test["status"] == "FAIL"
    return EvidentlyResult(values, flags, methods, share, dataset_drifted)


def best_time(func: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """(best seconds, median seconds, last result) over ``repeats`` runs."""
    timings: list[float] = []
    result: Any = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        timings.append(time.perf_counter() - start)
    return min(timings), statistics.median(timings), result


def compare(name: str, seconds: float, ours: DatasetDriftResult, theirs: EvidentlyResult) -> Row:
    """Max |value difference| and number of equal flags versus evidently."""
    diffs = [abs(ours.columns[c].value - v) for c, v in theirs.values.items()]
    equal = sum(ours.columns[c].drifted == f for c, f in theirs.flags.items())
    return Row(name, seconds, max(diffs), equal, len(theirs.flags), ours.dataset_drifted == theirs.dataset_drifted)


def main() -> None:
    """Parse arguments, run both engines, print per-column and summary tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--evidently-repeats", type=int, default=2)
    parser.add_argument("--ours-repeats", type=int, default=7)
    args = parser.parse_args()

    reference, current = make_frames(args.rows, args.features, args.seed)
    print(f"workload: {args.features} numeric features x {args.rows:,} rows (reference and current)")

    dataset_drift(reference.iloc[:2000], current.iloc[:2000])  # import/JIT-free warm-up of our code paths
    ev_best, ev_median, theirs = best_time(lambda: run_evidently(reference, current), args.evidently_repeats)
    raw_best, raw_median, ours = best_time(lambda: dataset_drift(reference, current), args.ours_repeats)

    full_profile = ReferenceProfile.from_arrays(reference, config=ProfileConfig(sample_size=args.rows))
    small_profile = ReferenceProfile.from_arrays(reference)
    full_best, _, ours_full = best_time(lambda: dataset_drift(full_profile, current), args.ours_repeats)
    small_best, _, ours_small = best_time(lambda: dataset_drift(small_profile, current), args.ours_repeats)

    print()
    print(f"{'column':<8} {'method':<31} {'evidently':>12} {'detectors':>12} {'|diff|':>9}  drift(ev/ours)")
    for column, value in theirs.values.items():
        mine = ours.columns[column]
        print(
            f"{column:<8} {theirs.methods[column]:<31} {value:>12.8f} {mine.value:>12.8f} "
            f"{abs(mine.value - value):>9.1e}  {theirs.flags[column]!s:>5}/{mine.drifted!s:<5}"
        )
    print(
        f"dataset: evidently share={theirs.share:.3f} drift={theirs.dataset_drifted}; "
        f"detectors share={ours.share_drifted:.3f} drift={ours.dataset_drifted}"
    )

    rows = [
        Row("evidently DataDriftPreset", ev_best, None, None, len(theirs.flags), None),
        compare("detectors (raw frames)", raw_best, ours, theirs),
        compare("detectors (profile, full)", full_best, ours_full, theirs),
        compare("detectors (profile, 20k)", small_best, ours_small, theirs),
    ]
    print()
    header = ("engine", "seconds", "speed-up", "max|diff|", "flags equal", "dataset eq")
    print(f"{header[0]:<28} {header[1]:>9} {header[2]:>9} {header[3]:>10} {header[4]:>12} {header[5]:>11}")
    for row in rows:
        diff = "-" if row.max_diff is None else f"{row.max_diff:.1e}"
        flags = "-" if row.flags_equal is None else f"{row.flags_equal}/{row.n_columns}"
        dataset = "-" if row.dataset_equal is None else str(row.dataset_equal)
        speedup = ev_best / row.seconds
        print(f"{row.name:<28} {row.seconds:>9.3f} {speedup:>8.1f}x {diff:>10} {flags:>12} {dataset:>11}")
    print(
        f"(best of {args.evidently_repeats} evidently runs, median {ev_median:.3f}s; "
        f"best of {args.ours_repeats} detectors runs, raw-frame median {raw_median:.3f}s)"
    )


if __name__ == "__main__":
    main()
