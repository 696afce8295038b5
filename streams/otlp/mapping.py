"""OTLP spans → inference records, driven by one table of attribute names (log records: ``logs``).

Each record field lists the attributes that may carry it, first present wins: the current GenAI
semantic conventions, then their deprecated names, then OpenLLMetry, OpenInference and OpenLIT. The
README's "Send OpenTelemetry" table is ``markdown_table()`` of the same tables (a test keeps them equal).

* A span is GenAI when it names an operation, a provider or a model; other spans (HTTP, database,
  framework spans) are counted as ignored, never as errors.
* A GenAI span that cannot become a valid event (no model, no ids, a value out of range) is rejected
  with a reason; the rest of its export is kept (OTLP ``partial_success``). Each rejection also keeps
  what identifies the item (ids, name, attribute keys: never values) for its dead letter.
* One requested model is one model whichever convention reports it: the requested name wins over the
  response's (OpenInference's ``llm.invocation_parameters`` over its ``llm.model_name``), which is a tag.
* ``event_id`` is the trace id and span id in hex, so a re-exported span replaces itself.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, NamedTuple, TypeAlias, TypeVar

import msgspec
import orjson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from schemas import limits
from schemas.events import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP
from schemas.records import FeedbackRecord, InferenceRecord
from streams.otlp.payloads import as_trace_view

R = TypeVar("R", InferenceRecord, FeedbackRecord)
Value = str | int | float | bool | bytes | list["Value"] | dict[str, "Value"] | None
Attributes = Mapping[str, AnyValue]  # a view's attribute map (or a dict of a log record's attributes)
# A span of the traces view (``streams.otlp.payloads.trace_view``): its class is built at run time from
# a descriptor, so it has no static attributes to check.
Span: TypeAlias = Any
TracesView: TypeAlias = Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_PROBLEMS = 5  # reasons quoted in partial_success.error_message
MAX_REJECTIONS = 100  # rejected items of one export kept as dead letters (all are counted)

# --- the tables ------------------------------------------------------------------------------------

# Record field ← span attributes, first present wins.
FIELDS: dict[str, tuple[str, ...]] = {
    "model": (
        "gen_ai.request.model",
        "llm.invocation_parameters",  # OpenInference: the requested model, a member of this JSON (MEMBERS)
        "gen_ai.response.model",
        "llm.model_name",
        "embedding.model_name",
        "llm.request.model",
        "llm.response.model",
    ),
    "provider": ("gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"),
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
        "llm.usage.prompt_tokens",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
        "llm.usage.completion_tokens",
    ),
    "cached_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cost_usd": ("gen_ai.usage.cost", "llm.cost.total"),
    "error_type": ("error.type", "exception.type"),
}

FIELD_NOTES = {
    "cost_usd": " (0 for a call with tokens is read as no cost: priced from the tokens, or unknown)",
    "model": " (the requested model first: the response's is `tags.response_model`)",
}

# Numeric attributes kept as features (profiled like any feature), with a unit conversion.
FEATURES: dict[str, tuple[tuple[str, ...], float]] = {
    "cache_creation_tokens": (
        (
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_write.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "llm.token_count.prompt_details.cache_write",
        ),
        1.0,
    ),
    "reasoning_tokens": (
        (
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",
            "llm.token_count.completion_details.reasoning",
        ),
        1.0,
    ),
    "time_to_first_chunk_ms": (("gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token"), 1000.0),
}

# Tag ← span attributes (then resource attributes), first present wins.
TAGS: dict[str, tuple[str, ...]] = {
    "operation": ("gen_ai.operation.name", "llm.request.type", "openinference.span.kind"),
    "conversation_id": ("gen_ai.conversation.id", "session.id"),
    "user_id": ("user.id", "enduser.id", "gen_ai.user.id", "gen_ai.user", "gen_ai.request.user"),
    "response_model": ("gen_ai.response.model", "llm.model_name"),
    "response_id": ("gen_ai.response.id",),
    "application": ("gen_ai.application_name",),
    "agent": ("gen_ai.agent.name",),
    "tool": ("gen_ai.tool.name", "tool.name"),
    "service": ("service.name",),
    "environment": ("deployment.environment.name", "deployment.environment", "gen_ai.environment"),
}

MODEL_VERSION: tuple[str, ...] = ("service.version",)  # resource attribute → model_version

# Attributes holding a JSON object, of which a slot takes the first member present. OpenInference puts
# the response's model (``gpt-4o-mini-2024-07-18``) in ``llm.model_name`` when the response names one
# and the requested model otherwise (streamed and failed calls); the requested model is always in its
# invocation parameters, so one requested model is one loopwatch model (the response's is a tag).
MEMBERS: dict[str, tuple[str, ...]] = {"llm.invocation_parameters": ("model", "model_name")}

# Prompt / response text, in order of preference: semconv attributes (or the
# ``gen_ai.client.inference.operation.details`` span event), OpenLLMetry's indexed attributes,
# OpenInference's indexed messages, then OpenInference's raw values.
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
DETAILS_EVENT = "gen_ai.client.inference.operation.details"


class Indexed(NamedTuple):
    """Messages as indexed attributes: ``{prefix}{i}{role}``, ``{prefix}{i}{content}``, and each tool call
    as ``{prefix}{i}{tool_calls}{j}{tool_name}`` / ``…{tool_arguments}``."""

    prefix: str
    role: str
    content: str
    tool_calls: str
    tool_name: str
    tool_arguments: str


_OPENLLMETRY = (".role", ".content", ".tool_calls.", ".name", ".arguments")
_OPENINFERENCE = (".message.role", ".message.content", ".message.tool_calls.")
_OPENINFERENCE_TOOL = (".tool_call.function.name", ".tool_call.function.arguments")
INDEXED_PROMPT = (
    Indexed("gen_ai.prompt.", *_OPENLLMETRY),
    Indexed("llm.input_messages.", *_OPENINFERENCE, *_OPENINFERENCE_TOOL),
)
INDEXED_RESPONSE = (
    Indexed("gen_ai.completion.", *_OPENLLMETRY),
    Indexed("llm.output_messages.", *_OPENINFERENCE, *_OPENINFERENCE_TOOL),
)
# OpenInference's raw values, used when no message says more, unless their mime type is JSON: then they
# are a framework's serialisation (LangChain's, 600+ characters), neither a prompt nor a response.
RAW_PROMPT, RAW_RESPONSE = "input.value", "output.value"
RAW_MIME_TYPES = {RAW_PROMPT: "input.mime_type", RAW_RESPONSE: "output.mime_type"}
JSON_MIME_TYPE = "application/json"

# A span is GenAI when it carries any ``gen_ai.*`` attribute or a model attribute (``FIELDS["model"]``).
# OpenInference span kinds that are not model calls (chains, retrievers…) are not inferences.
OPENINFERENCE_KIND = "openinference.span.kind"
OPENINFERENCE_MODEL_KINDS = frozenset({"LLM", "EMBEDDING"})
# Operations without a model of their own: the model is named after the tool or agent.
MODEL_FALLBACKS: dict[str, tuple[str, str]] = {
    "execute_tool": ("gen_ai.tool.name", "tool:"),
    "invoke_agent": ("gen_ai.agent.name", "agent:"),
    "create_agent": ("gen_ai.agent.name", "agent:"),
    "invoke_workflow": ("gen_ai.workflow.name", "workflow:"),
}


def _cell(keys: tuple[str, ...]) -> str:
    return ", ".join(
        f"`{key}` ({' / '.join(f'`{member}`' for member in MEMBERS[key])} in it)" if key in MEMBERS else f"`{key}`"
        for key in keys
    )


def _indexed_cell(pattern: Indexed) -> str:
    calls = f"{pattern.prefix}{{i}}{pattern.tool_calls}{{j}}"
    return (
        f"`{pattern.prefix}{{i}}{pattern.content}` and its tool calls "
        f"(`{calls}{pattern.tool_name}`, `{pattern.tool_arguments}`)"
    )


def markdown_table() -> str:
    """The mapping as the README shows it."""
    rows = ["| loopwatch field | OpenTelemetry attributes (first present wins) |", "|---|---|"]
    rows.append("| `event_id` | trace id + span id (hex): a re-export replaces the event |")
    rows.append("| `timestamp`, `latency_ms` | span start time; end − start |")
    rows.append("| `status` | `error` when the span status is ERROR or `error.type` is set |")
    rows.extend(f"| `{name}` | {_cell(keys)}{FIELD_NOTES.get(name, '')} |" for name, keys in FIELDS.items())
    rows.append(
        "| `model` (no model) | "
        f"{', '.join(f'`{op}` → `{prefix}<{key}>`' for op, (key, prefix) in MODEL_FALLBACKS.items())} |"
    )
    rows.append(f"| `model_version` | resource {', '.join(f'`{key}`' for key in MODEL_VERSION)} |")
    rows.append(
        f"| `prompt` | `{SYSTEM_INSTRUCTIONS}` (unless a system message repeats it) + `{INPUT_MESSAGES}` "
        f"(span or `{DETAILS_EVENT}` event), "
        + ", ".join(_indexed_cell(pattern) for pattern in INDEXED_PROMPT)
        + f", `{RAW_PROMPT}` (not when `{RAW_MIME_TYPES[RAW_PROMPT]}` is JSON) |"
    )
    rows.append(
        f"| `response` | `{OUTPUT_MESSAGES}`, "
        + ", ".join(_indexed_cell(pattern) for pattern in INDEXED_RESPONSE)
        + f", `{RAW_RESPONSE}` (not when `{RAW_MIME_TYPES[RAW_RESPONSE]}` is JSON) |"
    )
    for name, (keys, scale) in FEATURES.items():
        unit = " (s → ms)" if scale == 1000.0 else ""
        rows.append(f"| `features.{name}` | {', '.join(f'`{key}`' for key in keys)}{unit} |")
    rows.extend(
        f"| `tags.{name}` | {', '.join(f'`{key}`' for key in keys)} (span, then resource) |"
        for name, keys in TAGS.items()
    )
    return "\n".join(rows) + "\n"


# --- results ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rejection:
    """A GenAI span or log record that could not become an event: why, and what it was (names and
    ids only: no attribute value, so no prompt text)."""

    reason: str
    trace_id: str = ""
    span_id: str = ""
    name: str = ""  # the span's name, or the log record's event name
    attributes: tuple[str, ...] = ()  # the attribute keys it carried

    def payload(self) -> bytes:
        return orjson.dumps(
            {
                "trace_id": self.trace_id,
                "span_id": self.span_id,
                "name": self.name,
                "attributes": sorted(self.attributes),
            }
        )


@dataclass(slots=True)
class Mapped(Generic[R]):
    """What an export became: records to publish, and counts for the response and the logs."""

    records: list[R] = field(default_factory=list)
    rejected: int = 0
    ignored: int = 0
    problems: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)  # the first MAX_REJECTIONS, kept as dead letters

    def reject(self, reason: str, what: Rejection | None = None) -> None:
        self.rejected += 1
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(reason)
        if len(self.rejections) < MAX_REJECTIONS:
            self.rejections.append(what or Rejection(reason))

    @property
    def message(self) -> str:
        if not self.rejected:
            return ""
        more = self.rejected - len(self.problems)
        return "; ".join(self.problems) + (f"; and {more} more" if more > 0 else "")


# --- attribute values ---------------------------------------------------------------------------------


def any_value(value: AnyValue) -> Value:
    """An OTLP ``AnyValue`` as a plain Python value (arrays → lists, key/value lists → dicts)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":  # the common case first
        return value.string_value
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


