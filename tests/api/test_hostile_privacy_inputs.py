"""Hostile input on the newest decoders: the evaluator agreement's query and the privacy policy bodies.

Invalid UTF-8, NUL bytes, huge numbers, wrong types and random bytes each get a 4xx that names the
problem, never a 500, and the stored policy stays what it was (real app, real chDB)."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api

ADMIN = "hostile"
IS_JSON = {"evaluator_id": "is-json", "name": "JSON", "kind": "code", "code": {"check": "json_valid"}}
HUGE = "9" * 400  # past every int and float a field takes


@pytest.fixture
def admin(api: Api) -> dict[str, str]:
    made = api.services.keys.create(ADMIN, "test", scope="admin")
    return {"authorization": f"Bearer {made.token}"}


def _detail(response: object) -> str:
    """The error's words, as one string (a 422's list of problems or a 400's sentence)."""
    body = response.json()  # type: ignore[attr-defined]
    detail = body["detail"]
    return detail if isinstance(detail, str) else " | ".join(f"{p['loc']}: {p['msg']}" for p in detail)


class TestAgreementQuery:
    """GET /v1/evaluators/{id}/agreement refuses a bad ``from``/``to``/``against`` by name."""

    @pytest.mark.parametrize(
        ("params", "loc", "words"),
        [
            ({"from": "2026-03-0\x002T00:00:00Z"}, "from", "datetime"),
            ({"to": "\x00"}, "to", "datetime"),
            ({"from": HUGE}, "from", ""),
            ({"to": "-" + HUGE}, "to", ""),
            ({"from": "99999-01-01T00:00:00Z"}, "from", ""),
            ({"against": "thumbs\x00"}, "against", "'thumbs'"),
            ({"against": HUGE}, "against", "'thumbs'"),
            ({"from": "[1, 2]"}, "from", ""),
            ({"to": "true"}, "to", ""),
        ],
    )
    def test_bad_values_are_named(
        self, api: Api, admin: dict[str, str], params: dict[str, str], loc: str, words: str
    ) -> None:
        assert api.client.post("/v1/evaluators", json=IS_JSON, headers=admin).status_code == 201
        response = api.client.get("/v1/evaluators/is-json/agreement", params=params, headers=admin)
        assert response.status_code == 422, response.text
        assert f"'{loc}'" in _detail(response)
        assert words in _detail(response)

    def test_invalid_utf8_in_the_query_is_a_4xx(self, api: Api, admin: dict[str, str]) -> None:
        assert api.client.post("/v1/evaluators", json=IS_JSON, headers=admin).status_code == 201
        for raw in ("from=%FF%FE", "against=%C3%28", "to=%ED%A0%80", "from=%00"):
            response = api.client.get(f"/v1/evaluators/is-json/agreement?{raw}", headers=admin)
            assert 400 <= response.status_code < 500, (raw, response.status_code, response.text)
            assert _detail(response), raw

    def test_hostile_evaluator_ids_are_a_404_or_422(self, api: Api, admin: dict[str, str]) -> None:
        for evaluator_id in ("%00", "%FF%FE", "a" * 5000, "..%2F..%2Fetc"):
            response = api.client.get(f"/v1/evaluators/{evaluator_id}/agreement", headers=admin)
            assert response.status_code in (404, 422), (evaluator_id, response.status_code, response.text)
            assert _detail(response)


POLICY_PATHS = ("/v1/privacy/policy", "/v1/privacy/retention")


class TestPolicyBodies:
    """PUT /v1/privacy/policy and /v1/privacy/retention refuse a hostile body; the stored policy stays."""

    @pytest.mark.parametrize(
        ("path", "body", "words"),
        [
            ("/v1/privacy/retention", b'{"events": ' + HUGE.encode() + b"}", "events"),
            ("/v1/privacy/retention", b'{"events": 1e400}', "finite number"),  # read as inf
            ("/v1/privacy/retention", b'{"events": -1}', "events"),
            ("/v1/privacy/retention", b'{"events": "thirty"}', "events"),
            ("/v1/privacy/retention", b'{"events": NaN}', ""),
            ("/v1/privacy/retention", b'{"events": [30]}', "events"),
            ("/v1/privacy/retention", b'{"events\\u0000": 30}', "Extra inputs"),
            ("/v1/privacy/retention", b'{"raw_text": 7.5}', "raw_text"),
            ("/v1/privacy/retention", b"[]", "dictionary"),
            ("/v1/privacy/retention", b"\xff\xfe{}", ""),
            ("/v1/privacy/retention", b'{"events": "\xff"}', ""),
            ("/v1/privacy/retention", b"\x00", ""),
            ("/v1/privacy/policy", b'{"mode": "mask\\u0000"}', "mode"),
            ("/v1/privacy/policy", b'{"mode": 1}', "mode"),
            ("/v1/privacy/policy", b'{"mode": "mask", "detectors": "email"}', "detectors"),
            ("/v1/privacy/policy", b'{"fields": [' + HUGE.encode() + b"]}", "fields"),
            ("/v1/privacy/policy", b'{"custom": [{"name": "x", "pattern": "\\u0000"}]}', "custom"),
            ("/v1/privacy/policy", b'{"custom": {"name": "x"}}', "custom"),
            ("/v1/privacy/policy", b'{"mode": "\xc3\x28"}', ""),
            ("/v1/privacy/policy", b"{" * 5000, ""),
        ],
    )
    def test_bad_bodies_are_named(self, api: Api, admin: dict[str, str], path: str, body: bytes, words: str) -> None:
        before = api.client.get(path, headers=admin).json()
        response = api.client.put(path, content=body, headers={**admin, "content-type": "application/json"})
        assert 400 <= response.status_code < 500, response.text
        assert words in _detail(response), _detail(response)
        assert api.client.get(path, headers=admin).json() == before

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(body=st.binary(max_size=200), path=st.sampled_from(POLICY_PATHS))
    def test_random_bytes_never_make_a_500(self, api: Api, admin: dict[str, str], body: bytes, path: str) -> None:
        response = api.client.put(path, content=body, headers={**admin, "content-type": "application/json"})
        if response.status_code == 200:  # random bytes that happen to be a valid policy ("{}", say)
            assert orjson.loads(body) is not None
            return
        assert 400 <= response.status_code < 500, response.text
        assert _detail(response)
