"""``/v1/queues``: rules fill a queue, reviewers hold items one at a time, reviews become feedback and
datasets, agreement is computed where items were reviewed twice; over the real app and chDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from tests.conftest import Api

T0 = datetime(2026, 6, 1, tzinfo=UTC)
FIELDS = [
    {"name": "verdict", "type": "labels", "labels": ["good", "bad"]},
    {"name": "quality", "type": "range", "min": 1, "max": 5},
    {"name": "fix", "type": "correction", "required": False},
]


def calls() -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"c{i}",
            "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
            "model": "m",
            "model_version": "v2" if i >= 6 else "v1",
            "status": "error" if i in (1, 2) else "ok",
            "prompt": f"prompt {i}",
            "response": f"response {i}",
            "tags": {"route": "/r"},
        }
        for i in range(10)
    ]


def post(api: Api, key: dict[str, str], path: str, body: Any, code: int = 202) -> Any:
    response = api.client.post(path, headers=key, json=body)
    assert response.status_code == code, response.text
    return response.json() if response.content else None


@pytest.fixture
def project(api: Api) -> tuple[Api, dict[str, str]]:
    key = api.key("q")
    post(api, key, "/v1/inferences", calls())
    post(
        api,
        key,
        "/v1/feedback",
        [
            {"inference_id": "c3", "kind": "thumbs", "value": -1},
            {"inference_id": "c4", "kind": "thumbs", "value": 1},
            {"inference_id": "c5", "kind": "score", "name": "faithful", "value": 0.2, "source": "evaluator"},
            {"inference_id": "c7", "kind": "score", "name": "faithful", "value": 0.9, "source": "evaluator"},
        ],
    )
    api.wait_written()
    return api, key


def reviewer(api: Api, name: str) -> dict[str, str]:
    token = api.services.keys.create("q", name, "review").token
    return {"authorization": f"Bearer {token}"}


def queue(api: Api, key: dict[str, str], queue_id: str, **extra: Any) -> dict[str, Any]:
    body = {"queue_id": queue_id, "fields": FIELDS, **extra}
    return post(api, key, "/v1/queues", body, 201)  # type: ignore[no-any-return]


class TestFilling:
    """Rules take the calls they match (any rule), hand-added calls must exist."""

    def test_rules_take_thumbs_down_errors_and_low_evaluator_scores(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        rules = [{"thumbs_down": True}, {"errors": True, "model_version": "v1"}, {"evaluator_below": 0.5}]
        created = queue(api, key, "triage", rules=rules)
        assert created["progress"]["items"] == 4  # c3 thumbs-down, c1 c2 errors, c5 low evaluator score
        assert post(api, key, "/v1/queues/triage/fill", None, 200) == {"added": 0}  # a refill adds nothing new
        assert post(api, key, "/v1/queues/triage/items", {"inference_ids": ["c9"]}, 200) == {"added": 1}
        missing = api.client.post("/v1/queues/triage/items", headers=key, json={"inference_ids": ["nope"]})
        assert missing.status_code == 404
        assert missing.json()["detail"] == "no stored call with id 'nope' in this project"

    def test_sampling_takes_a_share_and_the_same_calls_again(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        half = queue(api, key, "half", rules=[{"sample_rate": 0.5}])["progress"]["items"]
        again = queue(api, key, "half-again", rules=[{"sample_rate": 0.5}])["progress"]["items"]
        assert 0 < half < 10
        assert half == again

    def test_calls_of_drifted_windows(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        start = T0 + timedelta(minutes=5)
        api.services.storage.insert_rows(
            "window_stats",
            [
                "project",
                "model",
                "model_version",
                "window_start",
                "window_end",
                "family",
                "metric",
                "dimension",
                "value",
                "flagged",
                "sample_size",
                "details",
            ],
            [["q", "m", "", start, start + timedelta(minutes=3), "drift", "family_drift", "prompt", 1.0, 1, 3, "{}"]],
        )
        assert queue(api, key, "drift", rules=[{"drifted": True}])["progress"]["items"] == 3  # c5, c6, c7

    def test_bad_configuration_is_a_422_naming_the_field(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        bad = api.client.post(
            "/v1/queues", headers=key, json={"queue_id": "x", "fields": [{"name": "r", "type": "range", "min": 5}]}
        )
        assert bad.status_code == 422
        assert "a range field needs min < max" in bad.json()["detail"][0]["msg"]
        queue(api, key, "dup")
        assert api.client.post("/v1/queues", headers=key, json={"queue_id": "dup", "fields": FIELDS}).status_code == 409


class TestReviewing:
    """Holds keep reviewers apart; reviews are feedback by name; undo and skip; agreement."""

    def test_two_reviewers_never_get_the_same_item_and_reviews_are_feedback(
        self, project: tuple[Api, dict[str, str]]
    ) -> None:
        api, key = project
        queue(api, key, "pair", rules=[{"errors": True}])  # c1, c2
        ana, ben = reviewer(api, "ana"), reviewer(api, "ben")
        first = post(api, ana, "/v1/queues/pair/next", None, 200)
        assert post(api, ana, "/v1/queues/pair/next", None, 200)["inference_id"] == first["inference_id"]  # kept
        second = post(api, ben, "/v1/queues/pair/next", None, 200)
        assert {first["inference_id"], second["inference_id"]} == {"c1", "c2"}
        assert first["call"]["prompt"] == f"prompt {first['inference_id'][1:]}"
        assert api.client.post("/v1/queues/pair/next", headers=reviewer(api, "cy")).status_code == 204  # all held
        stolen = api.client.post(
            f"/v1/queues/pair/items/{first['inference_id']}/review", headers=ben, json={"scores": {}}
        )
        assert stolen.status_code == 409 and "another reviewer has it" in stolen.json()["detail"]
        scores = {"verdict": "bad", "quality": 2, "fix": "a better answer"}
        done = post(api, ana, f"/v1/queues/pair/items/{first['inference_id']}/review", {"scores": scores}, 201)
        assert len(done["feedback_ids"]) == 3
        api.wait_written()
        got = api.client.get("/v1/feedback", headers=key, params={"source": "annotator"}).json()["items"]
        assert sorted((f["kind"], f["name"], f["value"], f["text"], f["user_id"]) for f in got) == [
            ("correction", "fix", None, "a better answer", "ana"),
            ("label", "verdict", "bad", "", "ana"),
            ("score", "quality", 2.0, "", "ana"),
        ]
        progress = api.client.get("/v1/queues/pair", headers=key).json()["progress"]
        assert progress == {"items": 2, "done": 1, "held": 1, "reviewers": {"ana": {"reviews": 1, "skips": 0}}}

    def test_bad_answers_skip_and_undo(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        queue(api, key, "solo", rules=[{"errors": True}])
        ana = reviewer(api, "ana")
        item = post(api, ana, "/v1/queues/solo/next", None, 200)["inference_id"]
        path = f"/v1/queues/solo/items/{item}/review"
        for scores, where, message in (
            ({"verdict": "meh", "quality": 3}, "verdict", "one of good, bad"),
            ({"verdict": "good", "quality": 9}, "quality", "9 is outside 1–5"),
            ({"verdict": "good"}, "quality", "range field 'quality' is required"),
            ({"verdict": "good", "quality": 3, "extra": 1}, "extra", "the queue's form has no field 'extra'"),
        ):
            bad = api.client.post(path, headers=ana, json={"scores": scores})
            assert bad.status_code == 422
            assert bad.json()["detail"][0] == {"loc": ["body", "scores", where], "msg": message, "type": "value_error"}
        assert api.client.post(f"/v1/queues/solo/items/{item}/skip", headers=ana).status_code == 204
        other = post(api, ana, "/v1/queues/solo/next", None, 200)["inference_id"]
        assert other != item
        assert post(api, ana, "/v1/queues/solo/undo", None, 200)["inference_id"] == item  # the skip, withdrawn
        assert api.client.post("/v1/queues/solo/undo", headers=ana).status_code == 409  # nothing left to undo
        assert api.client.post("/v1/queues/solo/next", headers=ana).json()["inference_id"] == item  # back to it

    def test_agreement_and_a_dataset_of_the_reviews(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        queue(api, key, "twice", rules=[{"model_version": "v1"}], reviews_per_item=2)  # c0 … c5
        people = {name: reviewer(api, name) for name in ("ana", "ben")}
        verdicts = {
            "ana": ["good", "good", "bad", "bad", "good", "bad"],
            "ben": ["good", "bad", "bad", "bad", "good", "good"],
        }
        for name, headers in people.items():
            for verdict in verdicts[name]:
                item = post(api, headers, "/v1/queues/twice/next", None, 200)["inference_id"]
                scores = {"verdict": verdict, "quality": 3, "fix": f"{name} fixed {item}"}
                post(api, headers, f"/v1/queues/twice/items/{item}/review", {"scores": scores}, 201)
            assert api.client.post("/v1/queues/twice/next", headers=headers).status_code == 204
        out = api.client.get("/v1/queues/twice", headers=key).json()
        assert out["progress"]["done"] == 6
        # both reviewed the six items in order: agree on 4 of 6; p_o = 2/3, p_e = 0.5 → κ = 1/3
        assert out["agreement"] == [{"field": "verdict", "items": 6, "method": "cohen", "kappa": pytest.approx(1 / 3)}]
        api.wait_written()
        made = api.client.post(
            "/v1/datasets",
            headers=key,
            params={"kind": "correction"},
            json={"name": "reviewed", "format": "dpo", "queue_id": "twice"},
        )
        assert made.status_code == 201, made.text
        lines = [
            orjson.loads(line) for line in api.client.get(made.json()["download_url"], headers=key).content.splitlines()
        ]
        assert sorted(line["chosen"] for line in lines) == sorted(
            f"{n} fixed c{i}" for n in ("ana", "ben") for i in range(6)
        )

    def test_scopes_keep_reviewers_and_readers_apart(self, project: tuple[Api, dict[str, str]]) -> None:
        api, key = project
        queue(api, key, "s", rules=[{"errors": True}])
        reader = {"authorization": f"Bearer {api.services.keys.create('q', 'r', 'read').token}"}
        refused = api.client.post("/v1/queues/s/next", headers=reader)
        assert refused.status_code == 403
        assert refused.json()["detail"] == (
            "this API key has scope 'read', which does not allow reviewing queue items (a key of scope 'review')"
        )
        assert api.client.get("/v1/feedback", headers=reviewer(api, "ana")).status_code == 403