def _first(keys: tuple[str, ...], *scopes: Attributes) -> Value:
    for scope in scopes:
        for key in keys:
            found = scope.get(key)
            if found is not None:
                value = any_value(found)
                if value is not None and value != "":
                    return value
    return None


def _name(value: Value) -> str | None:
    if isinstance(value, str):
        return value or None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return None


def _number(value: Value) -> float | int | None:
    """Numbers, and numbers sent as strings; anything else is left out rather than failing the span."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return int(number) if number.is_integer() and abs(number) < 2**63 else number
    return None


def _tokens(value: Value) -> int | float | None:
    number = _number(value)
    if isinstance(number, float) and number.is_integer():
        return int(number)
    return number  # a fractional count fails validation: the span is rejected with the reason


def _cost(value: Value, input_tokens: float | None, output_tokens: float | None) -> float | int | None:
    """A reported cost; a zero cost for a call that used tokens is no cost at all (None, to be priced
    at ingest or counted as unknown): OpenLIT sends 0 when it could not load its price list."""
    cost = _number(value)
    if cost == 0 and ((input_tokens or 0) > 0 or (output_tokens or 0) > 0):
        return None
    return cost


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit]


# --- prompt and response text --------------------------------------------------------------------------


def _parts_text(parts: Value) -> str:
    """The text of a semconv message's parts (text parts; tool calls and results as compact JSON)."""
    if isinstance(parts, str):
        return parts
    texts: list[str] = []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        content = part.get("content")
        if kind in ("text", "reasoning", None) and isinstance(content, str):
            texts.append(content)
        elif kind == "tool_call":
            texts.append(_tool_call(part.get("name"), part.get("arguments")))
        elif kind == "tool_call_response":
            texts.append(orjson.dumps({"response": part.get("response")}, default=str).decode())
    return "\n".join(texts)


