"""Record what one real GenAI instrumentation exports over OTLP/HTTP (run by ``scripts/record-otlp``).

Runs inside a throwaway venv holding that instrumentation only (their OpenTelemetry pins conflict with
each other and with loopwatch's), so it imports nothing of loopwatch. It starts two servers on 127.0.0.1:

* an OpenAI-compatible ``POST /v1/chat/completions`` that answers as OpenAI does: the response names the
  dated model (``gpt-4o-mini`` → ``gpt-4o-mini-2024-07-18``), streams server-sent chunks with a usage
  chunk when asked, returns a tool call when the request offers tools, and a 400 when the last user
  message says ``FAIL``;
* an OTLP/HTTP receiver that keeps every export body it gets (traces, logs, metrics) and answers 200.

It then makes four calls through the instrumented client (plain, streamed, tool call, failed), shuts the
instrumentation's providers down so everything is flushed, and writes the exports as OTLP JSON (hex ids)
to the output file:  ``python record_otlp_driver.py {openllmetry|openlit|openinference-langchain} OUT``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATED = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
SYSTEM = "You are a terse travel assistant."
PLAIN, STREAMED, TOOL, FAILED = "Capital of France?", "Count to three.", "Weather in Paris?", "FAIL this call"
USER = "user-42"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


class FakeOpenAI(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers["content-length"])))
        model = DATED.get(request["model"], request["model"])
        last = request["messages"][-1]
        question = last.get("content") if isinstance(last.get("content"), str) else ""
        base = {"id": "chatcmpl-rec1", "created": 1_780_000_000, "model": model, "system_fingerprint": "fp_rec"}
        usage = {
            "prompt_tokens": 31,
            "completion_tokens": 9,
            "total_tokens": 40,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        if question == FAILED:
            error = {"message": "The server could not answer", "type": "invalid_request_error", "code": "bad_request"}
            self._json(400, {"error": error})
        elif request.get("tools"):
            call = {
                "id": "call_rec1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [call]}
            choice = {"index": 0, "message": message, "finish_reason": "tool_calls", "logprobs": None}
            self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        elif request.get("stream"):
            self._stream(base, usage, (request.get("stream_options") or {}).get("include_usage", False))
        else:
            message = {"role": "assistant", "content": "Paris.", "refusal": None}
            choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
            self._json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})

    def _stream(self, base: dict, usage: dict, include_usage: bool) -> None:
        chunks = []
        for index, text in enumerate(["One,", " two,", " three."]):
            delta = {"role": "assistant", "content": text} if index == 0 else {"content": text}
            chunks.append({"index": 0, "delta": delta, "finish_reason": None, "logprobs": None})
        chunks.append({"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        bodies = [{**base, "object": "chat.completion.chunk", "choices": [choice]} for choice in chunks]
        if include_usage:
            bodies.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
        for body in bodies:
            self._chunk(f"data: {json.dumps(body)}\n\n".encode())
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, code: int, body: object) -> None:
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args: object) -> None:
        pass


EXPORTS: list[tuple[str, str, bytes]] = []


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        if self.headers.get("content-encoding") == "gzip":
            import gzip

            body = gzip.decompress(body)
        EXPORTS.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def serve(handler: type[BaseHTTPRequestHandler]) -> str:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}"


def openai_calls(base_url: str) -> None:
    """The four calls with the openai client (the OpenLLMetry and OpenLIT recordings)."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    system = {"role": "system", "content": SYSTEM}
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[system, {"role": "user", "content": PLAIN}], user=USER
    )
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[system, {"role": "user", "content": STREAMED}],
        user=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    for _ in stream:
        pass
    client.chat.completions.create(
        model="gpt-4o-mini", messages=[system, {"role": "user", "content": TOOL}], user=USER, tools=TOOLS
    )
    with contextlib.suppress(openai.BadRequestError):
        client.chat.completions.create(
            model="gpt-4o-mini", messages=[system, {"role": "user", "content": FAILED}], user=USER
        )


def langchain_calls(base_url: str) -> None:
    """The four calls with LangChain's ``ChatOpenAI`` (the OpenInference recording)."""
    import openai
    from langchain_core.messages import HumanMessage, SystemMessage
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="sk-test", max_retries=0, stream_usage=True)
    chat.invoke([SystemMessage(SYSTEM), HumanMessage(PLAIN)])
    for _ in chat.stream([SystemMessage(SYSTEM), HumanMessage(STREAMED)]):
        pass
    chat.bind_tools(TOOLS).invoke([SystemMessage(SYSTEM), HumanMessage(TOOL)])
    with contextlib.suppress(openai.BadRequestError):
        chat.invoke([SystemMessage(SYSTEM), HumanMessage(FAILED)])


def record(name: str, fake: str, receiver: str) -> None:
    os.environ["OTEL_SERVICE_NAME"] = "support-bot"
    os.environ["OTEL_RESOURCE_ATTRIBUTES"] = "service.version=2.1.0,deployment.environment.name=prod"
    if name == "openllmetry":
        os.environ["TRACELOOP_TELEMETRY"] = "false"
        from traceloop.sdk import Traceloop

        Traceloop.init(app_name="support-bot", api_endpoint=receiver, disable_batch=True, telemetry_enabled=False)
        openai_calls(fake + "/v1")
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    elif name == "openlit":
        import openlit

        openlit.init(otlp_endpoint=receiver, application_name="support-bot", environment="prod", disable_batch=True)
        openai_calls(fake + "/v1")
        from opentelemetry import trace

        trace.get_tracer_provider().force_flush()  # type: ignore[attr-defined]
        trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]
    elif name == "openinference-langchain":
        from openinference.instrumentation.langchain import LangChainInstrumentor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        provider = TracerProvider(resource=Resource.create())
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver + "/v1/traces")))
        LangChainInstrumentor().instrument(tracer_provider=provider)
        langchain_calls(fake + "/v1")
        provider.shutdown()
    else:
        raise SystemExit(f"unknown instrumentation {name!r}")


def hex_ids(document: object) -> object:
    """OTLP JSON spells trace and span ids in hex (the protobuf JSON mapping gives base64)."""
    if isinstance(document, dict):
        return {
            key: base64.b64decode(value).hex()
            if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str)
            else hex_ids(value)
            for key, value in document.items()
        }
    if isinstance(document, list):
        return [hex_ids(item) for item in document]
    return document


def as_json(path: str, content_type: str, body: bytes) -> object:
    if "json" in content_type:
        return json.loads(body)
    from google.protobuf import json_format
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    kind = {"/v1/traces": ExportTraceServiceRequest, "/v1/logs": ExportLogsServiceRequest}.get(
        path, ExportMetricsServiceRequest
    )
    return hex_ids(json_format.MessageToDict(kind.FromString(body)))


def main() -> None:
    name, out = sys.argv[1], sys.argv[2]
    fake, receiver = serve(FakeOpenAI), serve(Receiver)
    record(name, fake, receiver)
    time.sleep(0.5)  # an exporter thread may still be finishing its last POST after shutdown returned
    exports = [{"path": path, "body": as_json(path, kind, body)} for path, kind, body in EXPORTS]
    with open(out, "w") as file:
        json.dump({"instrumentation": name, "exports": exports}, file, indent=1, sort_keys=True)
        file.write("\n")
    print(f"{name}: {len(exports)} exports → {out}")


if __name__ == "__main__":
    main()
