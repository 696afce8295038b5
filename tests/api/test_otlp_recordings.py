"""What real GenAI instrumentations export, replayed against a real loopwatch.

``scripts/record-otlp`` ran OpenLLMetry (``traceloop-sdk``), OpenLIT and OpenInference's LangChain
instrumentation (``langchain-openai``), each in a venv of its own, against an OpenAI-compatible server
on 127.0.0.1: one plain, one streamed, one tool-call and one failed call each, a system prompt, the user
``user-42``. Their exporters' bodies are in ``otlp_recordings/<name>.json`` (OTLP JSON, package versions
beside them in ``<name>.versions.txt``). The tests post them as the exporters did to the app under uvicorn
(embedded pipeline, chDB) and read the stored events back through the API.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from structlog.testing import capture_logs

from loopwatch._server import BackgroundServer
from streams.storage import dead_letters
from tests.api.test_otlp import server
from tests.metrics_text import Scrape
from tests.ui.test_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    browser,
    check_accessibility,
    console_problems,
    downloads,
    no_dialog,
    screenshot,
    sign_in,
)

__all__ = ["browser", "downloads", "server"]  # fixtures: the app under uvicorn, the browser
HOSTILE = '<img src=x onerror="alert(1)">'

RECORDINGS = Path(__file__).parent / "otlp_recordings"
# the calls scripts/record_otlp_driver.py makes
SYSTEM = "You are a terse travel assistant."
PLAIN, STREAMED, TOOL, FAILED = "Capital of France?", "Count to three.", "Weather in Paris?", "FAIL this call"
TOOL_CALL = '{"name":"get_weather","arguments":{"city":"Paris"}}'


def recording(name: str) -> list[dict[str, Any]]:
    """The exports an instrumentation made: ``{"path": "/v1/traces", "body": <OTLP JSON>}`` each."""
    document = orjson.loads((RECORDINGS / f"{name}.json").read_bytes())
    assert document["instrumentation"] == name
    return document["exports"]  # type: ignore[no-any-return]


def spans(exports: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for export in exports:
        if export["path"] == "/v1/traces":
            for resource_spans in export["body"].get("resourceSpans", []):
                for scope_spans in resource_spans.get("scopeSpans", []):
                    yield from scope_spans.get("spans", [])


def unjoinable_events(exports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Log exports holding a record without the trace of its span."""
    return [
        export
        for export in exports
        if export["path"] == "/v1/logs"
        and any(
            not record.get("traceId")
            for resource_logs in export["body"]["resourceLogs"]
            for scope_logs in resource_logs["scopeLogs"]
            for record in scope_logs["logRecords"]
        )
    ]


class Project:
    """One project's key on the server, and what its recordings became."""

    def __init__(self, server: BackgroundServer, name: str) -> None:
        self.server = server
        self.token = str(server.app.state.runtime.keys.create(name, "otel").token)
        self.headers = {"authorization": f"Bearer {self.token}"}

    def replay(self, exports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Post every export as the exporter did (OTLP JSON here); the ``partialSuccess`` of each."""
        answers = []
        for export in exports:
            response = httpx.post(
                f"{self.server.url}{export['path']}",
                content=orjson.dumps(export["body"]),
                headers={**self.headers, "content-type": "application/json"},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            answers.append(response.json().get("partialSuccess", {}))
        return answers

    def inference(self, span: dict[str, Any]) -> dict[str, Any] | None:
        response = httpx.get(
            f"{self.server.url}/v1/inferences/{span['traceId']}{span['spanId']}", headers=self.headers, timeout=30
        )
        assert response.status_code in (200, 404), response.text
        return response.json() if response.status_code == 200 else None

    def calls(self, exports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The stored inference of each of the four calls, by the question its prompt ends with (the
        failed call by its status: OpenLIT records no prompt for it)."""
        stored = [found for span in spans(exports) if (found := self.inference(span)) is not None]
        assert len(stored) == 4, [found["prompt"] for found in stored]
        [failed] = [found for found in stored if found["status"] == "error"]
        calls = {FAILED: failed}
        for question in (PLAIN, STREAMED, TOOL):
            [calls[question]] = [found for found in stored if (found["prompt"] or "").endswith(question)]
        return calls

    def models(self) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.server.url}/v1/models", headers=self.headers, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


class Replayed:
    """An instrumentation's recording, replayed once into a project of its own."""

    def __init__(self, server: BackgroundServer, name: str) -> None:
        self.exports = recording(name)
        self.project = Project(server, f"rec-{name}")
        self.answers = self.project.replay(self.exports)
        self.calls = self.project.calls(self.exports)


@pytest.fixture(scope="module")
def openlit(server: BackgroundServer) -> Replayed:
    return Replayed(server, "openlit")


@pytest.fixture(scope="module")
def openllmetry(server: BackgroundServer) -> Replayed:
    return Replayed(server, "openllmetry")


@pytest.fixture(scope="module")
def openinference(server: BackgroundServer) -> Replayed:
    return Replayed(server, "openinference-langchain")


