"""OTLP log records → feedback records and prompt/response texts; metric exports counted.

* A ``gen_ai.evaluation.result`` log record becomes feedback on the inference of its span
  (``inference_id`` from the log's trace and span id), whether it arrives before or after the span.
* Content events (the ``gen_ai.client.inference.operation.details`` event, or the older per-message
  events, gathered per span within one export) become the prompt and response of their span's
  inference (joined in storage: ``streams.storage.otlp_texts``); the text is read as spans' is
  (``streams.otlp.mapping``).
* Every metric data point is dropped: loopwatch reads GenAI usage from the spans.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec
import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from schemas import limits
from schemas.events import feedback_value
from schemas.records import FeedbackRecord
from streams.otlp.mapping import (
    DETAILS_EVENT,
    INPUT_MESSAGES,
    OUTPUT_MESSAGES,
    SYSTEM_INSTRUCTIONS,
    Attributes,
    Mapped,
    Rejection,
    Value,
    _clip,
    _first,
    _name,
    _number,
    _parts_text,
    _render,
    _texts,
    _timestamp,
    any_value,
)
from streams.storage.otlp_texts import LogTexts

# Content captured "via events": the details event, and the per-message events instrumentations emitted
# before it (earlier opentelemetry-instrumentation-openai-v2 releases): prompt messages by role; the choice.
LEGACY_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
LEGACY_CHOICE_EVENT = "gen_ai.choice"
CONTENT_EVENTS = frozenset({DETAILS_EVENT, LEGACY_CHOICE_EVENT, *LEGACY_MESSAGE_EVENTS})

EVALUATION_EVENT = "gen_ai.evaluation.result"
EVALUATION_NAME = "gen_ai.evaluation.name"
EVALUATION_SCORE = "gen_ai.evaluation.score.value"
EVALUATION_LABEL = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION = "gen_ai.evaluation.explanation"


def _index(attributes: Iterable[KeyValue]) -> dict[str, AnyValue]:
    return {item.key: item.value for item in attributes}


# --- evaluation log records → feedback records ----------------------------------------------------------


def _feedback_id(inference_id: str, name: str) -> str:
    return f"otel-eval-{inference_id}-{hashlib.blake2b(name.encode(), digest_size=8).hexdigest()}"


def evaluation_record(
    event_name: str, attrs: Attributes, trace_id: bytes, span_id: bytes, nanos: int, project: str
) -> FeedbackRecord | str | None:
    """Feedback from a ``gen_ai.evaluation.result`` event, a reason it cannot be one, or None (other logs)."""
    if event_name != EVALUATION_EVENT:
        return None
    if len(trace_id) != 16 or len(span_id) != 8:
        return "evaluation without the trace and span of its inference"
    inference_id = trace_id.hex() + span_id.hex()
    name = _name(_first((EVALUATION_NAME,), attrs))
    if name is None:
        return f"evaluation of {inference_id}: no {EVALUATION_NAME}"
    score = _number(_first((EVALUATION_SCORE,), attrs))
    label = _name(_first((EVALUATION_LABEL,), attrs))
    explanation = _name(_first((EVALUATION_EXPLANATION,), attrs))
    if score is not None:
        kind: str = "score"
        value: float | int | str = score
        text = " — ".join(part for part in (label, explanation) if part) or None
    elif label is not None:
        kind, value, text = "label", _clip(label, limits.MAX_NAME_LENGTH), explanation
    else:
        return f"evaluation {name!r} of {inference_id}: neither {EVALUATION_SCORE} nor {EVALUATION_LABEL}"
    values = {
        "feedback_id": _feedback_id(inference_id, name),
        "project": project,
        "inference_id": inference_id,
        "timestamp": _timestamp(nanos) or datetime.now(UTC),
        "kind": kind,
        "value": value,
        "name": name,
        "text": None if text is None else _clip(text, limits.MAX_FEEDBACK_TEXT_CHARS),
        "source": "evaluator",
    }
    try:
        record = msgspec.convert(values, FeedbackRecord)
        record.value = feedback_value(record.kind, record.value, record.name, record.text)
    except (msgspec.ValidationError, ValueError) as exc:
        return f"evaluation {name[:64]!r} of {inference_id}: {exc}"
    if isinstance(record.value, float) and not math.isfinite(record.value):
        return f"evaluation {name[:64]!r} of {inference_id}: score must be finite"
    return record


@dataclass(slots=True)
class MappedLogs(Mapped[FeedbackRecord]):
    """What a logs export became: feedback records, and the texts to join to their inferences."""

    texts: list[LogTexts] = field(default_factory=list)


@dataclass(slots=True)
class _Content:
    prompt: str | None = None
    response: str | None = None
    prompt_turns: list[tuple[str | None, str]] = field(default_factory=list)
    response_turns: list[tuple[str | None, str]] = field(default_factory=list)


def _message_text(message: Value) -> str:
    """The text of one legacy message body (``content`` as text, parts, or anything else as JSON)."""
    content = message.get("content") if isinstance(message, dict) else message
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return _parts_text(content)
    return "" if content is None else orjson.dumps(content, default=str).decode()


def _add_content(content: _Content, event_name: str, attrs: Attributes, body: AnyValue) -> None:
    if event_name == DETAILS_EVENT:
        found = {
            key: any_value(attrs[key]) for key in (SYSTEM_INSTRUCTIONS, INPUT_MESSAGES, OUTPUT_MESSAGES) if key in attrs
        }
        prompt, response = _texts(found, {}, [])
        content.prompt = content.prompt or prompt
        content.response = content.response or response
    elif event_name == LEGACY_CHOICE_EVENT:
        message = any_value(body)
        message = message.get("message", message) if isinstance(message, dict) else message
        content.response_turns.append((None, _message_text(message)))
    else:
        content.prompt_turns.append((LEGACY_MESSAGE_EVENTS[event_name], _message_text(any_value(body))))


def _log_rejection(reason: str, log: Any, event_name: str, attrs: Attributes) -> Rejection:
    return Rejection(reason, log.trace_id.hex(), log.span_id.hex(), event_name[:200], tuple(attrs))


def map_logs(request: ExportLogsServiceRequest, project: str) -> MappedLogs:
    """Every log record of an export: evaluations → feedback or rejections; content events (the
    ``gen_ai.client.inference.operation.details`` event, or the older per-message events, gathered per
    span within the export) → texts for their inference; other records → ignored."""
    mapped = MappedLogs()
    contents: dict[str, _Content] = {}
    for resource_logs in request.resource_logs:
        for scope_logs in resource_logs.scope_logs:
            for log in scope_logs.log_records:
                attrs = _index(log.attributes)
                event_name = log.event_name or _name(_first(("event.name",), attrs)) or ""
                if event_name in CONTENT_EVENTS:
                    if len(log.trace_id) != 16 or len(log.span_id) != 8:
                        reason = f"{event_name} without the trace and span of its inference"
                        mapped.reject(reason, _log_rejection(reason, log, event_name, attrs))
                        continue
                    inference_id = log.trace_id.hex() + log.span_id.hex()
                    _add_content(contents.setdefault(inference_id, _Content()), event_name, attrs, log.body)
                    continue
                outcome = evaluation_record(
                    event_name,
                    attrs,
                    log.trace_id,
                    log.span_id,
                    log.time_unix_nano or log.observed_time_unix_nano,
                    project,
                )
                if outcome is None:
                    mapped.ignored += 1
                elif isinstance(outcome, str):
                    mapped.reject(outcome, _log_rejection(outcome, log, event_name, attrs))
                else:
                    mapped.records.append(outcome)
    for inference_id, content in contents.items():
        prompt = content.prompt or _render(content.prompt_turns)
        response = content.response or _render(content.response_turns)
        if prompt or response:
            mapped.texts.append(
                LogTexts(
                    inference_id,
                    None if prompt is None else _clip(prompt, limits.MAX_TEXT_CHARS),
                    None if response is None else _clip(response, limits.MAX_TEXT_CHARS),
                )
            )
    return mapped


# --- metrics ---------------------------------------------------------------------------------------------


def count_data_points(request: ExportMetricsServiceRequest) -> int:
    """The data points of an export (all of them are dropped: loopwatch reads GenAI metrics from spans)."""
    points = 0
    for resource_metrics in request.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    points += len(getattr(metric, kind).data_points)
    return points
