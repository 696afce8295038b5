"""The OTLP → record mapping on spans made by the OpenTelemetry SDK, one convention at a time."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from schemas.records import InferenceRecord
from streams.otlp.mapping import Mapped, map_traces, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"


def _map(
    attributes: dict, events: list[tuple[str, dict]] = (), resource: dict | None = None
) -> Mapped[InferenceRecord]:  # type: ignore[assignment]
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create(resource or {"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("op", attributes=attributes) as span:
        for name, event_attributes in events:
            span.add_event(name, event_attributes)
    return map_traces(encode_spans(list(memory.get_finished_spans())), "p")


def _one(attributes: dict, **kwargs: object) -> InferenceRecord:
    mapped = _map(attributes, **kwargs)  # type: ignore[arg-type]
    assert (mapped.rejected, mapped.ignored) == (0, 0), mapped.problems
    [record] = mapped.records
    return record


class TestConventions:
    """Each instrumentation family's attributes land in the same fields."""

    def test_legacy_openllmetry_attributes(self) -> None:
        record = _one(
            {
                "gen_ai.system": "openai",
                "llm.request.type": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.prompt_tokens": 40,
                "gen_ai.usage.completion_tokens": 9,
                "gen_ai.usage.cache_read_input_tokens": 8,
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "Be brief.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Hi?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "Hello.",
            }
        )
        assert (record.model, record.provider, record.tags["operation"]) == ("gpt-4o", "openai", "chat")
        assert (record.input_tokens, record.output_tokens, record.cached_tokens) == (40, 9, 8)
        assert record.prompt == "system: Be brief.\nuser: Hi?"
        assert record.response == "Hello."

    def test_openlit_attributes(self) -> None:
        record = _one(
            {
                "gen_ai.system": "anthropic",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.usage.input_tokens": 10,
                "gen_ai.usage.output_tokens": 5,
                "gen_ai.usage.cost": 0.0125,
                "gen_ai.application_name": "helpdesk",
                "gen_ai.environment": "staging",
            }
        )
        assert (record.provider, record.cost_usd) == ("anthropic", 0.0125)
        assert (record.tags["application"], record.tags["environment"]) == ("helpdesk", "staging")

    def test_openinference_indexed_messages_win_over_raw_values(self) -> None:
        record = _one(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "gpt-4o-mini",
                "llm.provider": "openai",
                "llm.token_count.prompt": 12,
                "llm.token_count.completion": 3,
                "llm.token_count.prompt_details.cache_read": 2,
                "llm.token_count.completion_details.reasoning": 7,
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "Q",
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.content": "A",
                "input.value": '{"messages": []}',
                "output.value": '{"choices": []}',
                "session.id": "s-1",
                "user.id": "u-9",
            }
        )
        assert (record.model, record.input_tokens, record.output_tokens, record.cached_tokens) == (
            "gpt-4o-mini",
            12,
            3,
            2,
        )
        assert (record.prompt, record.response) == ("Q", "A")
        assert record.features["reasoning_tokens"] == 7
        assert (record.tags["conversation_id"], record.tags["user_id"]) == ("s-1", "u-9")

    def test_openinference_chain_spans_are_ignored(self) -> None:
        mapped = _map({"openinference.span.kind": "CHAIN", "input.value": "x"})
        assert (mapped.records, mapped.rejected, mapped.ignored) == ([], 0, 1)

    def test_semconv_details_event_tool_call_and_extras(self) -> None:
        record = _one(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.time_to_first_chunk": 0.25,
                "gen_ai.usage.cache_creation.input_tokens": 30,
                "gen_ai.usage.reasoning.output_tokens": 4,
                "error.type": "timeout",
            },
            events=[
                (
                    "gen_ai.client.inference.operation.details",
                    {
                        "gen_ai.system_instructions": '[{"type": "text", "content": "Be kind."}]',
                        "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]',
                        "gen_ai.output.messages": '[{"role": "assistant", "parts": [{"type": "tool_call", "name": "weather", "arguments": {"city": "Oslo"}}]}]',
                    },
                )
            ],
        )
        assert record.prompt == "system: Be kind.\nuser: Weather?"
        assert record.response == '{"name":"weather","arguments":{"city":"Oslo"}}'
        assert record.features == {"time_to_first_chunk_ms": 250.0, "cache_creation_tokens": 30, "reasoning_tokens": 4}
        assert (record.status, record.error_type) == ("error", "timeout")

    def test_execute_tool_and_invoke_agent_are_named_after_the_tool_and_agent(self) -> None:
        tool = _one({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"})
        agent = _one({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"})
        assert (tool.model, agent.model) == ("tool:search", "agent:planner")

    def test_resource_attributes_become_tags_and_model_version(self) -> None:
        record = _one(
            {"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small"},
            resource={"service.name": "indexer", "service.version": "1.4", "deployment.environment": "dev"},
        )
        assert record.model_version == "1.4"
        assert (record.tags["service"], record.tags["environment"], record.tags["operation"]) == (
            "indexer",
            "dev",
            "embeddings",
        )


class TestEdges:
    """The edges of the rules the recorded instrumentations need (tests/api/test_otlp_recordings.py)."""

    def test_invocation_parameters_without_a_model_leave_llm_model_name(self) -> None:
        record = _one(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "local-llama",
                "llm.invocation_parameters": '{"temperature": 0.2}',
            }
        )
        assert (record.model, record.tags["response_model"]) == ("local-llama", "local-llama")
        not_json = _map({"openinference.span.kind": "LLM", "llm.invocation_parameters": "model=x"})
        assert (not_json.records, not_json.rejected) == ([], 1)  # not JSON: it names no model

    def test_raw_values_count_unless_json(self) -> None:
        text = _one({"openinference.span.kind": "LLM", "llm.model_name": "m", "output.value": "plain answer"})
        assert text.response == "plain answer"
        dumped = _one(
            {
                "openinference.span.kind": "LLM",
                "llm.model_name": "m",
                "output.value": '{"generations": []}',
                "output.mime_type": "application/json",
            }
        )
        assert dumped.response is None

    def test_zero_cost_stays_zero_without_tokens_and_other_costs_are_kept(self) -> None:
        base = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
        assert _one({**base, "gen_ai.usage.cost": 0}).cost_usd == 0
        assert _one({**base, "gen_ai.usage.cost": 0, "gen_ai.usage.input_tokens": 5}).cost_usd is None
        assert _one({**base, "gen_ai.usage.cost": 0.5, "gen_ai.usage.input_tokens": 5}).cost_usd == 0.5

    def test_system_instructions_other_than_the_system_message_are_kept(self) -> None:
        record = _one(
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.system_instructions": '[{"type": "text", "content": "Be kind."}]',
                "gen_ai.input.messages": '[{"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},'
                ' {"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]',
            }
        )
        assert record.prompt == "system: Be kind.\nsystem: Be brief.\nuser: Hi"

    def test_rejections_keep_ids_and_attribute_keys(self) -> None:
        mapped = _map({"gen_ai.operation.name": "chat", "gen_ai.input.messages": "secret prompt"})
        [rejection] = mapped.rejections
        assert rejection.reason.endswith("no model (gen_ai.request.model, gen_ai.response.model, llm.model_name)")
        assert (len(rejection.trace_id), len(rejection.span_id), rejection.name) == (32, 16, "op")
        assert b"secret prompt" not in rejection.payload()
        assert b"gen_ai.input.messages" in rejection.payload()


def test_readme_documents_the_mapping_table() -> None:
    """The README's table is generated from the mapping's own tables: change one, regenerate the other."""
    assert markdown_table() in README.read_text()