def _loads(value: Value) -> Value:
    """Message attributes are JSON strings (the SDKs) or structured values (the OTLP data model)."""
    if isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _render(turns: list[tuple[str | None, str]]) -> str | None:
    """One message: its text. Several: ``role: text`` per message, one after another."""
    turns = [(role, text) for role, text in turns if text]
    if not turns:
        return None
    if len(turns) == 1:
        return turns[0][1]
    return "\n".join(f"{role}: {text}" if role else text for role, text in turns)


def _semconv_messages(value: Value) -> list[tuple[str | None, str]]:
    value = _loads(value)
    if isinstance(value, str):
        return [(None, value)]
    turns: list[tuple[str | None, str]] = []
    for message in value if isinstance(value, list) else []:
        if isinstance(message, dict):
            role = message.get("role")
            parts = message.get("parts", message.get("content"))
            turns.append((role if isinstance(role, str) else None, _parts_text(parts)))
    return turns


def _tool_call(name: Value, arguments: Value) -> str:
    """A tool call as compact JSON, the same whichever convention carried it (arguments parsed when JSON)."""
    return orjson.dumps({"name": name, "arguments": _loads(arguments)}, default=str).decode()


def _indexed(attrs: Attributes, pattern: Indexed) -> list[tuple[str | None, str]]:
    """One ``Indexed`` pattern's messages (OpenLLMetry, OpenInference) in index order: each message's
    content, then its tool calls."""
    prefix = pattern.prefix
    contents: dict[int, str] = {}
    calls: dict[int, dict[int, str]] = {}
    for key in attrs:
        if not key.startswith(prefix):
            continue
        index, dot, tail = key[len(prefix) :].partition(".")
        if not index.isdigit() or not dot:
            continue
        tail = "." + tail
        if tail == pattern.content:
            content = any_value(attrs[key])
            contents[int(index)] = content if isinstance(content, str) else orjson.dumps(content, default=str).decode()
        elif tail.startswith(pattern.tool_calls) and tail.endswith(pattern.tool_name):
            call = tail[len(pattern.tool_calls) : len(tail) - len(pattern.tool_name)]
            if call.isdigit():
                arguments = attrs.get(key[: len(key) - len(pattern.tool_name)] + pattern.tool_arguments)
                text = _tool_call(any_value(attrs[key]), None if arguments is None else any_value(arguments))
                calls.setdefault(int(index), {})[int(call)] = text
    turns: list[tuple[str | None, str]] = []
    for number in sorted(contents.keys() | calls.keys()):
        role_key = f"{prefix}{number}{pattern.role}"
        role = _name(any_value(attrs[role_key])) if role_key in attrs else None
        texts = [contents[number]] if contents.get(number) else []
        texts.extend(text for _, text in sorted(calls.get(number, {}).items()))
        turns.append((role, "\n".join(texts)))
    return turns


