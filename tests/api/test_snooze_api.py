"""``/v1/monitors/{id}/snoozes/{model}`` over HTTP: set, read, list, lift; precise 4xx for bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import Api

P95 = {
    "monitor_id": "slow",
    "name": "Slow answers",
    "family": "latency",
    "metric": "latency_p95_ms",
    "condition": {"type": "threshold", "operator": "gt", "value": 2000},
}


class TestSnoozeApi:
    """A snooze until a time, for one model or all; lifted by DELETE."""

    def test_snooze_list_and_lift(self, api: Api) -> None:
        headers = api.key("shop")
        assert api.client.post("/v1/monitors", json=P95, headers=headers).status_code == 201
        until = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
        response = api.client.put(
            "/v1/monitors/slow/snoozes/gpt-4o", json={"until": until.isoformat()}, headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "gpt-4o"
        listed = api.client.get("/v1/monitors/slow/snoozes", headers=headers).json()
        assert [(s["model"], datetime.fromisoformat(s["until"])) for s in listed] == [("gpt-4o", until)]
        assert api.client.get("/v1/monitors/slow/snoozes/gpt-4o", headers=headers).json()["model"] == "gpt-4o"
        assert api.client.delete("/v1/monitors/slow/snoozes/gpt-4o", headers=headers).status_code == 204
        assert api.client.get("/v1/monitors/slow/snoozes", headers=headers).json() == []
        gone = api.client.get("/v1/monitors/slow/snoozes/gpt-4o", headers=headers)
        assert gone.status_code == 404
        assert gone.json()["detail"] == "monitor 'slow' is not snoozed for 'gpt-4o'"
        assert api.client.delete("/v1/monitors/slow/snoozes/gpt-4o", headers=headers).status_code == 404
        assert api.client.get("/v1/monitors/slow", headers=headers).json()["resolve_after"] == 2

    def test_bad_input(self, api: Api) -> None:
        headers = api.key("shop")
        assert api.client.post("/v1/monitors", json=P95, headers=headers).status_code == 201
        past = api.client.put("/v1/monitors/slow/snoozes/*", json={"until": "2020-01-01T00:00:00Z"}, headers=headers)
        assert past.status_code == 422
        assert past.json()["detail"] == [
            {
                "loc": ["body", "until"],
                "msg": "until must be in the future (DELETE the snooze to lift it)",
                "type": "value_error",
            }
        ]
        far = (datetime.now(UTC) + timedelta(days=91)).isoformat()
        too_far = api.client.put("/v1/monitors/slow/snoozes/*", json={"until": far}, headers=headers)
        assert too_far.status_code == 422
        assert too_far.json()["detail"][0]["msg"] == "until is at most 90 days ahead"
        soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        unknown = api.client.put("/v1/monitors/nope/snoozes/*", json={"until": soon}, headers=headers)
        assert unknown.status_code == 404
        assert unknown.json()["detail"] == "no monitor 'nope' in this project"
