"""One model over a chosen range: latency and errors, cost and tokens per tag, drift per family and
the most drifted columns, quality with 95 % bands, alert markers, and the split by model version.

Series are ``window_stats`` rows read and re-bucketed exactly as ``GET /v1/stats?interval=`` does
(``api.queries.stats``)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response

from api.queries.dashboard import (
    WindowSpan,
    model_series,
    model_window_range,
    top_drifted_columns,
    version_series,
)
from api.queries.stats import rebucket
from api.time_range import storable_range
from api.ui import charts
from api.ui.web import UiDep, UiRoute, duration, parse_interval, parse_moment
from streams.monitors import Monitoring
from streams.monitors.defaults import monitors_for
from streams.runtime import Runtime
from streams.storage import alerts as alert_rows
from streams.storage.inferences import error_types

router = APIRouter(prefix="/ui", route_class=UiRoute)
DEFAULT_WINDOWS = 200
INTERVALS = (("", "each window"), ("60", "1 minute"), ("300", "5 minutes"), ("3600", "1 hour"), ("86400", "1 day"))
ModelPath = Annotated[str, Path(min_length=1, max_length=200)]
Text = Annotated[str, Query(max_length=64)]


def _series(rows: list[dict[str, Any]], metric: str, dimension: str = "") -> tuple[list[datetime], list[float]]:
    picked = [r for r in rows if r["metric"] == metric and r["dimension"] == dimension]
    return [r["window_start"] for r in picked], [r["value"] for r in picked]


def _lines(rows: list[dict[str, Any]], metrics: list[tuple[str, str]], step: timedelta) -> list[dict[str, Any]]:
    traces = []
    for index, (metric, label) in enumerate(metrics):
        xs, ys = _series(rows, metric)
        if xs:
            traces.append(charts.line(label, xs, ys, index, step))
    return traces


def _privacy(
    rows: list[dict[str, Any]], markers: list[dict[str, Any]], step: timedelta, per: str, shown: Any
) -> dict[str, Any]:
    """The share of texts with personal data found at ingest, one line per scanned field (a call's, or
    the corrections and comments on the calls)."""
    fields = sorted({r["dimension"] for r in rows if r["metric"] == "share_with_pii" and "." not in r["dimension"]})
    traces = []
    for index, field in enumerate(fields):
        xs, ys = _series(rows, "share_with_pii", field)
        traces.append(charts.line(field, xs, ys, index, step))
    return {
        "title": f"texts with personal data found at ingest, per field (a call's, or its feedback's), {per}",
        "id": "chart-privacy",
        "figure": charts.figure(traces, y_title="share of texts", y_format=".1%", markers=markers, x_range=shown),
        "empty": "" if traces else "No privacy statistics: redaction is off for this project, or no window closed.",
    }


def _quality(
    rows: list[dict[str, Any]],
    markers: list[dict[str, Any]],
    step: timedelta,
    per: str,
    shown: tuple[datetime, datetime] | None,
) -> list[dict[str, Any]]:
    """Rates with their 95 % Wilson band (from the sample size), the thumbs-up rate each judge's scores
    give (one line per evaluator), means as lines."""
    figures = []
    for index, (metric, label) in enumerate((("thumbs_up_rate", "thumbs-up rate"), ("accuracy", "accuracy"))):
        picked = [r for r in rows if r["metric"] == metric and r["dimension"] == ""]
        if picked:
            xs = [r["window_start"] for r in picked]
            bands = [charts.wilson(r["value"], r["sample_size"]) for r in picked]
            traces = charts.band(label, xs, [b[0] for b in bands], [b[1] for b in bands], index, step)
            traces.append(
                charts.line(
                    label,
                    xs,
                    [r["value"] for r in picked],
                    index,
                    step,
                    customdata=[r["sample_size"] for r in picked],
                    hovertemplate="%{y:.0%} of %{customdata:,} ratings",
                )
            )
            figures.append(
                {
                    "title": f"{label} {per}, with its 95 % interval",
                    "id": f"chart-{metric}",
                    "figure": charts.figure(traces, y_title=label, y_format=".0%", markers=markers, x_range=shown),
                }
            )
    judges = sorted({r["dimension"] for r in rows if r["metric"] == "estimated_thumbs_up_rate"})
    estimates = []
    for index, judge in enumerate(judges):
        picked = [r for r in rows if r["metric"] == "estimated_thumbs_up_rate" and r["dimension"] == judge]
        estimates.append(
            charts.line(
                f"from {judge}",
                [r["window_start"] for r in picked],
                [r["value"] for r in picked],
                index,
                step,
                customdata=[r["sample_size"] for r in picked],
                hovertemplate="%{y:.0%} estimated from %{customdata:,} judged calls",
            )
        )
    if estimates:
        figures.append(
            {
                "title": f"thumbs-up rate estimated from judges' scores {per}",
                "id": "chart-estimated_thumbs_up_rate",
                "figure": charts.figure(
                    estimates, y_title="estimated thumbs-up rate", y_format=".0%", markers=markers, x_range=shown
                ),
            }
        )
    traces = _lines(rows, [("mean_rating", "mean rating")], step)
    scores = sorted({r["dimension"] for r in rows if r["metric"] == "score_mean"})
    for index, score in enumerate(scores, 1):
        xs, ys = _series(rows, "score_mean", score)
        traces.append(charts.line(f"score {score}", xs, ys, index, step))
    if traces:
        figures.append(
            {
                "title": f"ratings and scores {per} (means)",
                "id": "chart-ratings",
                "figure": charts.figure(traces, y_title="mean", markers=markers, x_range=shown),
            }
        )
    return figures


def default_range(span: WindowSpan | None, now: datetime, window: timedelta) -> tuple[datetime, datetime] | None:
    """The range a model page opens on: the last ``DEFAULT_WINDOWS`` windows up to now. A model quiet
    for longer opens on its last windows before now instead (never on windows stamped in the future)."""
    if span is None:
        return None
    length = DEFAULT_WINDOWS * window
    if span.last_end is None:  # every window lies ahead: the range up to now is empty, and says why
        return now - length, now
    end = now if now - span.last_end < length else span.last_end
    return max(span.first_start, end - length), end


def _per(interval: int | None, window_seconds: int) -> str:
    return f"per {duration(interval or window_seconds)}"


def model_page_data(
    ui_project: str,
    model: str,
    runtime: Runtime,
    monitoring: Monitoring,
    since: datetime | None,
    until: datetime | None,
    interval: int | None,
) -> dict[str, Any]:
    """Everything the model page draws (runs in a thread: several storage reads)."""
    storage = runtime.storage
    now = datetime.now(UTC)
    window_seconds = runtime.settings.window_seconds
    span = model_window_range(storage, ui_project, model, now)
    default = default_range(span, now, timedelta(seconds=window_seconds))
    if default is not None and since is None:
        since = default[0] if until is None else until - DEFAULT_WINDOWS * timedelta(seconds=window_seconds)
    if default is not None and until is None:
        until = default[1]
    step = timedelta(seconds=interval or window_seconds)
    per = _per(interval, window_seconds)
    shown = (since, until) if since is not None and until is not None else None
    families = model_series(storage, ui_project, model, since, until)
    if interval:
        families = {family: rebucket(rows, interval) for family, rows in families.items()}
    alerts = [
        a
        for a in alert_rows.listed(monitoring.alerts.storage, ui_project, model=model, limit=500)
        if (since is None or a.window_end > since) and (until is None or a.window_start < until)
    ]
    markers = [{"x": charts.iso(a.window_start), "severity": a.severity} for a in alerts]
    latency, cost, drift = families["latency"], families["cost"], families["drift"]
    figures = [
        {
            "title": f"latency percentiles {per}",
            "id": "chart-latency",
            "figure": charts.figure(
                _lines(
                    latency, [("latency_p50_ms", "p50"), ("latency_p95_ms", "p95"), ("latency_p99_ms", "p99")], step
                ),
                y_title="latency (ms)",
                y_format=",~f",
                markers=markers,
                x_range=shown,
            ),
        },
        {
            "title": f"error rate {per}",
            "id": "chart-errors",
            "figure": charts.figure(
                _lines(latency, [("error_rate", "error rate")], step),
                y_title="share of calls",
                y_format=".1%",
                markers=markers,
                x_range=shown,
            ),
        },
        {
            "title": f"calls {per}",
            "id": "chart-calls",
            "figure": charts.figure(
                _lines(latency, [("count", "calls")], step),
                y_title="calls",
                y_format=",~f",
                markers=markers,
                x_range=shown,
            ),
        },
    ]
    tags = sorted({r["dimension"] for r in cost if r["metric"] == "cost_usd" and r["dimension"]})
    cost_traces = _lines(cost, [("cost_usd", "all")], step)
    for index, tag in enumerate(tags, 1):
        xs, ys = _series(cost, "cost_usd", tag)
        cost_traces.append(charts.line(tag.removeprefix("tag:"), xs, ys, index, step))
    unpriced = sum(r["value"] for r in cost if r["metric"] == "unknown_cost_events" and r["dimension"] == "")
    priced = any(r["value"] for r in cost if r["metric"] == "cost_usd")
    figures.append(
        {
            "title": f"cost per tag {per}",
            "id": "chart-cost",
            "figure": charts.figure(
                cost_traces if priced or not unpriced else [],
                y_title="cost (USD)",
                y_format="$,.4~f",
                markers=markers,
                x_range=shown,
            ),
            "empty": f"Unpriced: no known price for this model ({unpriced:,.0f} calls with tokens in the range)."
            if unpriced and not priced
            else "",
        }
    )
    figures.append(
        {
            "title": f"tokens {per}",
            "id": "chart-tokens",
            "figure": charts.figure(
                _lines(cost, [("input_tokens", "input"), ("output_tokens", "output")], step),
                y_title="tokens",
                y_format=",~f",
                markers=markers,
                x_range=shown,
            ),
        }
    )
    drift_families = sorted({r["dimension"] for r in drift if r["metric"] == "family_drift"})
    drift_traces = []
    for index, family in enumerate(drift_families):
        xs, ys = _series(drift, "family_drift", family)
        drift_traces.append(charts.line(family, xs, ys, index, step))
    if not drift_traces:
        drift_traces = _lines(drift, [("dataset_drift", "dataset")], step)
    figures.append(
        {
            "title": f"drifted share of columns per family, {per}",
            "id": "chart-drift",
            "figure": charts.figure(
                drift_traces, y_title="drifted columns", y_format=".0%", markers=markers, x_range=shown
            ),
        }
    )
    figures += _quality(families["quality"], markers, step, per, shown)
    privacy = _privacy(families["privacy"], markers, step, per, shown)
    versions = {}
    for metric, label, y_title in (
        ("count", f"calls per version, {per}", "calls"),
        ("latency_p95_ms", f"p95 latency per version, {per}", "latency (ms)"),
    ):
        series = version_series(storage, ui_project, model, metric, since, until)
        if len(series) > 1:
            traces = [
                charts.line(version, [p["window_start"] for p in points], [p["value"] for p in points], i, step)
                for i, (version, points) in enumerate(sorted(series.items()))
            ]
            versions[metric] = {
                "title": label,
                "id": f"chart-version-{metric}",
                "figure": charts.figure(traces, y_title=y_title, y_format=",~f", markers=markers, x_range=shown),
            }
    windows = sorted(
        {r["window_start"] for r in drift if r["metric"] in ("family_drift", "dataset_drift")}, reverse=True
    )
    flagged_windows = {r["window_start"] for r in drift if r["metric"] == "family_drift" and r["flagged"]}
    return {
        "figures": figures,
        "privacy": privacy,
        "versions": list(versions.values()),
        "alerts": alerts,
        "monitors": monitors_for(monitoring.store.list(ui_project), model),
        "top_columns": top_drifted_columns(storage, ui_project, model, since, until),
        "error_types": error_types(storage, ui_project, model, since, until),
        "windows": [(w, w in flagged_windows) for w in windows[:50]],
        "since": since,
        "until": until,
        "has_data": span is not None,
        "ahead": span.ahead if span is not None else 0,
        "point": duration(interval or window_seconds),
        "rebucketed": bool(interval),
    }


@router.get("/models/{model:path}")
async def model_page(
    model: ModelPath, ui: UiDep, since: Text = "", until: Text = "", interval: Annotated[str, Query(max_length=12)] = ""
) -> Response:
    start, end = storable_range(parse_moment("since", since), parse_moment("until", until))
    seconds = parse_interval(interval)
    monitoring = ui.runtime.monitoring
    data = await asyncio.to_thread(
        model_page_data,
        ui.project,
        model,
        ui.runtime,
        monitoring,
        start,
        end,
        None if seconds is None or ui.runtime.settings.window_seconds >= seconds else seconds,
    )
    return ui.render(
        "model.html", model=model, intervals=INTERVALS, interval=interval, since_text=since, until_text=until, **data
    )