def _prompt(scope: Mapping[str, Value]) -> str | None:
    """System instructions, then the input messages; instructions the messages already carry as a
    system message (OpenLIT sends them both ways) are not repeated."""
    messages = _semconv_messages(scope.get(INPUT_MESSAGES))
    system = scope.get(SYSTEM_INSTRUCTIONS)
    instructions = _parts_text(_loads(system)) if system is not None else ""
    if instructions and ("system", instructions) not in messages:
        messages.insert(0, ("system", instructions))
    return _render(messages)


def _raw(found: dict[str, Value], attrs: Attributes, key: str) -> str | None:
    """OpenInference's raw ``input.value`` / ``output.value``, unless its mime type says JSON."""
    mime = attrs.get(RAW_MIME_TYPES[key])
    if mime is not None and any_value(mime) == JSON_MIME_TYPE:
        return None
    return _name(found.get(key))


def _texts(
    found: dict[str, Value], indexed: Attributes, details: list[dict[str, Value]]
) -> tuple[str | None, str | None]:
    """Prompt and response from the span's attributes, then its details events (``details``), then the
    indexed attributes of ``indexed`` (the span's attribute map, scanned only if still needed)."""
    prompt: str | None = None
    response: str | None = None
    if INPUT_MESSAGES in found or SYSTEM_INSTRUCTIONS in found:
        prompt = _prompt(found)
    if OUTPUT_MESSAGES in found:
        response = _render(_semconv_messages(found[OUTPUT_MESSAGES]))
    for scope in details:
        if prompt is None and (INPUT_MESSAGES in scope or SYSTEM_INSTRUCTIONS in scope):
            prompt = _prompt(scope)
        if response is None and OUTPUT_MESSAGES in scope:
            response = _render(_semconv_messages(scope[OUTPUT_MESSAGES]))
    if (prompt is None or response is None) and any(key.startswith(_INDEXED_PREFIXES) for key in indexed):
        for pattern in INDEXED_PROMPT:
            prompt = prompt or _render(_indexed(indexed, pattern))
        for pattern in INDEXED_RESPONSE:
            response = response or _render(_indexed(indexed, pattern))
    if prompt is None:
        prompt = _raw(found, indexed, RAW_PROMPT)
    if response is None:
        response = _raw(found, indexed, RAW_RESPONSE)
    return (
        None if prompt is None else _clip(prompt, limits.MAX_TEXT_CHARS),
        None if response is None else _clip(response, limits.MAX_TEXT_CHARS),
    )


