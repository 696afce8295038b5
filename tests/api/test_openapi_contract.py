"""The OpenAPI says what the server does: each mismatch schemathesis found, pinned by a direct test.

``test_openapi_fuzz`` finds such mismatches by generation; these name them one by one, against the real
app (embedded runner, chDB), so a regression says which promise broke.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from schemas.settings import Settings
from tests.conftest import Api, make_settings

ADMIN_KEY = "contract-admin-key-0123456789"

P95 = {
    "name": "Slow answers",
    "family": "latency",
    "metric": "latency_p95_ms",
    "condition": {"type": "threshold", "operator": "gt", "value": 2000},
}


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir, admin_key=ADMIN_KEY)


def _spec(api: Api) -> dict[str, Any]:
    return api.client.get("/openapi.json").json()  # type: ignore[no-any-return]


class TestSchemaDocument:
    """The document itself: every reference resolves, request bodies say what the server needs."""

    def test_every_ref_resolves(self, api: Api) -> None:
        spec = _spec(api)
        refs = set(re.findall(r'"\$ref": ?"#/components/schemas/([^"]+)"', api.client.get("/openapi.json").text))
        assert refs
        assert refs <= spec["components"]["schemas"].keys()

    def test_ingest_bodies_take_the_project_from_the_key(self, api: Api) -> None:
        schemas = _spec(api)["components"]["schemas"]
        assert "project" not in schemas["InferenceEvent"]["required"]
        assert "project" not in schemas["FeedbackEvent"]["required"]
        body = _spec(api)["paths"]["/v1/inferences"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["oneOf"][1]["minItems"] == 1

    def test_feedback_value_rules_per_kind(self, api: Api) -> None:
        branches = {
            str(b["properties"]["kind"]): b for b in _spec(api)["components"]["schemas"]["FeedbackEvent"]["oneOf"]
        }
        assert branches["{'const': 'rating'}"]["properties"]["value"] == {"type": "number", "minimum": 1, "maximum": 5}
        assert branches["{'const': 'score'}"]["required"] == ["value", "name"]

    def test_monitor_metrics_per_family_and_condition_tag_required(self, api: Api) -> None:
        schemas = _spec(api)["components"]["schemas"]
        latency = next(
            b for b in schemas["MonitorCreate"]["oneOf"] if b["properties"]["family"] == {"const": "latency"}
        )
        assert "latency_p95_ms" in latency["properties"]["metric"]["enum"]
        assert latency["properties"]["condition"]["properties"]["type"]["enum"] == ["threshold"]
        assert schemas["ThresholdCondition"]["required"][0] == "type"


class TestAllowHeader:
    """A 405 lists every method of the path, not the first route's."""

    @pytest.mark.parametrize(
        ("path", "allowed"), [("/v1/feedback", "GET, POST"), ("/v1/monitors/m1", "DELETE, GET, PATCH")]
    )
    def test_options(self, api: Api, path: str, allowed: str) -> None:
        response = api.client.options(path, headers=api.key("allow"))
        assert response.status_code == 405
        assert response.headers["allow"] == allowed


class TestTimeParameters:
    """Any date-time the spec allows is a bound (clamped to what can be stored); ranges must be ordered."""

    @pytest.mark.parametrize("since", ["0001-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00", "2312-06-24T20:37:24Z"])
    def test_bounds_outside_the_storable_range(self, api: Api, since: str) -> None:
        headers = api.key("times")
        for path in ("/v1/feedback", "/v1/alerts", "/v1/stats/latency", "/v1/retrain-requests"):
            assert api.client.get(path, params={"since": since}, headers=headers).status_code == 200

    def test_unix_time_is_not_a_date_time(self, api: Api) -> None:
        response = api.client.get("/v1/alerts", params={"until": "1800000000"}, headers=api.key("times"))
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "until"]

    def test_a_report_outside_the_storable_range_is_not_found(self, api: Api) -> None:
        params = {"model": "m", "window_start": "2312-06-24T20:37:24Z"}
        assert api.client.get("/v1/reports/drift", params=params, headers=api.key("times")).status_code == 404


