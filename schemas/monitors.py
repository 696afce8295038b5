"""Monitors: which statistic of which models to watch, when it is a breach, and where alerts go.

A monitor matches ``window_stats`` rows (see ``schemas.stats``) by scope (model), family, metric and
dimension, and calls a window a breach when a matching row with enough samples meets the condition:

* ``threshold`` — ``value <op> threshold`` with ``op`` one of gt, gte, lt, lte;
* ``p_value`` — the row's ``p_value`` below ``alpha`` (a significant change; for quality metrics only a
  change in the bad direction counts unless ``direction`` says otherwise);
* ``flagged`` — the row's own verdict (``family_drift``, ``dataset_drift``, ``spend_anomaly``, a drifted
  column, …);
* ``no_data`` — on ``latency``/``count``: a model (or, with ``group_by``, a tag value) that was sending
  events sent none for ``for`` (or, with ``below_share``, fell below that share of its usual rate for
  the hour of the week). Judged by the monitor service's sweep, not by closing windows.

``group_by`` names a tag: the statistic is computed per tag value (entity) in ClickHouse and the top
breaching entities are named. ``window`` (``1h``, ``24h``) judges the statistic over that much time
up to the end of each closed window instead of the window alone.

Validation knows the statistics contract, so a monitor that could never match (an unknown metric, a
p-value condition on a metric that has none, a dimension a metric never has) is refused with an error
located on the offending field. Secrets inside channels stay ``SecretStr``/hidden here; ``masked_channel``
is the only form an API response shows.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    StrictBool,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from schemas.channels import AnyChannel, Channel, EmailChannel, PagerDutyChannel, SlackChannel, safe_url
from schemas.events import EventId, Name, ProjectName, Severity, UtcDatetime, new_id
from schemas.stats import (
    DRIFT_FAMILIES,
    METRICS,
    PII_DIMENSION,
    PII_FIELDS,
    DimensionKind,
    Family,
    MetricSpec,
    unknown_metric,
)

MASK = "********"
MAX_CHANNELS = 10
ANY = "*"

MonitorId = EventId  # the same id rules as events
MonitorName = Name
Operator = Literal["gt", "gte", "lt", "lte"]
OPERATOR_SYMBOLS: dict[str, str] = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, message)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _tag_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["type", *schema.get("required", [])]


class _Condition(_Strict):
    # ``type`` has a default for Python callers, but a request body must name it (the union's tag)
    model_config = ConfigDict(json_schema_extra=_tag_required)


class ThresholdCondition(_Condition):
    """Breach when ``value <operator> value`` (e.g. p95 latency gt 2000 ms)."""

    type: Literal["threshold"] = "threshold"
    operator: Operator
    value: FiniteFloat

    def describe(self) -> str:
        return OPERATOR_SYMBOLS[self.operator]


class PValueCondition(_Condition):
    """Breach when the row's p-value is below ``alpha``.

    ``direction`` says which change counts: ``down`` (value fell vs the reference; the default for
    quality metrics, where lower is worse), ``up``, or ``any`` (the default for drift).
    """

    type: Literal["p_value"] = "p_value"
    alpha: float = Field(default=0.05, gt=0, lt=1)
    direction: Literal["down", "up", "any"] | None = None

    def describe(self) -> str:
        return f"p < {self.alpha:g}"


class FlaggedCondition(_Condition):
    """Breach when the statistics engine flagged the row (its own test and threshold)."""

    type: Literal["flagged"] = "flagged"

    def describe(self) -> str:
        return "flagged"


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
Duration = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,5}[smhd]$")]


def duration_seconds(text: str) -> int:
    """``"15m"`` → 900 (a ``Duration``: a whole number of s, m, h or d)."""
    return int(text[:-1]) * _DURATION_UNITS[text[-1]]


class NoDataCondition(_Condition):
    """Breach when a source that was sending events sends none for ``for`` (``"15m"``), or — with
    ``below_share`` — fewer than that share of its usual rate for this hour of the week."""

    model_config = ConfigDict(
        json_schema_extra=_tag_required, serialize_by_alias=True, validate_by_name=True, validate_by_alias=True
    )

    type: Literal["no_data"] = "no_data"
    for_: Duration = Field(alias="for", description="how long the silence must last: '15m', '1h', …")
    below_share: float | None = Field(
        default=None, gt=0, lt=1, description="fire when the rate falls below this share of the usual rate"
    )

    @field_validator("for_")
    @classmethod
    def _bounded(cls, value: str) -> str:
        if not 1 <= duration_seconds(value) <= 7 * 86400:
            raise _error("bad_duration", "'for' must be between 1s and 7d")
        return value

    @property
    def seconds(self) -> int:
        return duration_seconds(self.for_)

    def describe(self) -> str:
        if self.below_share is not None:
            return f"rate < {self.below_share:g} × usual for {self.for_}"
        return f"no data for {self.for_}"


Condition = Annotated[
    ThresholdCondition | PValueCondition | FlaggedCondition | NoDataCondition, Field(discriminator="type")
]
AnyCondition = ThresholdCondition | PValueCondition | FlaggedCondition | NoDataCondition
NO_DATA_METRIC = ("latency", "count")  # the statistic a no-data monitor names: the event count
GROUP_BY_METRICS: dict[str, tuple[str, ...]] = {
    "latency": (
        "count",
        "error_count",
        "error_rate",
        "latency_p50_ms",
        "latency_p95_ms",
        "latency_p99_ms",
        "latency_mean_ms",
    ),
    "cost": ("cost_usd", "input_tokens", "output_tokens"),
}
# what a rolling window can be computed for (from stats or raw rows)
ROLLING_METRICS: dict[str, tuple[str, ...]] = dict(GROUP_BY_METRICS)
# per entity also the share of thumbs-up among the entity's calls that got a thumb
GROUP_BY_METRICS["quality"] = ("thumbs_up_rate",)
# privacy per entity and over a rolling range, from the calls' stored counts: of one field or field and kind
PRIVACY_DERIVED_METRICS = ("share_with_pii", "entity_count", "scanned_events")
GROUP_BY_METRICS["privacy"] = ROLLING_METRICS["privacy"] = PRIVACY_DERIVED_METRICS
TagKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,100}$")]


def _derived_dimension(code: str, what: str, family: str, info: ValidationInfo) -> None:
    """A group_by or rolling monitor's dimension: '' (the model total) except for privacy, whose derived
    statistics are of one field of the calls or one field and kind (the calls' stored counts: feedback
    texts, ``correction`` and ``comment``, belong to no call's tags and have no rolling value)."""
    dimension = info.data.get("dimension")
    if dimension is None:
        return
    if family != "privacy":
        if dimension not in ("", ANY):
            raise _error(code, f"{what}: leave dimension ''")
        return
    if dimension.split(".", 1)[0] not in PII_FIELDS:
        raise _error(
            code,
            f"{what}: a privacy monitor names one field of the calls ({', '.join(PII_FIELDS)}) or a field "
            "and a kind ('response.EMAIL') as its dimension",
        )


_DIMENSIONS: dict[DimensionKind, dict[str, Any]] = {
    "none": {"enum": ["", ANY]},
    "tag": {"pattern": r"^(\*|tag:[^=]+=[\s\S]*)?$"},
    "column": {},
    "score": {},
    "family": {"enum": ["", ANY, *DRIFT_FAMILIES]},
    "pii": {"pattern": r"^(\*|" + PII_DIMENSION[1:-1] + ")?$"},
}


def _per_metric(schema: dict[str, Any]) -> None:
    """The statistics contract (``METRICS``) in the JSON Schema: each family's metrics, and per metric
    its dimensions and the conditions it supports, as ``_known_metric`` and friends check them."""
    branches = []
    for family, metrics in METRICS.items():
        groups: dict[tuple[DimensionKind, bool, bool], list[str]] = {}  # what a monitor may say of a metric
        for metric, spec in metrics.items():
            groups.setdefault((spec.dimensions, spec.p_value, spec.flagged), []).append(metric)
        for (dimensions, p_value, flagged), names in groups.items():
            types = ["threshold", *(["p_value"] if p_value else []), *(["flagged"] if flagged else [])]
            branches.append(
                {
                    "properties": {
                        "family": {"const": family},
                        "metric": {"enum": names},
                        "dimension": _DIMENSIONS[dimensions],
                        "condition": {"properties": {"type": {"enum": types}}},
                    }
                }
            )
            if (family, "count") == NO_DATA_METRIC and "count" in names:
                branches.append(
                    {
                        "properties": {
                            "family": {"const": family},
                            "metric": {"const": "count"},
                            "dimension": _DIMENSIONS[dimensions],
                            "condition": {"properties": {"type": {"const": "no_data"}}},
                        }
                    }
                )
        schema["oneOf"] = branches
    space = "".join(ch for ch in map(chr, range(0x110000)) if ch.isspace())  # what str.strip() strips
    schema["properties"]["scope"]["pattern"] = f"^[^{space}]([\\s\\S]*[^{space}])?$"  # as ``_scope`` checks


class MonitorSpec(_Strict):
    """The user-controlled part of a monitor (request bodies and YAML entries share it)."""

    model_config = ConfigDict(json_schema_extra=_per_metric)

    name: MonitorName
    scope: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        default=ANY, description="a model name, or '*' for every model of the project"
    )
    family: Family
    metric: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    dimension: Annotated[str, StringConstraints(max_length=300)] = Field(
        default="",
        description="feature/descriptor, score name or 'tag:<key>=<value>'; '' or '*' = any dimension "
        "(for cost_usd '' is the model total and '*' also matches every tag)",
    )
    condition: Condition
    min_samples: int = Field(default=0, ge=0, le=10**9, description="ignore windows whose statistic has fewer samples")
    cooldown_seconds: int = Field(
        default=1800, ge=0, le=30 * 86400, description="no new alert within this much window time of the last"
    )
    severity: Severity = "warning"
    channels: Annotated[list[Channel], Field(max_length=MAX_CHANNELS)] = Field(default_factory=list)
    retrain_after: int | None = Field(
        default=None, ge=1, le=1000, description="request retraining after this many consecutive breaching windows"
    )
    resolve_after: int = Field(
        default=2,
        ge=1,
        le=1000,
        description="an alert is resolved once this many evaluated windows in a row no longer breach",
    )
    enabled: StrictBool = True  # true/false only: 0, 1 or "yes" are refused, not coerced
    group_by: TagKey | None = Field(
        default=None, description="a tag key (user_id, tenant, route, …): judge each of its values on its own"
    )
    window: Literal["1h", "24h"] | None = Field(
        default=None, description="judge the statistic over this much time up to each closed window's end"
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str, info: ValidationInfo) -> str:
        family = info.data.get("family")
        if family is None:  # the family already failed; its own error says why
            return value
        problem = unknown_metric(family, value)
        if problem is not None:
            raise _error("unknown_metric", problem)
        return value

    @field_validator("dimension")
    @classmethod
    def _dimension_fits(cls, value: str, info: ValidationInfo) -> str:
        spec = _spec(info)
        if spec is None or value in ("", ANY):
            return value
        metric = info.data["metric"]
        if spec.dimensions == "none":
            raise _error("no_dimension", f"metric {metric!r} has no dimensions; use '' (or '*')")
        if spec.dimensions == "tag" and not (
            value.startswith("tag:") and "=" in value[4:] and value[4:].index("=") > 0
        ):
            raise _error(
                "bad_dimension",
                f"{metric!r} dimensions are '' (model total), '*' (total and every tag) or 'tag:<key>=<value>'",
            )
        if spec.dimensions == "family" and value not in DRIFT_FAMILIES:
            raise _error(
                "bad_dimension",
                f"{metric!r} dimensions are '' or '*' (every family) or one of {', '.join(DRIFT_FAMILIES)}",
            )
        if spec.dimensions == "pii" and not re.fullmatch(PII_DIMENSION[1:-1], value):
            raise _error(
                "bad_dimension",
                f"{metric!r} dimensions are '' or '*' (every field and kind), a field (prompt, response, tags, "
                "features, correction, comment) or a field and a kind in capitals ('response.EMAIL')",
            )
        return value

    @field_validator("condition")
    @classmethod
    def _condition_fits(cls, value: AnyCondition, info: ValidationInfo) -> AnyCondition:
        spec = _spec(info)
        if spec is None:
            return value
        metric = info.data["metric"]
        if isinstance(value, NoDataCondition) and (info.data["family"], metric) != NO_DATA_METRIC:
            raise _error(
                "no_data_metric", "a no_data condition watches the event count: family 'latency', metric 'count'"
            )
        if isinstance(value, PValueCondition) and not spec.p_value:
            raise _error("no_p_value", f"metric {metric!r} carries no p-value; use a 'threshold' condition")
        if isinstance(value, FlaggedCondition) and not spec.flagged:
            raise _error("never_flagged", f"metric {metric!r} is never flagged; use a 'threshold' condition")
        return value

    @field_validator("group_by")
    @classmethod
    def _groupable(cls, value: str | None, info: ValidationInfo) -> str | None:
        family, metric, condition = info.data.get("family"), info.data.get("metric"), info.data.get("condition")
        if value is None or family is None or metric is None or condition is None:
            return value
        if isinstance(condition, NoDataCondition):
            if condition.below_share is not None:
                raise _error("not_groupable", "below_share judges a whole model's rate; leave group_by unset")
            return value
        if metric not in GROUP_BY_METRICS.get(family, ()):
            allowed = "; ".join(f"{f}: {', '.join(m)}" for f, m in GROUP_BY_METRICS.items())
            raise _error("not_groupable", f"group_by works for {allowed} (not {family}/{metric})")
        if not isinstance(condition, ThresholdCondition):
            raise _error("not_groupable", "group_by needs a 'threshold' or 'no_data' condition")
        _derived_dimension("not_groupable", "group_by judges the model's events per tag value", family, info)
        return value

    @field_validator("window")
    @classmethod
    def _rollable(cls, value: str | None, info: ValidationInfo) -> str | None:
        family, metric, condition = info.data.get("family"), info.data.get("metric"), info.data.get("condition")
        if value is None or family is None or metric is None or condition is None:
            return value
        if isinstance(condition, NoDataCondition):
            raise _error("not_rollable", "a no_data condition has its own duration ('for'); leave window unset")
        if metric not in ROLLING_METRICS.get(family, ()) or not isinstance(condition, ThresholdCondition):
            allowed = "; ".join(f"{f}: {', '.join(m)}" for f, m in ROLLING_METRICS.items())
            raise _error("not_rollable", f"window works with a 'threshold' condition on {allowed}")
        _derived_dimension("not_rollable", "a rolling window judges the model total", family, info)
        return value

    @field_validator("scope")
    @classmethod
    def _scope(cls, value: str) -> str:
        if value != value.strip():
            raise _error("bad_scope", "scope must not start or end with whitespace")
        return value

    def direction(self) -> Literal["down", "up", "any"]:
        """The change a p-value condition counts (explicit, else the metric's bad direction)."""
        condition = self.condition
        if not isinstance(condition, PValueCondition):
            return "any"
        if condition.direction is not None:
            return condition.direction
        better = METRICS[self.family][self.metric].higher_is_better
        return "any" if better is None else ("down" if better else "up")


