"""What schemathesis cannot read in the OpenAPI: rules across fields, which the spec states in prose.

JSON Schema constrains one value at a time. The rules below relate several (or a value and the server's
state), so the spec says them in descriptions and answers 422/409 when they are broken; here they
shape the *positive* cases (those the fuzzer claims the server must accept), so
``positive_data_acceptance`` tests everything else. Negative cases are left alone. Loaded by the
schemathesis CLI through ``SCHEMATHESIS_HOOKS`` (tests/api/test_openapi_fuzz.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import schemathesis
from fastapi import HTTPException
from pydantic import TypeAdapter, ValidationError
from schemathesis.generation.modes import GenerationMode

from api.time_range import IsoDatetime, storable_range
from schemas.events import EVENT_TIME, EventTime
from schemas.monitors import MonitorCreate
from schemas.privacy import RedactionPolicy
from schemas.queues import QueueCreate
from schemas.stats import METRICS
from streams.decode import EventTimePolicy

_MOMENT: TypeAdapter[Any] = TypeAdapter(IsoDatetime)
_EVENT_TIME: TypeAdapter[Any] = TypeAdapter(EventTime)
# What a PATCH may change whatever the stored monitor is: family, metric, dimension and condition are
# validated together with the stored fields ("the result is validated as a whole"), and channel
# targets must resolve, which needs DNS this sandbox does not have.
_PATCH_ALONE = frozenset({"name", "severity", "enabled"})
# Evaluators: a body's kind decides which fields it needs ("a code evaluator needs 'code'"), and a judge's
# endpoint must resolve; fuzzed bodies become code evaluators, PATCHes keep fields valid on their own.
_EVALUATOR_PATCH_ALONE = frozenset({"name", "sampling_rate", "enabled", "daily_budget_usd", "daily_budget_calls"})


def _positive(case: Any) -> bool:
    return case.meta is None or case.meta.generation.mode == GenerationMode.POSITIVE


def _ordered(since: Any, until: Any) -> bool:
    """``since`` before ``until`` ("before `until`, else 422"), parsed as the server parses them."""
    if since is None or until is None:
        return True
    try:
        storable_range(_MOMENT.validate_python(since), _MOMENT.validate_python(until))
    except (HTTPException, ValidationError):
        return False
    return True


def _storable_times(body: Any) -> bool:
    """Event timestamps between 2000 and 2200 UTC and not ahead of the server's clock by more than its
    skew (the field's description): an RFC 3339 pattern for this would have to compare offsets with
    times of day, and no schema knows the time."""
    context = {EVENT_TIME: EventTimePolicy().rules()}  # the fuzzed server's defaults
    for item in body if isinstance(body, list) else [body]:
        if isinstance(item, dict) and item.get("timestamp") is not None:
            try:
                _EVENT_TIME.validate_python(item["timestamp"], context=context)
            except ValidationError:
                return False
    return True


def _calls_query(query: dict[str, Any]) -> bool:
    """The calls listing's rules across parameters (their descriptions): a minimum not above its maximum,
    ``window_start`` only with ``model`` (here without another time range, which would have to hold the
    window), and a cursor only as the previous page gave it."""
    if query.get("cursor") is not None:
        return False
    if query.get("window_start") is not None and (
        query.get("model") is None or query.get("since") is not None or query.get("until") is not None
    ):
        return False
    for low, high in (("min_latency_ms", "max_latency_ms"), ("min_cost_usd", "max_cost_usd")):
        try:
            if query.get(low) is not None and query.get(high) is not None and float(query[low]) > float(query[high]):
                return False
        except (TypeError, ValueError):
            return False
    return _ordered(query.get("since"), query.get("until"))


def _applicable_policy(body: Any) -> bool:
    """A policy this server can apply (the description's rules): custom regexes that compile and match
    something, and no pseudonyms (the fuzzed server has no ``LOOPWATCH_REDACTION_KEY``)."""
    try:
        policy = RedactionPolicy.model_validate(body)
    except ValidationError:
        return False
    return policy.mode != "pseudonymize"


def _valid_queue(body: Any) -> bool:
    """A queue whose fields fit their type (a range's min below its max, two labels at least: the
    descriptions' rules) and whose rules' time ranges are ordered."""
    try:
        queue = QueueCreate.model_validate(body)
    except ValidationError:
        return False
    return all(rule.since is None or rule.until is None or rule.since < rule.until for rule in queue.rules)


def _derivable(body: Any) -> bool:
    """A monitor's ``group_by`` / ``window`` on a statistic they can be computed for, with a condition
    they take (which metrics: ``GROUP_BY_METRICS`` and ``ROLLING_METRICS``), and a no-data duration within
    its bounds (1 s to 7 d, written as text such as "15m"): rules no schema states."""
    if not isinstance(body, dict):
        return True
    try:
        MonitorCreate.model_validate(body)
    except ValidationError as exc:
        return not any(
            error["loc"][:1] in (("group_by",), ("window",)) or error["type"] == "bad_duration"
            for error in exc.errors()
        )
    return True


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    if not _positive(case):
        return True
    method, path = case.operation.method.upper(), case.operation.path
    if path == "/v1/models/{model}/reference" and method == "POST":
        # dataset uploads (CSV, JSON lines, Parquet) have contents no JSON Schema describes; the range
        # request is JSON and ordered ("before `end`, else 422")
        body = case.body if isinstance(case.body, dict) else {}
        return (
            (case.query or {}).get("format") is None
            and case.media_type == "application/json"
            and _ordered(body.get("start"), body.get("end"))
        )
    if path in ("/v1/inferences", "/v1/feedback") and method == "POST":
        return _storable_times(case.body)
    if path == "/v1/inferences" and method == "GET":
        return _calls_query(case.query or {})
    if path == "/v1/privacy/policy" and method == "PUT":
        return _applicable_policy(case.body)
    if path == "/v1/queues" and method == "POST":
        return _valid_queue(case.body)
    if path == "/v1/monitors" and method == "POST":
        return _derivable(case.body)
    if path == "/v1/datasets" and method == "POST":
        return _ordered((case.query or {}).get("since"), (case.query or {}).get("until"))
    if path == "/v1/evaluators/{evaluator_id}/backfill" and method == "POST" and isinstance(case.body, dict):
        return _ordered(case.body.get("since"), case.body.get("until"))
    if path == "/v1/evaluators/{evaluator_id}/agreement":
        query = case.query or {}  # 'to' defaults to now
        if query.get("against") == "label":
            # "422 for an output type `against` cannot compare": fuzzed evaluators are code checks, which
            # give scores, never labels (``_shape``)
            return False
        return _ordered(query.get("from"), query.get("to") or datetime.now(UTC).isoformat())
    if path == "/v1/evaluators/{evaluator_id}" and method == "PATCH" and isinstance(case.body, dict):
        return set(case.body) <= _EVALUATOR_PATCH_ALONE
    if path == "/v1/monitors/{monitor_id}" and method == "PATCH" and isinstance(case.body, dict):
        # the stateful phase builds bodies without ``map_case``: keep only what is valid on its own
        return set(case.body) <= _PATCH_ALONE
    query = case.query or {}
    if path == "/v1/stats/{family}" and query.get("metric") is not None:
        # the family's metrics ("422 for a metric the family does not have"): the family is a path parameter
        family = (case.path_parameters or {}).get("family")
        if family not in METRICS or query["metric"] not in METRICS[family]:
            return False
    return _ordered(query.get("since"), query.get("until"))


def _shape(case: Any) -> Any:
    if not _positive(case) or not isinstance(case.body, dict):
        return case
    method, path = case.operation.method.upper(), case.operation.path
    if path == "/v1/monitors" and method == "POST":
        case.body = {**case.body, "channels": []}  # targets must resolve (to public addresses): no DNS here
    elif path == "/v1/monitors/{monitor_id}" and method == "PATCH":
        case.body = {name: value for name, value in case.body.items() if name in _PATCH_ALONE}
    elif path == "/v1/keys" and method == "POST" and case.body.get("expires_at") is not None:
        # "in the future, else 422": relative to the server's clock, which no schema can say
        case.body = {**case.body, "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()}
    elif path == "/v1/evaluators" and method == "POST":
        kind_fields = ("judge", "template", "prompt_template", "output", "function")
        case.body = {**{k: v for k, v in case.body.items() if k not in kind_fields}, "kind": "code"}
        case.body["code"] = {"check": "json_valid"}
    elif path == "/v1/evaluators/{evaluator_id}" and method == "PATCH":
        case.body = {name: value for name, value in case.body.items() if name in _EVALUATOR_PATCH_ALONE}
    elif path == "/v1/monitors/{monitor_id}/snoozes/{model}" and method == "PUT":
        # "in the future, at most 90 days ahead": relative to the server's clock, which no schema can say
        case.body = {**case.body, "until": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}
    return case


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    return _shape(case)


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    """Again just before the request: the stateful phase fills bodies from links to earlier responses
    after ``map_case`` (seen: ``{"metric": "spend_anomaly"}`` copied from a cost monitor into a PATCH of a
    drift monitor, a 422 the fuzzer then called a rejected valid request)."""
    _shape(case)
