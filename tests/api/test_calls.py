"""``GET /v1/inferences``: every filter, cursor paging, the sort orders and the text search's escaping,
over the real app (embedded runner, chDB) holding 40 calls spread over twelve days."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from tests.conftest import Api, make_settings

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(hours=7)  # 40 calls over ~12 days: newest-first pages cross several time spans
N = 40
TEXTS = {
    1: ("Am I 100% sure?", "yes"),
    2: ("1000 sure", "no"),
    3: ("snake a_b case", "ok"),
    4: ("axb", "ok"),
    6: ("where is it", "in C:\\temp\\x"),
    7: ("SHOUTING about a Refund", "sorry"),
}


@dataclass(frozen=True)
class Call:
    i: int
    event_id: str
    model: str
    model_version: str
    timestamp: datetime
    status: str
    error_type: str
    latency_ms: float | None
    cost_usd: float | None
    tags: dict[str, str]
    prompt: str
    response: str


def make_calls() -> list[Call]:
    calls = []
    for i in range(N):
        prompt, response = TEXTS.get(i, (f"question {i}", f"answer {i}"))
        calls.append(
            Call(
                i=i,
                event_id=f"call-{i:02d}",
                model="m-a" if i % 2 == 0 else "m-b",
                model_version="v1" if i < 20 else "v2",
                timestamp=T0 + i * STEP,
                status="error" if i % 5 == 0 else "ok",
                error_type=("timeout" if i % 10 == 0 else "rate_limit") if i % 5 == 0 else "",
                latency_ms=None if i == 39 else 100.0 + ((i * 13) % N) * 10,
                cost_usd=None if i == 38 else ((i * 7) % 10) / 1000,  # four calls per price: ties
                tags={"route": "/chat" if i % 3 == 0 else "/support", "user": f"u{i % 4}"},
                prompt=prompt,
                response=response,
            )
        )
    return calls


CALLS = make_calls()
FEEDBACK = [(1, "thumbs"), (2, "thumbs"), (3, "thumbs"), (3, "correction"), (9, "comment")]


def event(call: Call) -> dict[str, Any]:
    body: dict[str, Any] = {
        "event_id": call.event_id,
        "model": call.model,
        "model_version": call.model_version,
        "timestamp": call.timestamp.isoformat(),
        "status": call.status,
        "tags": call.tags,
        "prompt": call.prompt,
        "response": call.response,
    }
    for name in ("latency_ms", "cost_usd"):
        if getattr(call, name) is not None:
            body[name] = getattr(call, name)
    if call.error_type:
        body["error_type"] = call.error_type
    return body


@pytest.fixture(scope="module")
def calls_api(data_dir: Path) -> Iterator[tuple[Api, dict[str, str]]]:
    with TestClient(serving_app(make_settings(data_dir, window_seconds=3600))) as client:
        api = Api(client)
        storage = api.services.storage
        storage.command(f"SYSTEM STOP MERGES {storage.database}.inferences")  # keep re-sent copies apart
        headers = {**api.key("calls"), "content-type": "application/json"}
        assert client.post(
            "/v1/inferences", content=orjson.dumps([event(c) for c in CALLS]), headers=headers
        ).is_success
        api.wait_written()
        resent = [event(CALLS[5]), event(CALLS[12])]  # the same calls again: one row each in every page
        assert client.post("/v1/inferences", content=orjson.dumps(resent), headers=headers).is_success
        feedback = [
            {"inference_id": CALLS[i].event_id, "kind": kind, **({"value": 1} if kind == "thumbs" else {"text": "t"})}
            for i, kind in FEEDBACK
        ]
        assert client.post("/v1/feedback", content=orjson.dumps(feedback), headers=headers).is_success
        other = {**api.key("other"), "content-type": "application/json"}
        assert client.post("/v1/inferences", content=orjson.dumps([event(CALLS[0])]), headers=other).is_success
        api.wait_written()
        yield api, headers
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


def listing(calls_api: tuple[Api, dict[str, str]], **params: Any) -> dict[str, Any]:
    api, headers = calls_api
    response = api.client.get("/v1/inferences", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def every_page(calls_api: tuple[Api, dict[str, str]], **params: Any) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        body = listing(calls_api, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([item["event_id"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


def newest_first(keep: Callable[[Call], bool]) -> list[str]:
    return [c.event_id for c in sorted(CALLS, key=lambda c: c.timestamp, reverse=True) if keep(c)]


def ids(body: dict[str, Any]) -> list[str]:
    return [item["event_id"] for item in body["items"]]


class TestFilters:
    """Each filter selects exactly the calls it names, newest first."""

    @pytest.mark.parametrize(
        ("params", "keep"),
        [
            ({}, lambda c: True),
            ({"model": "m-b"}, lambda c: c.model == "m-b"),
            ({"model_version": "v2"}, lambda c: c.model_version == "v2"),
            ({"status": "error"}, lambda c: c.status == "error"),
            ({"status": "error", "error_type": "timeout"}, lambda c: c.error_type == "timeout"),
            ({"error_type": "rate_limit"}, lambda c: c.error_type == "rate_limit"),
            ({"tag": "route:/chat"}, lambda c: c.tags["route"] == "/chat"),
            ({"tag": ["route:/support", "user:u1"]}, lambda c: c.tags == {"route": "/support", "user": "u1"}),
            (
                {"min_latency_ms": 200, "max_latency_ms": 300},
                lambda c: c.latency_ms is not None and 200 <= c.latency_ms <= 300,
            ),
            (
                {"min_cost_usd": 0.003, "max_cost_usd": 0.005},
                lambda c: c.cost_usd is not None and 0.003 <= c.cost_usd <= 0.005,
            ),
            (
                {"since": (T0 + 10 * STEP).isoformat(), "until": (T0 + 20 * STEP).isoformat()},
                lambda c: 10 <= c.i < 20,
            ),
            ({"has_feedback": "true"}, lambda c: c.i in {1, 2, 3, 9}),
            ({"has_feedback": "false"}, lambda c: c.i not in {1, 2, 3, 9}),
            ({"feedback_kind": "correction"}, lambda c: c.i == 3),
            ({"feedback_kind": ["comment", "correction"]}, lambda c: c.i in {3, 9}),
            ({"feedback_kind": "thumbs", "has_feedback": "false"}, lambda c: c.i not in {1, 2, 3}),
            ({"q": "refund"}, lambda c: c.i == 7),  # case-insensitive
            ({"q": "sure"}, lambda c: c.i in {1, 2}),
            ({"q": "ANSWER 1"}, lambda c: c.response.startswith("answer 1")),  # in the response
            ({"model": "m-a", "status": "error", "tag": "route:/chat"}, lambda c: c.i in {0, 30}),
        ],
        ids=lambda value: orjson.dumps(value).decode() if isinstance(value, dict) else "",
    )
    def test_filter(self, calls_api: tuple[Api, dict[str, str]], params: dict[str, Any], keep: Any) -> None:
        expected = newest_first(keep)
        assert expected, "the case selects nothing: it tests nothing"
        assert ids(listing(calls_api, **params, limit=1000)) == expected

    def test_window_start_selects_the_models_window(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        # windows are an hour long here: the window of m-b containing T0 + 7 h 10 min holds call 1 only
        body = listing(calls_api, model="m-b", window_start=(T0 + STEP + timedelta(minutes=10)).isoformat())
        assert ids(body) == ["call-01"]
        assert listing(calls_api, model="m-a", window_start=(T0 + STEP).isoformat())["items"] == []

    def test_items_carry_the_call(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        item = listing(calls_api, q="100%")["items"][0]
        assert item["event_id"] == "call-01"
        assert item["prompt_preview"] == "Am I 100% sure?"
        assert item["prompt_chars"] == len("Am I 100% sure?")
        assert item["tags"] == {"route": "/support", "user": "u1"}
        assert item["model"] == "m-b"

    def test_other_projects_calls_are_not_listed(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        assert len(listing(calls_api, limit=1000)["items"]) == N  # the 'other' project's copy of call 0 is not here


class TestTextSearchEscaping:
    """``%``, ``_`` and ``\\`` in ``q`` are plain characters, not LIKE wildcards."""

    def test_percent(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        assert ids(listing(calls_api, q="100%")) == ["call-01"]  # not "1000 sure"
        assert ids(listing(calls_api, q="%")) == ["call-01"]

    def test_underscore(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        assert ids(listing(calls_api, q="a_b")) == ["call-03"]  # not "axb"
        assert ids(listing(calls_api, q="_")) == ["call-03"]

    def test_backslash(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        assert ids(listing(calls_api, q="C:\\temp\\")) == ["call-06"]
        assert listing(calls_api, q="\\%")["items"] == []


class TestPaging:
    """Cursor pages cover every match once, in order, whatever the page size and order."""

    @pytest.mark.parametrize("limit", [1, 3, 7, 40])
    def test_newest_first_pages(self, calls_api: tuple[Api, dict[str, str]], limit: int) -> None:
        pages = every_page(calls_api, limit=limit)
        assert all(len(page) == limit for page in pages[:-1])
        assert [event_id for page in pages for event_id in page] == newest_first(lambda c: True)

    def test_filtered_pages_by_feedback(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        pages = every_page(calls_api, limit=2, has_feedback="false")
        assert [event_id for page in pages for event_id in page] == newest_first(lambda c: c.i not in {1, 2, 3, 9})

    @pytest.mark.parametrize(("sort", "field"), [("latency", "latency_ms"), ("cost", "cost_usd")])
    def test_sorted_pages(  # costs tie four by four: page boundaries fall inside ties
        self, calls_api: tuple[Api, dict[str, str]], sort: str, field: str
    ) -> None:
        pages = every_page(calls_api, limit=6, sort=sort)
        expected = [
            c.event_id
            for c in sorted(
                (c for c in CALLS if getattr(c, field) is not None),
                key=lambda c: (getattr(c, field), c.timestamp),
                reverse=True,
            )
        ]
        assert [event_id for page in pages for event_id in page] == expected
        assert len(expected) == N - 1  # the call without the number is left out of that order


class TestBadInput:
    """Every refused parameter names itself and says why."""

    @pytest.mark.parametrize(
        ("params", "where", "message"),
        [
            ({"min_latency_ms": 5, "max_latency_ms": 1}, "min_latency_ms", "'min_latency_ms' must not be above"),
            ({"min_cost_usd": 0.5, "max_cost_usd": 0.1}, "min_cost_usd", "'min_cost_usd' must not be above"),
            ({"window_start": T0.isoformat()}, "window_start", "'window_start' needs 'model'"),
            ({"cursor": "bm90LWEtY3Vyc29y"}, "cursor", "not a cursor of this listing"),
            (  # a cursor-shaped token whose moment no datetime holds
                {
                    "cursor": base64.urlsafe_b64encode(b'["newest",null,99999999999999999999,"a","m"]')
                    .decode()
                    .rstrip("=")
                },
                "cursor",
                "not a cursor of this listing",
            ),
            ({"since": T0.isoformat(), "until": T0.isoformat()}, "since", "'since' must be before 'until'"),
            ({"status": "maybe"}, "status", "Input should be 'ok' or 'error'"),
            ({"sort": "name"}, "sort", "Input should be 'newest', 'latency' or 'cost'"),
            ({"tag": "nocolon"}, "tag", "String should match pattern"),
            ({"min_latency_ms": -1}, "min_latency_ms", "greater than or equal to 0"),
            ({"feedback_kind": "vibes"}, "feedback_kind", "Input should be"),
        ],
    )
    def test_refused(
        self, calls_api: tuple[Api, dict[str, str]], params: dict[str, Any], where: str, message: str
    ) -> None:
        api, headers = calls_api
        response = api.client.get("/v1/inferences", params=params, headers=headers)
        assert response.status_code == 422, response.text
        problems = response.json()["detail"]
        assert any(where in p["loc"] and message in p["msg"] for p in problems), problems

    def test_a_cursor_of_another_order(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        cursor = listing(calls_api, limit=1, sort="latency")["next_cursor"]
        api, headers = calls_api
        response = api.client.get("/v1/inferences", params={"cursor": cursor}, headers=headers)
        assert response.status_code == 422
        assert "this cursor pages the 'latency' order, not 'newest'" in response.json()["detail"][0]["msg"]


class TestOneCall:
    """``GET /v1/inferences/{id}`` returns the stored call with every feedback on it."""

    def test_detail(self, calls_api: tuple[Api, dict[str, str]]) -> None:
        api, headers = calls_api
        body = api.client.get("/v1/inferences/call-03", headers=headers).json()
        assert body["prompt"] == "snake a_b case"
        assert body["project"] == "calls"
        assert sorted(item["kind"] for item in body["feedback"]) == ["correction", "thumbs"]
        assert api.client.get("/v1/inferences/nope", headers=headers).status_code == 404
