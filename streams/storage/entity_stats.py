"""Statistics of a model's events per tag value (entity: a user, tenant, route, …), computed in
ClickHouse over a time range, of which only the top ``limit`` breaching entities come back. Privacy
ones come from the calls' stored redaction counts (``inferences.pii``).

The aggregation groups by the tag's value inside ClickHouse; Python never holds one object per
entity. Its hash table would still grow with the entities, so a range with more than ``per_pass``
distinct values (``uniq``: a fixed-size sketch) is aggregated in passes, each over the values whose
hash falls in its slice, each returning its worst ``limit``: memory is bounded by ``per_pass``
entities whatever their number, and a million distinct users cost passes (time), not memory.

Quantiles use ``quantileExactInclusive`` — linear interpolation between closest ranks, numpy's
default ``np.percentile`` method, the one the window statistics use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from detectors.latency import OK_STATUSES
from detectors.pii import field_of
from streams.storage.client import Storage
from streams.storage.times import ch_time

_T = "DateTime64(3, 'UTC')"

# A call's status is an error as ``detectors.latency.is_error_status`` says: a number ≥ 400 or < 100,
# or a word other than the OK words.
_DIGITS = "match(trimBoth(status), '^[0-9]+$')"
_CODE = "toUInt64OrZero(trimBoth(status))"
_OK = ", ".join(f"'{word}'" for word in sorted(OK_STATUSES))
IS_ERROR = f"if({_DIGITS}, {_CODE} >= 400 OR {_CODE} < 100, lower(trimBoth(status)) NOT IN ({_OK}))"

_LATENCY = "if(isFinite(ifNull(latency_ms, nan)), latency_ms, NULL)"

# metric → (aggregate, the rows it counts as its sample)
AGGREGATES: dict[str, tuple[str, str]] = {
    "count": ("toFloat64(count())", "count()"),
    "error_count": (f"toFloat64(countIf({IS_ERROR}))", "count()"),
    "error_rate": (f"countIf({IS_ERROR}) / count()", "count()"),
    "latency_p50_ms": (f"quantileExactInclusive(0.5)({_LATENCY})", f"count({_LATENCY})"),
    "latency_p95_ms": (f"quantileExactInclusive(0.95)({_LATENCY})", f"count({_LATENCY})"),
    "latency_p99_ms": (f"quantileExactInclusive(0.99)({_LATENCY})", f"count({_LATENCY})"),
    "latency_mean_ms": (f"avg({_LATENCY})", f"count({_LATENCY})"),
    "cost_usd": ("sum(ifNull(cost_usd, 0))", "count()"),
    "input_tokens": ("toFloat64(sum(ifNull(input_tokens, 0)))", "count()"),
    "output_tokens": ("toFloat64(sum(ifNull(output_tokens, 0)))", "count()"),
}
# Quality per entity: each call's newest thumb (``thumb``, NULL without one), joined in by ``_with_thumbs``.
QUALITY_AGGREGATES: dict[str, tuple[str, str]] = {
    "thumbs_up_rate": ("countIf(thumb > 0) / countIf(isNotNull(thumb))", "countIf(isNotNull(thumb))"),
}
# Privacy of one field (``field`` binds it) or field and kind (``dimension``) from the calls' ``pii``
# counts (``detectors.pii``): a call is in the sample when that field was scanned.
_SCANNED = "countIf(mapContains(pii, {field:String}))"
PRIVACY_AGGREGATES: dict[str, tuple[str, str]] = {
    "share_with_pii": (f"countIf(pii[{{dimension:String}}] > 0) / {_SCANNED}", _SCANNED),
    "entity_count": ("toFloat64(sumIf(pii[{dimension:String}], mapContains(pii, {field:String})))", _SCANNED),
    "scanned_events": (f"toFloat64({_SCANNED})", _SCANNED),
}
_OPERATORS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def aggregate(metric: str) -> tuple[str, str]:
    """(the statistic, the rows it counts as its sample) of ``metric`` over a model's calls."""
    if metric in AGGREGATES:
        return AGGREGATES[metric]
    if metric in PRIVACY_AGGREGATES:
        return PRIVACY_AGGREGATES[metric]
    return QUALITY_AGGREGATES[metric]


