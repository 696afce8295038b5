"""One window of one model: each column's drift test (method, value, threshold, flag) with the
reference and current distributions, the shift of the prompt/response descriptors, the family
verdicts, the quality statistics against the reference (people's thumbs, judges' scores and the
thumbs-up rate estimated from them, with their p-values), and the Evidently report of the same window
(served by the API's report code)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from api.queries.stats import stat_rows
from api.queries.windows import sampled_columns, window_examples, window_key
from api.routes.reports import drift_report
from api.time_range import check_moment
from api.ui import charts
from api.ui.web import UiDep, UiRoute, parse_moment
from detectors import CategoricalReference, NumericReference
from detectors.pii import field_of
from detectors.text_descriptors import YES_NO_DESCRIPTORS
from schemas.records import FEEDBACK_TEXT_FIELDS
from streams.delivery.wording import P_VALUE_TESTS, column_change, family_words
from streams.runtime import Runtime

router = APIRouter(prefix="/ui", route_class=UiRoute)
ModelPath = Annotated[str, Path(min_length=1, max_length=200)]
StartPath = Annotated[str, Path(min_length=1, max_length=64)]
DISTRIBUTIONS = 6
DESCRIPTOR_PREFIXES = ("prompt.", "response.")
# The window's quality statistics tested against the reference period, in the order the page lists them.
QUALITY_TESTED = ("thumbs_up_rate", "estimated_thumbs_up_rate", "score_mean", "mean_rating", "accuracy")
TEST_NAMES = {
    "two_proportion_z": "two-proportion z",
    "fisher_exact": "Fisher's exact",
    "mannwhitneyu": "Mann–Whitney U",
    "welch_t": "Welch's t",
}
EXAMPLE_COLUMNS = 3


def _privacy_order(row: dict[str, Any]) -> tuple[bool, bool, str]:
    """The calls' own fields first, then the feedback texts on them; per group, totals before kinds."""
    dimension = row["dimension"]
    return field_of(dimension) in FEEDBACK_TEXT_FIELDS, "." in dimension, dimension


def _start(text: str) -> datetime:
    moment = parse_moment("window", text)
    if moment is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no window given")
    check_moment(["path", "window"], moment)
    return moment


def _distribution(name: str, reference: Any, current: np.ndarray | None) -> dict[str, Any] | None:
    if current is None:
        return None
    if isinstance(reference, CategoricalReference) or current.dtype.kind in "OUS":
        ref_counts = (
            {str(k): float(c) for k, c in zip(reference.counts.keys, reference.counts.counts, strict=True)}
            if isinstance(reference, CategoricalReference)
            else {}
        )
        cur_counts = Counter(str(v) for v in current if v is not None)
        return charts.category_pair(ref_counts, {k: float(v) for k, v in cur_counts.items()}, column=name)
    sample = np.asarray(reference.sample, dtype=float) if isinstance(reference, NumericReference) else None
    return charts.histogram_pair(sample, np.asarray(current, dtype=float), column=name, yes_no=_yes_no(name))


def _yes_no(column: str) -> bool:
    """A text descriptor that is 1 for yes and 0 for no (``prompt.has_question``, ``response.refusal``)."""
    return column.startswith(DESCRIPTOR_PREFIXES) and column.split(".", 1)[1] in YES_NO_DESCRIPTORS