class TestFeedbackFilters:
    """Tag and cursor formats are patterns in the spec, and every string matching them is accepted."""

    def test_tag_and_cursor_patterns(self, api: Api) -> None:
        headers = api.key("filters")
        parameters = {p["name"]: p["schema"] for p in _spec(api)["paths"]["/v1/feedback"]["get"]["parameters"]}
        cursor_pattern = parameters["cursor"]["anyOf"][0]["pattern"]
        assert re.fullmatch(cursor_pattern, "1796011506789_fb_1:x")
        for cursor in ("0_a", "9999999999999_" + "x" * 128):
            assert api.client.get("/v1/feedback", params={"cursor": cursor}, headers=headers).status_code == 200
        assert api.client.get("/v1/feedback", params={"tag": ":x"}, headers=headers).status_code == 422
        assert api.client.get("/v1/feedback", params={"tag": "k:"}, headers=headers).status_code == 200


class TestMonitors:
    """Built-in ids are reserved, huge numbers are refused, a null in a PATCH changes nothing."""

    def test_builtin_id_cannot_be_taken_so_a_delete_deletes(self, api: Api) -> None:
        headers = api.key("builtin")
        taken = api.client.post("/v1/monitors", json={**P95, "monitor_id": "default-latency-p95"}, headers=headers)
        assert taken.status_code == 409
        assert "built-in" in taken.json()["detail"]
        deleted = api.client.delete("/v1/monitors/default-latency-p95", headers=headers)
        assert deleted.status_code == 409
        assert "cannot be deleted" in deleted.json()["detail"]

    def test_min_samples_past_64_bits_is_a_422(self, api: Api) -> None:
        response = api.client.post("/v1/monitors", json={**P95, "min_samples": 10**35}, headers=api.key("huge"))
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "min_samples"]

    def test_patch_with_null_leaves_the_field(self, api: Api) -> None:
        headers = api.key("patch")
        created = api.client.post("/v1/monitors", json=P95, headers=headers).json()
        patched = api.client.patch(
            f"/v1/monitors/{created['monitor_id']}", json={"name": None, "severity": "info"}, headers=headers
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["name"], patched.json()["severity"]) == ("Slow answers", "info")


class TestReferences:
    """A JSON body is a time range; a dataset must have columns."""

    def test_json_with_a_dataset_format_is_refused(self, api: Api) -> None:
        response = api.client.post(
            "/v1/models/m/reference",
            params={"format": "jsonl"},
            headers=api.key("ref"),
            json={"start": "2026-01-01T00:00:00Z"},
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "format"]

    def test_a_dataset_without_columns_is_refused(self, api: Api) -> None:
        response = api.client.post(
            "/v1/models/m/reference", params={"format": "jsonl"}, headers=api.key("ref"), content=b"{}\n{}"
        )
        assert response.status_code == 422
        assert "no columns" in response.json()["detail"][0]["msg"]

    def test_a_range_outside_the_storable_range_is_clamped(self, api: Api) -> None:
        response = api.client.post(
            "/v1/models/m/reference",
            headers=api.key("ref"),
            json={"start": "1500-01-01T00:00:00Z", "end": "2400-01-01T00:00:00Z"},
        )
        assert response.status_code == 404  # no traffic of m anywhere: not a 422 about the years
        assert "no inferences" in response.json()["detail"]


class TestKeys:
    """Times in responses are RFC 3339 date-times, with their offset."""

    def test_listed_keys_have_aware_times(self, api: Api) -> None:
        api.services.keys.create("listed")
        listed = api.client.get("/v1/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert listed
        assert all(key["created_at"].endswith(("Z", "+00:00")) for key in listed)