def privacy_params(dimension: str) -> dict[str, str]:
    """The parameters of ``PRIVACY_AGGREGATES`` for ``response`` or ``response.EMAIL``."""
    return {"dimension": dimension, "field": field_of(dimension)}


def _with_thumbs(db: str, where: str) -> str:
    """The model's calls of the range with their newest thumbs-up/down (``thumb``), for quality metrics."""
    return (
        f"(SELECT i.tags AS tags, f.thumb AS thumb FROM (SELECT event_id, tags FROM {db}.inferences FINAL "
        f"WHERE {where}) AS i LEFT JOIN (SELECT inference_id, argMax(value, ingested_at) AS thumb "
        f"FROM {db}.feedback WHERE project = {{project:String}} AND kind = 'thumbs' GROUP BY inference_id) AS f "
        "ON i.event_id = f.inference_id SETTINGS join_use_nulls = 1)"
    )


@dataclass(frozen=True, slots=True)
class EntityValue:
    """One entity's statistic: ``entity`` is 'tag=value'; ``breaching`` counts every breaching entity
    of the range (the rows returned are the worst ``limit`` of them)."""

    entity: str
    value: float
    sample_size: int
    breaching: int


def breaching_entities(
    storage: Storage,
    project: str,
    model: str,
    tag: str,
    metric: str,
    *,
    start: datetime,
    end: datetime,
    operator: Literal["gt", "gte", "lt", "lte"],
    threshold: float,
    min_samples: int,
    limit: int,
    per_pass: int,
    dimension: str = "",
) -> list[EntityValue]:
    """The entities of ``model`` (values of tag ``tag``) whose ``metric`` over [start, end) meets
    ``<operator> threshold`` with at least ``min_samples`` samples, worst first, at most ``limit``.
    ``dimension``: a privacy metric's field or field and kind."""
    params: dict[str, object] = {
        **(privacy_params(dimension) if metric in PRIVACY_AGGREGATES else {}),
        "project": project,
        "model": model,
        "tag": tag,
        "start": ch_time(start),
        "end": ch_time(end),
        "min_samples": min_samples,
        "threshold": threshold,
        "limit": limit,
    }
    where = (
        "project = {project:String} AND model = {model:String} "
        f"AND timestamp >= {{start:{_T}}} AND timestamp < {{end:{_T}}} AND mapContains(tags, {{tag:String}})"
    )
    distinct = int(
        storage.scalar(f"SELECT uniq(tags[{{tag:String}}]) FROM {storage.database}.inferences WHERE {where}", params)
        or 0
    )
    passes = max(1, math.ceil(distinct / per_pass))
    value, samples = aggregate(metric)
    db = storage.database
    order = "DESC" if operator in ("gt", "gte") else "ASC"
    found: list[EntityValue] = []
    total = 0
    for slice_ in range(passes):
        part = "" if passes == 1 else f" AND cityHash64(tags[{{tag:String}}]) % {passes} = {slice_}"
        if metric in QUALITY_AGGREGATES:  # the range and slice are filtered inside the join's left side
            source, filtered = _with_thumbs(db, where + part), "1"
        else:
            source, filtered = f"{db}.inferences FINAL", where + part
        rows = storage.query(
            "SELECT entity, value, samples, count() OVER () AS breaching FROM ("
            f"SELECT tags[{{tag:String}}] AS entity, {value} AS value, {samples} AS samples "
            f"FROM {source} WHERE {filtered} "
            "GROUP BY entity HAVING samples >= {min_samples:UInt64} AND isFinite(value) "
            f"AND value {_OPERATORS[operator]} {{threshold:Float64}}) "
            f"ORDER BY value {order}, entity LIMIT {{limit:UInt32}}",
            params,
        ).result_rows
        total += int(rows[0][3]) if rows else 0
        found += [EntityValue(f"{tag}={entity}", float(v), int(n), 0) for entity, v, n, _ in rows]
    found.sort(key=lambda e: (-e.value if order == "DESC" else e.value, e.entity))
    return [EntityValue(e.entity, e.value, e.sample_size, total) for e in found[:limit]]