def window_data(runtime: Runtime, project: str, model: str, start: datetime, column: str | None) -> dict[str, Any]:
    storage, settings = runtime.storage, runtime.settings
    key = window_key(project, model, start, settings.window_seconds)
    start, end = key.start, key.end
    rows = [
        r
        for r in stat_rows(
            storage,
            project,
            "drift",
            model=model,
            model_version="",
            metric=None,
            dimension=None,
            since=start,
            until=end,
            limit=100_000,
        )
        if r["window_start"] == start
    ]
    columns = sorted(
        (r for r in rows if r["metric"] == "column_drift"),
        key=lambda r: (not r["flagged"], r["p_value"] if r["p_value"] is not None else 1.0, r["dimension"]),
    )
    families = [r for r in rows if r["metric"] == "family_drift"]
    for family in families:
        family["words"] = family_words(family["dimension"], family["details"], flagged=bool(family["flagged"]))
    evidence = {
        str(item["column"]): item
        for family in families
        for item in family["details"].get("evidence") or []
        if isinstance(item, dict) and "column" in item
    }
    for row in columns:
        row["evidence"] = evidence.get(row["dimension"])
        row["p_value_test"] = row["details"].get("method", "") in P_VALUE_TESTS  # its value is the p-value
    if evidence:  # the family rule decides, strongest effect first
        columns.sort(
            key=lambda r: (
                not (r["evidence"] or {}).get("drifted", False),
                -((r["evidence"] or {}).get("effect") or 0.0),
                r["dimension"],
            )
        )
    dataset = next((r for r in rows if r["metric"] == "dataset_drift"), None)
    privacy = [
        r
        for r in stat_rows(
            storage,
            project,
            "privacy",
            model=model,
            model_version="",
            metric="share_with_pii",
            dimension=None,
            since=start,
            until=end,
            limit=10_000,
        )
        if r["window_start"] == start
    ]
    quality = [
        r
        for r in stat_rows(
            storage,
            project,
            "quality",
            model=model,
            model_version="",
            metric=None,
            dimension=None,
            since=start,
            until=end,
            limit=10_000,
        )
        if r["window_start"] == start and r["metric"] in QUALITY_TESTED
    ]
    reference = runtime.references.get(project, model)
    current = sampled_columns(storage, key, settings.drift_sample_rows)
    profile = reference.profile.columns if reference is not None else {}
    shown = [column] if column else [r["dimension"] for r in columns[:DISTRIBUTIONS]]
    distributions = []
    for index, name in enumerate(shown):
        figure = _distribution(name, profile.get(name), current.columns.get(name))
        if figure is not None:
            distributions.append({"title": name, "id": f"chart-dist-{index}", "figure": figure})
    descriptors = []
    for name in sorted(current.columns):
        ref = profile.get(name)
        if name.startswith(DESCRIPTOR_PREFIXES) and isinstance(ref, NumericReference):
            values = np.asarray(current.columns[name], dtype=float)
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            change = (mean - ref.mean) / abs(ref.mean) if ref.mean else None
            flagged = next((r["flagged"] for r in columns if r["dimension"] == name), False)
            descriptors.append(
                {
                    "name": name,
                    "reference": ref.mean,
                    "current": mean,
                    "change": change,
                    "flagged": flagged,
                    "yes_no": _yes_no(name),
                }
            )
    # per drifted family, its EXAMPLE_COLUMNS most significant drifted columns (``columns`` is sorted by p-value)
    drifted = {
        f["dimension"]: [
            c["dimension"] for c in columns if c["dimension"] in set(f["details"].get("drifted_columns", []))
        ][:EXAMPLE_COLUMNS]
        for f in families
        if f["flagged"]
    }
    return {
        "examples": window_examples(storage, key, reference, drifted),
        "start": start,
        "end": end,
        "columns": columns,
        "families": families,
        "dataset": dataset,
        "test_names": TEST_NAMES,
        "quality": sorted(quality, key=lambda r: (QUALITY_TESTED.index(r["metric"]), r["dimension"])),
        "privacy": sorted(privacy, key=_privacy_order),
        "distributions": distributions,
        "descriptors": descriptors,
        "rows": current.rows,
        "reference": reference,
    }


@router.get("/models/{model:path}/windows/{start}/report")
async def window_report(model: ModelPath, start: StartPath, ui: UiDep) -> Response:
    """The API's Evidently page, with its own per-page CSP (it keeps it: ``secure`` only fills gaps)."""
    return await asyncio.to_thread(drift_report, ui.project, ui.runtime, model, _start(start))


@router.get("/models/{model:path}/windows/{start}")
async def window_page(
    model: ModelPath, start: StartPath, ui: UiDep, column: Annotated[str, Query(max_length=300)] = ""
) -> Response:
    data = await asyncio.to_thread(window_data, ui.runtime, ui.project, model, _start(start), column or None)
    if not data["columns"] and not data["families"] and not data["rows"] and not data["privacy"]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no statistics of {model!r} in the window at {start}")
    return ui.render("window.html", model=model, column=column, change=column_change, **data)
