"""Ingest over HTTP into the real embedded pipeline and chDB, read back through the API."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from loopwatch.demo.traffic import Traffic
from tests.conftest import Api
from tests.poison import FEEDBACK, INFERENCE, poison_messages


def _post(api: Api, path: str, items: object, headers: dict[str, str]) -> tuple[int, dict]:
    response = api.client.post(
        path, content=orjson.dumps(items), headers={**headers, "content-type": "application/json"}
    )
    return response.status_code, response.json() if response.content else {}


def _count(api: Api, table: str, project: str) -> int:
    storage = api.services.storage
    return int(
        storage.scalar(
            f"SELECT count() FROM {storage.database}.{table} FINAL WHERE project = {{p:String}}", {"p": project}
        )
    )


class TestIngestVolume:
    """Batches of events arrive exactly once."""

    def test_ten_thousand_events_in_batches_read_back_exactly(self, api: Api) -> None:
        headers = api.key("volume")
        traffic = Traffic("volume", seed=3)
        sent_feedback = 0
        for inferences, feedback in traffic.batches(10_000, 500):
            assert _post(api, "/v1/inferences", inferences, headers)[0] == 202
            if feedback:
                assert _post(api, "/v1/feedback", feedback, headers)[0] == 202
            sent_feedback += len(feedback)
        api.wait_written()
        models = api.client.get("/v1/models", headers=headers).json()
        assert sum(model["inferences"] for model in models) == 10_000
        assert sum(model["feedback"] for model in models) == sent_feedback
        assert _count(api, "inferences", "volume") == 10_000

    def test_accepted_ids_are_returned_in_order(self, api: Api) -> None:
        headers = api.key("ids")
        status, body = _post(api, "/v1/inferences", [{"model": "m", "event_id": "a"}, {"model": "m"}], headers)
        assert status == 202
        assert body["accepted"] == 2
        assert body["ids"][0] == "a" and len(body["ids"][1]) == 32


class TestIdempotency:
    """Redelivery never duplicates, and late joins work both ways."""

    def test_duplicate_event_ids_collapse(self, api: Api) -> None:
        headers = api.key("dup")
        event = {"event_id": "same-1", "model": "m", "timestamp": "2026-05-01T10:00:00Z", "prompt": "hi"}
        for _ in range(3):
            assert _post(api, "/v1/inferences", [event, event], headers)[0] == 202
        feedback = {
            "feedback_id": "fb-1",
            "inference_id": "same-1",
            "kind": "thumbs",
            "value": 1,
            "timestamp": "2026-05-01T10:05:00Z",
        }
        for _ in range(2):
            assert _post(api, "/v1/feedback", feedback, headers)[0] == 202
        api.wait_written()
        assert _count(api, "inferences", "dup") == 1
        assert _count(api, "feedback", "dup") == 1
        page = api.client.get("/v1/feedback", headers=headers).json()
        assert [item["feedback_id"] for item in page["items"]] == ["fb-1"]
        detail = api.client.get("/v1/inferences/same-1", headers=headers).json()
        assert [item["feedback_id"] for item in detail["feedback"]] == ["fb-1"]

    def test_a_resent_correction_shows_once_with_its_newest_value(self, api: Api) -> None:
        """Unmerged copies (merges stopped, separate inserts) are deduplicated by the page query itself."""
        headers = api.key("resend")
        storage = api.services.storage
        storage.command(f"SYSTEM STOP MERGES {storage.database}.feedback")
        try:
            for value in (1, 2, 5):
                rating = {
                    "feedback_id": "fb-r",
                    "inference_id": "i-r",
                    "kind": "rating",
                    "value": value,
                    "timestamp": "2026-05-01T10:05:00Z",
                }
                assert _post(api, "/v1/feedback", rating, headers)[0] == 202
                api.wait_written()  # one insert, one part each
            newer = {
                "feedback_id": "fb-s",
                "inference_id": "i-r",
                "kind": "thumbs",
                "value": 1,
                "timestamp": "2026-05-01T10:06:00Z",
            }
            assert _post(api, "/v1/feedback", newer, headers)[0] == 202
            api.wait_written()
            raw = storage.scalar(f"SELECT count() FROM {storage.database}.feedback WHERE project = 'resend'")
            assert raw == 4  # the copies really are there
            page = api.client.get("/v1/feedback", params={"limit": 1}, headers=headers).json()
            assert [item["feedback_id"] for item in page["items"]] == ["fb-s"]
            second = api.client.get(
                "/v1/feedback", params={"limit": 1, "cursor": page["next_cursor"]}, headers=headers
            ).json()
            assert [(item["feedback_id"], item["value"]) for item in second["items"]] == [("fb-r", 5.0)]
            assert second["next_cursor"] is None
        finally:
            storage.command(f"SYSTEM START MERGES {storage.database}.feedback")

    def test_feedback_before_its_inference_joins_once_it_arrives(self, api: Api) -> None:
        headers = api.key("early")
        feedback = {"feedback_id": "fb-early", "inference_id": "inf-late", "kind": "correction", "text": "better"}
        assert _post(api, "/v1/feedback", feedback, headers)[0] == 202
        api.wait_written()
        item = api.client.get("/v1/feedback", headers=headers).json()["items"][0]
        assert item["inference"] is None
        inference = {"event_id": "inf-late", "model": "gpt-4o", "prompt": "question?", "response": "answer"}
        assert _post(api, "/v1/inferences", inference, headers)[0] == 202
        api.wait_written()
        item = api.client.get("/v1/feedback", headers=headers).json()["items"][0]
        assert item["inference"]["prompt"] == "question?"
        assert item["inference"]["model"] == "gpt-4o"
        chat = api.client.get("/v1/feedback/export", params={"format": "chat"}, headers=headers).text.splitlines()
        assert orjson.loads(chat[0]) == {
            "messages": [{"role": "user", "content": "question?"}, {"role": "assistant", "content": "better"}]
        }


class TestBadInput:
    """Bad requests get a precise 4xx and the service keeps serving."""

    def test_wrong_types_and_missing_fields_name_item_and_field(self, api: Api) -> None:
        headers = api.key("bad")
        items = [{"model": "ok"}, {"latency_ms": "slow"}, {"model": "m", "input_tokens": -5}]
        status, body = _post(api, "/v1/inferences", items, headers)
        assert status == 422
        locs = {tuple(error["loc"]) for error in body["detail"]}
        assert locs == {("body", 1, "model"), ("body", 1, "latency_ms"), ("body", 2, "input_tokens")}
        api.wait_written()
        assert _count(api, "inferences", "bad") == 0  # all or nothing

    def test_feedback_value_that_does_not_fit_its_kind(self, api: Api) -> None:
        status, body = _post(api, "/v1/feedback", {"inference_id": "x", "kind": "rating", "value": 9}, api.key("bad"))
        assert status == 422
        assert "rating feedback needs a numeric value from 1 to 5" in body["detail"][0]["msg"]

    def test_invalid_json(self, api: Api) -> None:
        response = api.client.post("/v1/inferences", content=b"{nope", headers=api.key("bad"))
        assert response.status_code == 400
        assert "not valid JSON" in response.json()["detail"]

    def test_non_object_item(self, api: Api) -> None:
        status, body = _post(api, "/v1/inferences", [1], api.key("bad"))
        assert status == 422
        assert body["detail"][0]["loc"] == ["body", 0]

    def test_oversize_body_and_batch(self, api: Api) -> None:
        headers = api.key("bad")
        limit = api.services.settings.max_body_bytes
        response = api.client.post("/v1/inferences", content=b" " * (limit + 1), headers=headers)
        assert response.status_code == 413
        assert str(limit) in response.json()["detail"]
        too_many = [{"model": "m"}] * (api.services.settings.max_batch_items + 1)
        status, body = _post(api, "/v1/inferences", too_many, headers)
        assert status == 413 and "exceeds the limit" in body["detail"]

    @pytest.mark.parametrize("authorization", [None, "Bearer lw_not-a-key", "Basic abc"])
    def test_missing_or_unknown_key(self, api: Api, authorization: str | None) -> None:
        headers = {"authorization": authorization} if authorization else {}
        status, body = _post(api, "/v1/inferences", {"model": "m"}, headers)
        assert status == 401
        assert "API key" in body["detail"]

    def test_revoked_key_is_refused(self, api: Api) -> None:
        new = api.services.keys.create("rev")
        api.services.keys.revoke(new.key.key_id)
        status, _ = _post(api, "/v1/inferences", {"model": "m"}, {"authorization": f"Bearer {new.token}"})
        assert status == 401

    def test_service_keeps_serving_after_errors(self, api: Api) -> None:
        headers = api.key("after")
        for body in (b"{", b"[]", b"[1,2]", b'{"model": 5}'):
            assert 400 <= api.client.post("/v1/inferences", content=body, headers=headers).status_code < 500
        assert _post(api, "/v1/inferences", {"model": "m", "event_id": "fine"}, headers)[0] == 202
        api.wait_written()
        assert _count(api, "inferences", "after") == 1
        assert api.client.get("/readyz").json() == {"status": "ready"}

    def test_bad_cursor_and_filters(self, api: Api) -> None:
        headers = api.key("bad")
        assert api.client.get("/v1/feedback", params={"cursor": "zzz"}, headers=headers).status_code == 422
        assert api.client.get("/v1/feedback", params={"tag": "nocolon"}, headers=headers).status_code == 422
        assert api.client.get("/v1/feedback", params={"kind": "vibes"}, headers=headers).status_code == 422


class TestPoisonBodies:
    """Whatever the bytes, the ingest routes answer 202 or a 4xx, never a 5xx, and keep storing."""

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/inferences", b'{"model": "m", "prompt": "invalid \xff UTF-8"}'),
            ("/v1/feedback", b'{"inference_id": "i", "kind": "comment", "text": "a surrogate \xed\xa0\x80"}'),
        ],
    )
    def test_invalid_utf8_in_a_string_is_a_400(self, api: Api, path: str, body: bytes) -> None:
        response = api.client.post(path, content=body, headers=api.key("p"))
        assert response.status_code == 400
        assert "not valid UTF-8" in response.json()["detail"]

    def test_a_number_past_a_double_does_not_stop_later_writes(self, api: Api) -> None:
        headers = api.key("p")
        huge = b'{"inference_id": "i", "kind": "score", "name": "n", "value": ' + b"9" * 400 + b"}"
        response = api.client.post("/v1/feedback", content=huge, headers=headers)
        assert response.status_code == 400
        assert "number is infinity" in response.json()["detail"]
        fine = {"inference_id": "i", "kind": "score", "name": "n", "value": 1e25}
        assert _post(api, "/v1/feedback", fine, headers)[0] == 202
        api.wait_written()
        assert _count(api, "feedback", "p") == 1

    @pytest.mark.parametrize(("path", "base"), [("/v1/inferences", INFERENCE), ("/v1/feedback", FEEDBACK)])
    def test_fuzz_never_a_server_error(self, api: Api, path: str, base: dict[str, object]) -> None:
        headers = {**api.key("p"), "content-type": "application/json"}

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(poison_messages(base))
        def post(body: bytes) -> None:
            assert api.client.post(path, content=body, headers=headers).status_code in (202, 400, 403, 413, 422)

        post()
        api.wait_written()  # whatever was accepted could be written


class TestTenantIsolation:
    """A key of project A can never read or write project B's data."""

    def test_isolation(self, api: Api) -> None:
        a, b = api.key("alpha"), api.key("beta")
        assert _post(api, "/v1/inferences", {"event_id": "a-1", "model": "m", "prompt": "secret A"}, a)[0] == 202
        assert _post(api, "/v1/feedback", {"inference_id": "a-1", "kind": "thumbs", "value": 1}, a)[0] == 202
        status, body = _post(api, "/v1/inferences", {"project": "alpha", "model": "m"}, b)
        assert status == 403 and "'beta'" in body["detail"]
        api.wait_written()
        assert api.client.get("/v1/inferences/a-1", headers=b).status_code == 404
        assert api.client.get("/v1/inferences/a-1", headers=a).json()["prompt"] == "secret A"
        assert api.client.get("/v1/feedback", headers=b).json()["items"] == []
        assert api.client.get("/v1/feedback/export", headers=b).text == ""
        assert api.client.get("/v1/models", headers=b).json() == []
        assert len(api.client.get("/v1/feedback", headers=a).json()["items"]) == 1