def _spec(info: ValidationInfo) -> MetricSpec | None:
    family, metric = info.data.get("family"), info.data.get("metric")
    if family is None or metric is None:
        return None
    return METRICS[family].get(metric)


class MonitorCreate(MonitorSpec):
    """``POST /v1/monitors``: a monitor of the caller's project. ``monitor_id`` is generated when absent."""

    monitor_id: MonitorId | None = None


class MonitorUpdate(BaseModel):
    """``PATCH /v1/monitors/{id}``: only the fields sent change; the result is validated as a whole.

    ``null`` leaves a field unchanged, except ``retrain_after`` (null: never). ``channels`` replaces
    the list. A channel sent back exactly as ``GET`` shows it (secrets masked) keeps its stored
    secrets, so read-modify-write works without re-entering them.
    Strict: a number is a number and a flag a flag (``false`` is not a cooldown, ``0`` not ``enabled``).
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    name: MonitorName | None = None
    scope: str | None = None
    family: Family | None = None
    metric: str | None = None
    dimension: str | None = None
    condition: dict[str, Any] | None = Field(default=None, json_schema_extra={"description": "as in MonitorCreate"})
    min_samples: int | None = None
    cooldown_seconds: int | None = None
    severity: Severity | None = None
    channels: list[dict[str, Any]] | None = Field(
        default=None, description="the new list; masked channels from GET keep their stored secrets"
    )
    retrain_after: int | None = None
    resolve_after: int | None = None
    enabled: StrictBool | None = None
    group_by: str | None = Field(default=None, description="a tag key; '' removes it")
    window: str | None = Field(default=None, description="'1h' or '24h'; '' removes it")


class Monitor(MonitorSpec):
    """A stored monitor. ``builtin`` ones are the defaults a project gets until it configures its own."""

    monitor_id: MonitorId = Field(default_factory=new_id)
    project: ProjectName
    builtin: bool = False
    created_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))
    updated_at: UtcDatetime = Field(default_factory=lambda: datetime.now(UTC))

    def matches(self, model: str, family: str, metric: str, dimension: str) -> bool:
        """Whether a statistic of ``model`` is one this monitor watches."""
        if self.scope not in (ANY, model) or self.family != family or self.metric != metric:
            return False
        if self.dimension == ANY or self.dimension == dimension:
            return True
        if self.dimension == "":
            # '' is the metric's natural scope: every dimension, except cost_usd whose '' is the total.
            return METRICS[self.family][self.metric].dimensions in ("column", "score", "family")
        return False

    def spec_data(self) -> dict[str, Any]:
        """The user-controlled fields with secrets intact (for merging an update)."""
        return {name: getattr(self, name) for name in MonitorSpec.model_fields}

    def storage_json(self) -> dict[str, Any]:
        """The full monitor as stored, secrets revealed (the sender needs them to sign and post)."""
        data = self.model_dump(mode="json", exclude={"channels"})
        data["channels"] = [channel_dict(channel, reveal=True) for channel in self.channels]
        return data

    def public_json(self) -> dict[str, Any]:
        """The monitor as the API shows it: every secret masked."""
        data = self.model_dump(mode="json", exclude={"channels"})
        data["channels"] = [channel_dict(channel, reveal=False) for channel in self.channels]
        return data


def channel_dict(channel: AnyChannel, *, reveal: bool) -> dict[str, Any]:
    """A channel as a plain dict: with its secrets (storage) or masked (API responses).

    Masked: a Slack URL keeps only scheme and host (its path is the credential); a webhook URL loses
    credentials and query; the signing secret and custom header values become ``MASK``.
    """
    if isinstance(channel, SlackChannel):
        url = channel.webhook_url if reveal else safe_url(channel.webhook_url, "slack")
        return {"type": "slack", "webhook_url": url}
    if isinstance(channel, PagerDutyChannel | EmailChannel):  # nothing secret: the routing key is not stored
        return channel.model_dump(mode="json")
    return {
        "type": "webhook",
        "url": channel.url if reveal else safe_url(channel.url, "webhook"),
        "secret": channel.secret.get_secret_value() if reveal else MASK,
        "headers": dict(channel.headers) if reveal else dict.fromkeys(channel.headers, MASK),
    }


def unmask_channels(submitted: list[dict[str, Any]], stored: list[AnyChannel]) -> list[dict[str, Any] | AnyChannel]:
    """Replace each submitted channel that equals a stored one's masked form by the stored channel."""
    masked = [(channel_dict(channel, reveal=False), channel) for channel in stored]
    out: list[dict[str, Any] | AnyChannel] = []
    for item in submitted:
        normalized = {**item, "headers": item.get("headers", {})} if item.get("type") == "webhook" else item
        match = next((channel for shown, channel in masked if shown == normalized), None)
        out.append(match if match is not None else item)
    return out


def breaches(
    condition: AnyCondition,
    *,
    value: float,
    p_value: float | None,
    flagged: bool,
    reference: float | None = None,
    direction: Literal["down", "up", "any"] = "any",
) -> bool:
    """Whether one statistic meets a condition. NaN and a missing p-value never breach; a no-data
    condition is judged by the sweep (``streams.monitors.no_data``), never on a statistic."""
    if isinstance(condition, NoDataCondition):
        return False
    if isinstance(condition, FlaggedCondition):
        return flagged
    if isinstance(condition, ThresholdCondition):
        if not math.isfinite(value):
            return False
        limit = condition.value
        return {
            "gt": value > limit,
            "gte": value >= limit,
            "lt": value < limit,
            "lte": value <= limit,
        }[condition.operator]
    if p_value is None or not math.isfinite(p_value) or p_value >= condition.alpha:
        return False
    if direction == "any":
        return True
    if reference is None or not math.isfinite(reference):
        return False  # the change cannot be told apart from an improvement
    return value < reference if direction == "down" else value > reference