# --- spans → inference records ---------------------------------------------------------------------------


def _slots() -> dict[str, tuple[tuple[str, int], ...]]:
    """Attribute name → the slots it fills, with its rank there (lower wins): the tables, inverted."""
    slots: dict[str, list[tuple[str, int]]] = {}
    tables = [
        *FIELDS.items(),
        *((f"features.{name}", keys) for name, (keys, _) in FEATURES.items()),
        *((f"tags.{name}", keys) for name, keys in TAGS.items()),
        ("model_version", MODEL_VERSION),
    ]
    for slot, keys in tables:
        for rank, key in enumerate(keys):
            slots.setdefault(key, []).append((slot, rank))
    for key in (SYSTEM_INSTRUCTIONS, INPUT_MESSAGES, OUTPUT_MESSAGES, RAW_PROMPT, RAW_RESPONSE, OPENINFERENCE_KIND):
        slots.setdefault(key, []).append((key, 0))
    return {key: tuple(found) for key, found in slots.items()}


_SLOTS = _slots()
_KNOWN_KEYS = frozenset(_SLOTS)
_GENAI_KEYS = frozenset(key for key in _SLOTS if key.startswith("gen_ai."))
_UNRANKED = 1 << 30
_MODEL_NAMES = ", ".join([key for key in FIELDS["model"] if key not in MEMBERS][:3])  # quoted when none is there
_TAG_NAMES = {f"tags.{name}": name for name in TAGS}
_FEATURE_SLOTS = tuple((name, f"features.{name}", scale) for name, (_, scale) in FEATURES.items())
_INDEXED_PREFIXES = tuple(pattern.prefix for pattern in (*INDEXED_PROMPT, *INDEXED_RESPONSE))


