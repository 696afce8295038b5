"""``GET /v1/reports/drift``: an Evidently HTML report of one window against the model's reference."""

from __future__ import annotations

import warnings
from datetime import datetime
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query, status
from fastapi.responses import HTMLResponse

from api.deps import ProjectDep, RuntimeDep
from api.queries.windows import sampled_columns, window_key
from api.report_page import safe_report
from api.time_range import check_moment
from detectors import CategoricalReference, NumericReference, ReferenceProfile

router = APIRouter(prefix="/v1/reports", tags=["reports"])

_MAX_CATEGORY_ROWS = 20_000


def reference_frame(profile: ReferenceProfile) -> pd.DataFrame:
    """The reference's kept sample as a frame (categorical counts expanded, scaled to a bounded size)."""
    columns: dict[str, np.ndarray] = {}
    for name, column in profile.columns.items():
        if isinstance(column, NumericReference):
            columns[name] = np.asarray(column.sample, dtype=float)
        elif isinstance(column, CategoricalReference):
            counts = np.asarray(column.counts.counts, dtype=float)
            scale = min(1.0, _MAX_CATEGORY_ROWS / max(counts.sum(), 1))
            repeats = np.maximum(np.round(counts * scale).astype(int), (counts > 0).astype(int))
            columns[name] = np.repeat(np.array([str(k) for k in column.counts.keys], dtype=object), repeats)
    length = max((len(values) for values in columns.values()), default=0)
    return pd.DataFrame({name: pd.Series(values).reindex(range(length)) for name, values in columns.items()})


@router.get(
    "/drift",
    response_class=HTMLResponse,
    summary="Evidently drift report: one window vs the reference",
    responses={
        200: {"content": {"text/html": {}}, "description": "the report page"},
        **{
            code: {
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}},
                "description": "error",
            }
            for code in (401, 404, 503)
        },
        422: {
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Unprocessable"}}},
            "description": "invalid query",
        },
    },
)
def drift_report(
    project: ProjectDep,
    runtime: RuntimeDep,
    model: Annotated[str, Query(min_length=1, max_length=200)],
    window_start: Annotated[datetime, Query(description="any time inside the window")],
) -> HTMLResponse:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    check_moment(["query", "window_start"], window_start)
    settings = runtime.settings
    key = window_key(project, model, window_start, settings.window_seconds)
    start, end = key.start, key.end
    reference = runtime.references.get(project, model)
    if reference is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{model!r} has no reference yet")
    current = sampled_columns(runtime.storage, key, settings.drift_sample_rows)
    if current.rows == 0:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no inferences of {model!r} in the window starting {start}")
    names = sorted(set(current.columns) & set(reference.profile.columns))
    if not names:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "the window and the reference share no columns to compare")
    current_frame = pd.DataFrame({name: current.columns[name] for name in names})
    reference_df = reference_frame(reference.profile)[names]
    with warnings.catch_warnings():  # Evidently's correlation widgets divide by zero on constant columns
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([DataDriftPreset()]).run(current_data=current_frame, reference_data=reference_df)
    # Model and feature names are user input: the page is repaired and served under a strict CSP.
    page = safe_report(
        snapshot.get_html_str(as_iframe=False), f"loopwatch drift: {model} {start.isoformat()} – {end.isoformat()}"
    )
    return HTMLResponse(page.html, headers=page.headers)