class TestOpenInferenceLangChain:
    """``openinference-instrumentation-langchain`` around ``ChatOpenAI``."""

    def test_one_requested_model_is_one_model_whichever_call(self, openinference: Replayed) -> None:
        assert all(answer == {} for answer in openinference.answers)
        calls = openinference.calls
        # plain and tool calls report the response's dated model in llm.model_name, streamed and failed
        # ones the requested name: the invocation parameters name the requested one every time
        assert {call["model"] for call in calls.values()} == {"gpt-4o-mini"}
        models = openinference.project.models()
        assert [(model["model"], model["inferences"]) for model in models] == [("gpt-4o-mini", 4)]
        assert calls[PLAIN]["tags"]["response_model"] == "gpt-4o-mini-2024-07-18"
        assert calls[PLAIN]["cost_usd"] > 0

    def test_tool_calls_and_errors_store_no_langchain_serialisation(self, openinference: Replayed) -> None:
        calls = openinference.calls
        assert calls[PLAIN]["response"] == "Paris."
        assert calls[STREAMED]["response"] == "One, two, three."
        assert calls[TOOL]["response"] == TOOL_CALL
        assert calls[FAILED]["status"] == "error"
        assert calls[FAILED]["response"] == ""  # nothing: the API shows a missing text as ""
        assert calls[TOOL]["prompt"] == f"system: {SYSTEM}\nuser: {TOOL}"


class TestOpenLLMetry:
    """``traceloop-sdk`` around the ``openai`` client (``gen_ai.*`` attributes, messages as JSON)."""

    def test_four_calls_of_one_model(self, openllmetry: Replayed) -> None:
        assert all(answer == {} for answer in openllmetry.answers)
        calls = openllmetry.calls
        models = openllmetry.project.models()
        assert [(model["model"], model["inferences"]) for model in models] == [("gpt-4o-mini", 4)]
        assert calls[PLAIN]["prompt"] == f"system: {SYSTEM}\nuser: {PLAIN}"
        assert calls[STREAMED]["response"] == "One, two, three."
        assert calls[TOOL]["response"] == TOOL_CALL  # the same text as OpenInference's tool call
        assert (calls[FAILED]["status"], calls[FAILED]["error_type"]) == ("error", "BadRequestError")
        assert calls[PLAIN]["tags"]["response_model"] == "gpt-4o-mini-2024-07-18"
        assert calls[PLAIN]["cost_usd"] > 0

    def test_user_id_from_the_request(self, openllmetry: Replayed) -> None:
        assert {call["tags"].get("user_id") for call in openllmetry.calls.values()} == {"user-42"}  # gen_ai.user