def _gather(attributes: Attributes) -> tuple[dict[str, Value], bool]:
    """Every slot's winning value (the first present, non-empty attribute of its list), and whether
    any ``gen_ai.*`` attribute is there.

    ``attributes`` is an attribute map of the traces view (``streams.otlp.payloads.trace_view``): the
    keys the tables name are picked out in C (a set intersection over the map's keys) and only their
    values are decoded. This is the hot loop of OTLP ingest (~7 µs of CPU per bench span; walking
    every attribute through upb's ``KeyValue``/``AnyValue`` wrappers cost ~8.5).
    """
    found: dict[str, Value] = {}
    ranks: dict[str, int] = {}
    present = _KNOWN_KEYS.intersection(attributes)
    for key in present:
        raw = attributes[key]
        value: Value = raw.string_value or any_value(raw)  # "" when it holds another kind
        if key in MEMBERS:
            value = _member(value, MEMBERS[key])
        if value is None or value == "":
            continue
        for slot, rank in _SLOTS[key]:
            if rank < ranks.get(slot, _UNRANKED):
                found[slot] = value
                ranks[slot] = rank
    genai = not _GENAI_KEYS.isdisjoint(present) or (
        len(present) < len(attributes) and any(key.startswith("gen_ai.") for key in attributes)
    )
    return found, genai


def _member(value: Value, members: tuple[str, ...]) -> Value:
    """The first of ``members`` in a JSON object attribute (a JSON string or a key/value list), or None."""
    document = _loads(value)
    if isinstance(document, dict):
        for member in members:
            found = document.get(member)
            if isinstance(found, str | int | float) and not isinstance(found, bool) and found != "":
                return found
    return None