class TestFeedbackQueries:
    """Filters, pagination and export formats agree with what was sent."""

    @pytest.fixture
    def loaded(self, api: Api) -> tuple[Api, dict[str, str], list[dict], list[dict]]:
        headers = api.key("query")
        traffic = Traffic("query", seed=11, feedback_share=0.9)
        inferences, feedback = [], []
        for batch, fb in traffic.batches(600, 200):
            inferences += batch
            feedback += fb
            _post(api, "/v1/inferences", batch, headers)
            _post(api, "/v1/feedback", fb, headers)
        api.wait_written()
        return api, headers, inferences, feedback

    def test_pagination_walks_every_item_once_newest_first(self, loaded) -> None:
        api, headers, _, feedback = loaded
        seen, cursor = [], None
        while True:
            params = {"limit": 97, **({"cursor": cursor} if cursor else {})}
            page = api.client.get("/v1/feedback", params=params, headers=headers).json()
            seen += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(item["feedback_id"] for item in seen) == sorted(item["feedback_id"] for item in feedback)
        stamps = [(datetime.fromisoformat(item["timestamp"]), item["feedback_id"]) for item in seen]
        assert stamps == sorted(stamps, reverse=True)  # as times: "…51Z" sorts after "…51.810Z" as text

    def test_filters(self, loaded) -> None:
        api, headers, inferences, feedback = loaded
        by_id = {inf["event_id"]: inf for inf in inferences}

        def ids(**params: object) -> set[str]:
            body = api.client.get("/v1/feedback/export", params=params, headers=headers).text
            return {orjson.loads(line)["feedback_id"] for line in body.splitlines()}

        expected_model = {f["feedback_id"] for f in feedback if by_id[f["inference_id"]]["model"] == "gpt-4o-mini"}
        assert ids(model="gpt-4o-mini") == expected_model
        assert ids(kind="rating") == {f["feedback_id"] for f in feedback if f["kind"] == "rating"}
        assert ids(source="annotator") == {f["feedback_id"] for f in feedback if f["source"] == "annotator"}
        route = {f["feedback_id"] for f in feedback if by_id[f["inference_id"]]["tags"]["route"] == "/chat"}
        assert ids(tag="route:/chat") == route
        version = {f["feedback_id"] for f in feedback if by_id[f["inference_id"]]["model_version"] == "2026-11"}
        assert ids(model_version="2026-11") == version
        cut = sorted(f["timestamp"] for f in feedback)[len(feedback) // 2]
        assert ids(since=cut) == {f["feedback_id"] for f in feedback if f["timestamp"] >= cut}

    def test_csv_export(self, loaded) -> None:
        api, headers, _, feedback = loaded
        lines = api.client.get("/v1/feedback/export", params={"format": "csv"}, headers=headers).text.splitlines()
        assert lines[0].startswith("feedback_id,inference_id,timestamp,kind")
        import csv

        rows = list(csv.DictReader(lines))
        assert len(rows) == len(feedback)
        assert all(row["model"] for row in rows)