class TestRejections:
    """Spans that cannot become events are visible to operators, not only to the exporter (which drops
    ``partial_success`` on a 200): a log line with the reason, a counter, and the dashboard's panel."""

    @staticmethod
    def without_model(exports: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The export of OpenLLMetry's plain call with the span's model attributes removed (as a client
        that names no model would send it), and that span."""
        [export] = [export for export in exports if PLAIN in orjson.dumps(export).decode()]
        export = copy.deepcopy(export)
        [span] = spans([export])
        span["attributes"] = [
            a for a in span["attributes"] if a["key"] not in ("gen_ai.request.model", "gen_ai.response.model")
        ]
        return export, span

    def test_rejected_items_are_logged_counted_and_kept_as_dead_letters(self, server: BackgroundServer) -> None:
        project = Project(server, "rec-rejected")
        export, span = self.without_model(recording("openllmetry"))
        # OpenLIT's details event of the streamed call, emitted once the stream ended: outside its span
        [unjoinable] = unjoinable_events(recording("openlit"))
        before = Scrape(httpx.get(f"{server.url}/metrics", timeout=30).text)
        with capture_logs() as logs:
            [traces, events] = project.replay([export, unjoinable])
        after = Scrape(httpx.get(f"{server.url}/metrics", timeout=30).text)
        assert (traces["rejectedSpans"], events["rejectedLogRecords"]) == ("1", "1")
        assert f"span {span['spanId']}: no model" in traces["errorMessage"]
        for signal in ("traces", "logs"):
            moved = after.value("loopwatch_otlp_rejected_total", signal=signal) - before.value(
                "loopwatch_otlp_rejected_total", signal=signal
            )
            assert moved == 1, signal
        lines = {entry["signal"]: entry for entry in logs if entry["event"] == "otlp.rejected"}
        assert (lines["traces"]["project"], lines["traces"]["rejected"]) == ("rec-rejected", 1)
        assert f"span {span['spanId']}: no model" in lines["traces"]["reasons"]
        assert "without the trace and span of its inference" in lines["logs"]["reasons"]
        assert PLAIN not in repr(logs)
        assert STREAMED not in repr(logs)  # prompts are not logged
        storage = server.app.state.runtime.storage
        letters = dead_letters.recent(storage, "rec-rejected")
        assert sorted(letter.source for letter in letters) == ["otlp_logs", "otlp_traces"]
        [by_span] = [letter for letter in letters if letter.source == "otlp_traces"]
        assert by_span.error.startswith(f"span {span['spanId']}: no model")
        payloads = [
            orjson.loads(row[0])
            for row in storage.query(
                f"SELECT payload FROM {storage.database}.dead_letters WHERE project = 'rec-rejected'"
            ).result_rows
        ]
        [of_span] = [payload for payload in payloads if payload["span_id"]]
        assert of_span["span_id"] == span["spanId"]
        assert "gen_ai.input.messages" in of_span["attributes"]  # its keys, not its values
        assert PLAIN not in repr(payloads)
        assert STREAMED not in repr(payloads)

    @pytest.mark.skipif(
        not CHROMEDRIVER.exists() or not CHROMIUM.exists(),
        reason="needs chromium + chromium-driver: run scripts/browser (scripts/test does)",
    )
    def test_the_overview_lists_a_projects_recent_rejections(
        self, server: BackgroundServer, browser: WebDriver, openllmetry: Replayed
    ) -> None:
        project = Project(server, "rec-panel")
        export, span = self.without_model(recording("openllmetry"))
        evaluation = {  # an evaluation of that span with neither a score nor a label, named to be hostile
            "resourceLogs": [
                {
                    "scopeLogs": [
                        {
                            "logRecords": [
                                {
                                    "eventName": "gen_ai.evaluation.result",
                                    "traceId": span["traceId"],
                                    "spanId": span["spanId"],
                                    "attributes": [
                                        {"key": "gen_ai.evaluation.name", "value": {"stringValue": HOSTILE}}
                                    ],
                                }
                            ]
                        }
                    ]
                }
            ]
        }
        project.replay([export, {"path": "/v1/logs", "body": evaluation}])
        sign_in(browser, server.url, project.token)
        rows = browser.find_elements(By.CSS_SELECTOR, "table.rejections tbody tr")
        cells = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")][1:] for row in rows]
        assert sorted(cells) == sorted(
            [
                [
                    "otlp_logs",
                    f"evaluation {HOSTILE!r} of {span['traceId']}{span['spanId']}: neither "
                    "gen_ai.evaluation.score.value nor gen_ai.evaluation.score.label",
                ],
                [
                    "otlp_traces",
                    f"span {span['spanId']}: no model (gen_ai.request.model, gen_ai.response.model, llm.model_name)",
                ],
            ]
        )
        no_dialog(browser)
        assert console_problems(browser) == []
        check_accessibility(browser, "overview with rejections")
        screenshot(browser, "overview-rejections")
        # another project's page: its own heading, and no panel (it had no rejection)
        sign_in(browser, server.url, openllmetry.project.token)
        assert browser.find_element(By.TAG_NAME, "h1").text == "Models of rec-openllmetry"
        assert browser.find_elements(By.ID, "rejections") == []


class TestOpenLIT:
    """``openlit`` around the ``openai`` client, offline: it could not load its price list."""

    def test_one_item_cannot_be_joined(self, openlit: Replayed) -> None:
        # the streamed call's details event comes after its span ended, without its trace (the span
        # itself carries the same text): the one item of the recording that cannot become anything
        rejected = [
            (export, answer["rejectedLogRecords"])
            for export, answer in zip(openlit.exports, openlit.answers, strict=True)
            if answer
        ]
        assert rejected == [(export, "1") for export in unjoinable_events(openlit.exports)]
        models = openlit.project.models()
        assert [(model["model"], model["inferences"]) for model in models] == [("gpt-4o-mini", 4)]
        assert openlit.calls[FAILED]["status"] == "error"
        assert openlit.calls[TOOL]["response"] == TOOL_CALL

    def test_zero_cost_with_tokens_is_priced(self, openlit: Replayed) -> None:
        costs = {
            attribute["value"].get("intValue", attribute["value"].get("doubleValue"))
            for span in spans(openlit.exports)
            for attribute in span["attributes"]
            if attribute["key"] == "gen_ai.usage.cost"
        }
        assert costs == {"0"}  # what OpenLIT sent
        calls = openlit.calls
        # 31 input and 9 output tokens of gpt-4o-mini at genai-prices' price, not OpenLIT's 0
        for question in (PLAIN, STREAMED, TOOL):
            assert calls[question]["cost_usd"] == pytest.approx(31 * 0.15e-6 + 9 * 0.6e-6), question

    def test_system_prompt_is_stored_once(self, openlit: Replayed) -> None:
        # sent in gen_ai.system_instructions and again as the first of gen_ai.input.messages
        assert openlit.calls[PLAIN]["prompt"] == f"system: {SYSTEM}\nuser: {PLAIN}"
        assert openlit.calls[PLAIN]["response"] == "Paris."

    def test_user_id_from_the_request(self, openlit: Replayed) -> None:
        users = {openlit.calls[question]["tags"].get("user_id") for question in (PLAIN, STREAMED, TOOL)}
        assert users == {"user-42"}  # gen_ai.request.user