def _timestamp(nanos: int) -> datetime | None:
    try:
        stamp = _EPOCH + timedelta(microseconds=nanos // 1000)
    except OverflowError:
        return None
    return stamp if EARLIEST_TIMESTAMP <= stamp < LATEST_TIMESTAMP else None


def _events(span: Span) -> tuple[list[dict[str, Value]], str | None]:
    """The span's details events (gathered) and the error type of its first ``exception`` event."""
    details: list[dict[str, Value]] = []
    exception: str | None = None
    for event in span.events:
        name = event.name
        if name == DETAILS_EVENT:
            details.append(_gather(event.attributes)[0])
        elif name == "exception" and exception is None:
            exception = _name(_gather(event.attributes)[0].get("error_type")) or ""
    return details, exception


def _error_type(found: dict[str, Value], exception: str | None, span: Span) -> str | None:
    error = _name(found.get("error_type")) or exception or None
    if error is None and span.status.code == Status.STATUS_CODE_ERROR:
        error = "error"
    return None if error is None else _clip(error, limits.MAX_NAME_LENGTH)


def _tags(found: dict[str, Value], tags: dict[str, str]) -> dict[str, str]:
    """``tags`` (the resource's) updated with the span's own."""
    for slot, value in found.items():
        name = _TAG_NAMES.get(slot)
        if name is not None:
            text = _name(value)
            if text is not None:
                tags[name] = text if len(text) <= limits.MAX_TAG_VALUE_LENGTH else text[: limits.MAX_TAG_VALUE_LENGTH]
    return tags


def _features(found: dict[str, Value]) -> dict[str, float | int]:
    features: dict[str, float | int] = {}
    for name, slot, scale in _FEATURE_SLOTS:
        if slot in found:
            number = _number(found[slot])
            if number is not None and math.isfinite(number):
                features[name] = number * scale if scale != 1.0 else number
    return features


@dataclass(frozen=True, slots=True)
class ResourceContext:
    """What a resource gives every span under it (computed once per resource)."""

    tags: dict[str, str]
    model_version: str | None

    @classmethod
    def of(cls, attributes: Attributes) -> ResourceContext:
        found = _gather(attributes)[0]
        return cls(_tags(found, {}), _name(found.get("model_version")))


def _span_values(
    span: Span, resource: ResourceContext, project: str, latest: datetime | None = None
) -> dict[str, object] | str | None:
    """The fields of the inference a span describes (to validate as an ``InferenceRecord``), a reason
    it cannot be one (str), or None for a non-GenAI span."""
    attributes = span.attributes
    found, genai = _gather(attributes)
    kind = found.get(OPENINFERENCE_KIND)
    if kind is not None:
        genai = kind in OPENINFERENCE_MODEL_KINDS
    elif not genai:
        genai = "model" in found
    if not genai:
        return None
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or len(span_id) != 8:
        return f"span {span_id.hex() or '?'}: trace_id must be 16 bytes and span_id 8 bytes"
    tags = _tags(found, dict(resource.tags))
    model = _name(found.get("model"))
    if model is None and tags.get("operation") in MODEL_FALLBACKS:
        key, prefix = MODEL_FALLBACKS[tags["operation"]]
        named = _name(any_value(attributes[key])) if key in attributes else None
        model = None if named is None else prefix + named
    if model is None:
        return f"span {span_id.hex()}: no model ({_MODEL_NAMES})"
    started = span.start_time_unix_nano
    timestamp = _timestamp(started)
    if timestamp is None:
        return f"span {span_id.hex()}: start time missing or outside 2000..2200"
    if latest is not None and timestamp > latest:
        ahead = timestamp.isoformat(timespec="seconds")
        return f"span {span_id.hex()}: start time {ahead} is ahead of the server's clock by more than the allowed skew"
    ended = span.end_time_unix_nano
    details, exception = _events(span) if len(span.events) else ((), None)
    error_type = _error_type(found, exception, span)
    prompt, response = _texts(found, attributes, details)  # type: ignore[arg-type]
    get = found.get
    input_tokens, output_tokens = _tokens(get("input_tokens")), _tokens(get("output_tokens"))
    return {
        "event_id": trace_id.hex() + span_id.hex(),
        "project": project,
        "model": model,
        "model_version": resource.model_version,
        "provider": _name(get("provider")),
        "timestamp": timestamp,
        "latency_ms": (ended - started) / 1e6 if ended >= started else None,
        "status": "error" if error_type is not None else "ok",
        "error_type": error_type,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cached_tokens": _tokens(get("cached_tokens")),
        "cost_usd": _cost(get("cost_usd"), input_tokens, output_tokens),
        "prompt": prompt,
        "response": response,
        "features": _features(found),
        "tags": tags,
    }


def _validated(values: dict[str, object]) -> InferenceRecord | str:
    try:
        return msgspec.convert(values, InferenceRecord)
    except msgspec.ValidationError as exc:
        return f"span {str(values['event_id'])[32:]}: {exc}"


def map_traces(request: TracesView, project: str, latest: datetime | None = None) -> Mapped[InferenceRecord]:
    """Every span of an export: GenAI spans → records or rejections, other spans → ignored.

    ``request`` is the traces view ``streams.otlp.payloads.decode_traces`` returns (an
    ``ExportTraceServiceRequest`` is converted to it first).

    ``latest``: spans that start after it are rejected (the server's clock plus the allowed skew).

    The records are validated by the same ``msgspec`` structs as the JSON fast path
    (``schemas.records``), in one call for the whole export; only when that fails are the spans
    validated one by one, to keep the valid ones and name the others.
    """
    if isinstance(request, ExportTraceServiceRequest):
        request = as_trace_view(request)
    mapped: Mapped[InferenceRecord] = Mapped()
    candidates: list[dict[str, object]] = []
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = ResourceContext.of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                outcome = _span_values(span, resource, project, latest)
                if outcome is None:
                    mapped.ignored += 1
                elif isinstance(outcome, str):
                    mapped.reject(outcome, _span_rejection(outcome, span))
                else:
                    candidates.append(outcome)
                    spans.append(span)
    try:
        mapped.records = msgspec.convert(candidates, list[InferenceRecord])
    except msgspec.ValidationError:
        for values, span in zip(candidates, spans, strict=True):
            record = _validated(values)
            if isinstance(record, str):
                mapped.reject(record, _span_rejection(record, span))
            else:
                mapped.records.append(record)
    return mapped


def _span_rejection(reason: str, span: Span) -> Rejection:
    return Rejection(reason, span.trace_id.hex(), span.span_id.hex(), span.name[:200], tuple(span.attributes))
