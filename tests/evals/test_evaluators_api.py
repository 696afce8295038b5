"""``/v1/evaluators`` and online evaluations end to end: real app, real chDB, a real judge on 127.0.0.1."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from loopwatch.process import serving_app
from streams.evals import EvaluatorFileError, feedback_id, load_evaluators_file
from streams.evals.sampling import sample_point
from streams.storage import evaluations as queue
from tests.conftest import Api
from tests.evals.conftest import JUDGE_KEY, KEY_ENV, eval_settings, judge_evaluator, send_calls
from tests.evals.judge_server import JudgeServer
from tests.waiting import wait_until


def evaluator_feedback(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = api.client.get("/v1/feedback", params={"source": "evaluator", "limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def evaluations_of(api: Api, headers: dict[str, str], evaluator_id: str) -> dict[str, Any]:
    response = api.client.get(f"/v1/evaluators/{evaluator_id}/evaluations", params={"limit": 1000}, headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def finished(api: Api, headers: dict[str, str], evaluator_id: str, count: int, timeout: float = 60) -> dict[str, Any]:
    """Wait until ``count`` evaluations of the evaluator are done or failed; return its evaluations."""

    def check() -> dict[str, Any] | None:
        body = evaluations_of(api, headers, evaluator_id)
        ended = [item for item in body["items"] if item["status"] in ("done", "error")]
        return body if len(ended) >= count and body["counts"].get("pending", 0) == 0 else None

    return wait_until(check, f"{count} evaluations of {evaluator_id}", timeout=timeout)


class TestCrud:
    """Evaluators are created, listed, changed and deleted per project; bad input is a precise 422."""

    def test_create_list_patch_delete(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("crud")
        created = api.client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["judge"]["api_key_env"] == KEY_ENV
        assert api.client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 409
        listed = api.client.get("/v1/evaluators", headers=headers).json()
        assert [item["evaluator_id"] for item in listed] == ["relevance"]
        assert api.client.get("/v1/evaluators", headers=api.key("other")).json() == []
        patched = api.client.patch("/v1/evaluators/relevance", json={"sampling_rate": 0.25}, headers=headers)
        assert patched.status_code == 200, patched.text
        assert api.client.get("/v1/evaluators/relevance", headers=headers).json()["sampling_rate"] == 0.25
        bad = api.client.patch("/v1/evaluators/relevance", json={"sampling_rate": 2}, headers=headers)
        assert bad.status_code == 422
        assert api.client.delete("/v1/evaluators/relevance", headers=headers).status_code == 204
        assert api.client.get("/v1/evaluators/relevance", headers=headers).status_code == 404
        assert api.client.delete("/v1/evaluators/relevance", headers=headers).status_code == 404

    def test_precise_422s(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("bad")
        no_judge = api.client.post("/v1/evaluators", json=judge_evaluator(judge, judge=None), headers=headers)
        assert no_judge.status_code == 422
        assert "needs 'judge'" in no_judge.text
        regex = {"name": "r", "kind": "code", "code": {"check": "regex_present", "pattern": "("}}
        refused = api.client.post("/v1/evaluators", json=regex, headers=headers)
        assert refused.status_code == 422
        assert "not a valid regular expression" in refused.text
        template = judge_evaluator(judge, template=None, prompt_template='{"only": "json"}')
        assert "uses none of" in api.client.post("/v1/evaluators", json=template, headers=headers).text

    def test_private_judge_refused_unless_allowed(self, data_dir: Path, judge: JudgeServer, judge_key: str) -> None:
        with TestClient(serving_app(eval_settings(data_dir, evaluator_allowed_hosts=""))) as client:
            api = Api(client)
            response = client.post("/v1/evaluators", json=judge_evaluator(judge), headers=api.key("ssrf"))
            assert response.status_code == 422
            detail = response.json()["detail"][0]
            assert detail["loc"] == ["body", "judge", "base_url"]
            assert "loopback address 127.0.0.1" in detail["msg"]
            assert "LOOPWATCH_EVALUATOR_ALLOWED_HOSTS" in detail["msg"]
            storage = api.services.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")


class TestYamlFile:
    """Evaluators load from LOOPWATCH_EVALUATORS_FILE at start-up, like monitors."""

    def test_loaded_at_start(self, data_dir: Path, tmp_path: Path, judge_key: str) -> None:
        path = tmp_path / "evaluators.yaml"
        path.write_text(
            "evaluators:\n"
            "  - project: yaml\n    evaluator_id: is-json\n    name: JSON answers\n    kind: code\n"
            "    code: {check: json_valid}\n    sampling_rate: 0.5\n"
        )
        with TestClient(serving_app(eval_settings(data_dir, evaluators_file=path))) as client:
            api = Api(client)
            listed = client.get("/v1/evaluators", headers=api.key("yaml")).json()
            assert [(e["evaluator_id"], e["sampling_rate"]) for e in listed] == [("is-json", 0.5)]
            storage = api.services.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")

    def test_every_problem_named(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text(
            "- {project: p, evaluator_id: a, name: a, kind: llm_judge}\n"
            "- {project: p, name: b, kind: code, code: {check: length}}\n"
        )
        with pytest.raises(EvaluatorFileError) as raised:
            load_evaluators_file(path)
        message = str(raised.value)
        assert "needs 'judge'" in message
        assert "evaluators[1].evaluator_id: field required" in message
        assert "needs min_chars and/or max_chars" in message


class TestJudgeEvaluations:
    """Sampled calls are judged once each; scores are feedback of source "evaluator"."""

    def test_scores_are_feedback_and_key_stays_secret(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("judged")
        assert api.client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 201
        ids = send_calls(api, headers, 20)
        body = finished(api, headers, "relevance", 20)
        assert body["counts"] == {"done": 20}
        scores = wait_until(lambda: len(found := evaluator_feedback(api, headers)) == 20 and found, "20 scores")
        by_call = {item["inference_id"]: item for item in scores}
        assert set(by_call) == set(ids)
        for index, event_id in enumerate(ids):
            item = by_call[event_id]
            assert item["feedback_id"] == feedback_id("relevance", event_id)
            assert (item["kind"], item["name"], item["source"]) == ("score", "relevance", "evaluator")
            assert item["value"] == (0.1 if index % 2 else 0.9)
            assert item["text"] == ("weak answer" if index % 2 else "good answer")
        usage = body["items"][0]
        assert (usage["judge_model"], usage["input_tokens"], usage["output_tokens"]) == ("judge-1", 100, 20)
        assert len(judge.requests) == 20  # each sampled call judged exactly once
        assert {request.headers["authorization"] for request in judge.requests} == {f"Bearer {JUDGE_KEY}"}
        assert judge.requests[0].body["response_format"]["type"] == "json_schema"
        for path in ("/v1/evaluators", "/v1/evaluators/relevance", "/v1/evaluators/relevance/evaluations"):
            assert JUDGE_KEY not in api.client.get(path, headers=headers).text
        assert JUDGE_KEY not in api.client.get("/v1/feedback", headers=headers).text

    def test_retries_429_and_500_are_recorded(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("retries")
        judge.fail("429", 2)
        assert api.client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 201
        send_calls(api, headers, 1)
        item = finished(api, headers, "relevance", 1)["items"][0]
        assert (item["status"], item["attempts"]) == ("done", 3)
        judge.fail("500", 1)
        send_calls(api, headers, 1, prefix="d")
        body = finished(api, headers, "relevance", 2)
        assert {row["event_id"]: row["attempts"] for row in body["items"]} == {"c-0": 3, "d-0": 2}

    @pytest.mark.parametrize(
        ("mode", "error"),
        [("invalid_json", "not a JSON object"), ("off_schema", "outside [0, 1]"), ("500", "HTTP 500")],
    )
    def test_unusable_answers_are_errors_not_scores(self, api: Api, judge: JudgeServer, mode: str, error: str) -> None:
        headers = api.key(f"bad-{mode}".replace("_", "-"))
        judge.fail(mode, -1)
        assert api.client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 201
        send_calls(api, headers, 2)
        body = finished(api, headers, "relevance", 2)
        assert body["counts"] == {"error": 2}
        assert all(error in item["error"] for item in body["items"]), body["items"]
        assert evaluator_feedback(api, headers) == []

    def test_timeouts_retried_then_error(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("slow")
        judge.delay = 1.0
        judge.fail("slow", -1)
        body = judge_evaluator(judge)
        body["judge"]["timeout_seconds"] = 0.2
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        send_calls(api, headers, 1)
        item = finished(api, headers, "relevance", 1)["items"][0]
        assert item["status"] == "error"
        assert "timed out" in item["error"]
        assert item["attempts"] == api.services.settings.evaluator_max_attempts

    def test_preview_stores_nothing(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("preview")
        body = judge_evaluator(judge, sampling_rate=0)
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        send_calls(api, headers, 8)
        api.wait_written()
        preview = api.client.post("/v1/evaluators/relevance/preview", headers=headers)
        assert preview.status_code == 200, preview.text
        items = preview.json()
        assert len(items) == 5
        assert {item["status"] for item in items} == {"done"}
        assert {item["score"] for item in items} == {0.1, 0.9}
        assert evaluations_of(api, headers, "relevance")["counts"] == {}
        assert evaluator_feedback(api, headers) == []


class TestSamplingAndBudgets:
    """The sampled share is the hash's choice (binomial bounds); a spent budget stops sampling."""

    def test_sampled_share_and_exactly_once(self, api: Api) -> None:
        headers = api.key("share")
        rate, count = 0.3, 2000
        body = {
            "evaluator_id": "len",
            "name": "Length",
            "kind": "code",
            "sampling_rate": rate,
            "code": {"check": "length", "max_chars": 8},
        }
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        ids = send_calls(api, headers, count)
        expected = {event_id for event_id in ids if sample_point("len", event_id) < rate}
        sd = math.sqrt(count * rate * (1 - rate))
        assert abs(len(expected) - count * rate) < 5 * sd
        result = finished(api, headers, "len", len(expected))
        assert result["counts"] == {"done": len(expected)}
        rows = queue.of_evaluator(api.services.storage, "share", "len", limit=count)
        assert {row.sampled.event_id for row in rows} == expected
        scores = wait_until(
            lambda: len(found := evaluator_feedback(api, headers)) == len(expected) and found, "the scores"
        )
        assert len({item["feedback_id"] for item in scores}) == len(expected)

    def test_daily_call_budget_stops_sampling(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("budget")
        body = judge_evaluator(judge, daily_budget_calls=5)
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        send_calls(api, headers, 5)
        finished(api, headers, "relevance", 5)
        api.services.evaluations.budgets._read_at = -1e18  # type: ignore[union-attr]  # re-read usage now
        send_calls(api, headers, 10, prefix="late")
        api.wait_written()  # sampling happens in the flush that wrote them
        state = evaluations_of(api, headers, "relevance")
        assert state["counts"] == {"done": 5}
        assert state["over_budget"] is True
        assert state["calls_today"] == 5
        assert len(judge.requests) == 5
        metrics = api.client.get("/metrics").text
        assert 'loopwatch_evaluator_over_budget{evaluator="relevance",project="budget"} 1.0' in metrics


class TestCodeAndPythonEvaluators:
    """Code checks and a user's function score calls like judges do."""

    def test_python_function(self, api: Api) -> None:
        headers = api.key("python")
        body = {"evaluator_id": "py", "name": "Py", "kind": "python", "function": "tests.evals.user_evals:has_answer"}
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        send_calls(api, headers, 4)
        result = finished(api, headers, "py", 4)
        assert result["counts"] == {"done": 4}
        assert {item["score"] for item in result["items"]} == {1.0}
        assert {item["explanation"] for item in result["items"]} == {"mentions an answer"}

    def test_runaway_function_times_out_and_is_stopped(
        self, api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A function that never returns is an error "timed out after N s", its process is stopped, and the
        worker goes on: more runaway calls than the process has threads to spare, and a second evaluator
        still scores every call."""
        monkeypatch.setenv("LOOPWATCH_TEST_RUNAWAY_DIR", str(tmp_path))  # inherited by the spawned processes
        headers = api.key("python")
        runaway = {"evaluator_id": "runaway", "name": "Runaway", "kind": "python", "timeout_seconds": 0.5,
                   "function": "tests.evals.user_evals:never_returns"}  # fmt: skip
        fine = {"evaluator_id": "py", "name": "Py", "kind": "python", "function": "tests.evals.user_evals:has_answer"}
        for body in (runaway, fine):
            assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        send_calls(api, headers, 8)
        result = finished(api, headers, "runaway", 8, timeout=300)  # each restarts a worker: slow on a busy host
        assert result["counts"] == {"error": 8}
        assert {item["error"] for item in result["items"]} == {"timed out after 0.5 s"}
        assert finished(api, headers, "py", 8)["counts"] == {"done": 8}
        pids = {int(path.read_text()) for path in tmp_path.iterdir() if path.name.startswith("c-")}
        assert pids  # the calls ran, in processes of their own ...
        assert os.getpid() not in pids
        wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "the runaway processes stopped")


class TestFeedbackFilters:
    """An evaluator of thumbs-down calls samples a call when its thumbs-down arrives, not before."""

    def test_thumbs_down_only(self, api: Api) -> None:
        headers = api.key("thumbs")
        body = {"evaluator_id": "down", "name": "Down", "kind": "code", "filters": {"thumbs_down": True},
                "code": {"check": "json_valid"}}  # fmt: skip
        assert api.client.post("/v1/evaluators", json=body, headers=headers).status_code == 201
        send_calls(api, headers, 4)
        api.wait_written()
        assert evaluations_of(api, headers, "down")["counts"] == {}  # no thumbs yet: nothing sampled
        thumbs = [
            {"inference_id": "c-1", "kind": "thumbs", "value": False},
            {"inference_id": "c-2", "kind": "thumbs", "value": True},
        ]
        assert api.client.post("/v1/feedback", json=thumbs, headers=headers).status_code == 202
        result = finished(api, headers, "down", 1)
        assert [(item["event_id"], item["score"]) for item in result["items"]] == [("c-1", 0.0)]


class TestBackfill:
    """Past calls of a time range are queued, evaluated, and the backfill reports its progress."""

    def test_backfill_a_range(self, api: Api, judge: JudgeServer) -> None:
        headers = api.key("backfill")
        old = [
            {"event_id": f"old-{i}", "model": "chat", "prompt": f"q {i}", "response": "a",
             "timestamp": f"2026-11-01T10:{i:02d}:00Z"}
            for i in range(10)
        ]  # fmt: skip
        assert api.client.post("/v1/inferences", json=old, headers=headers).status_code == 202
        api.wait_written()
        assert api.client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 201
        assert evaluations_of(api, headers, "relevance")["counts"] == {}  # created after: nothing sampled
        window = {"since": "2026-11-01T10:02:00Z", "until": "2026-11-01T10:07:00Z"}
        started = api.client.post("/v1/evaluators/relevance/backfill", json=window, headers=headers)
        assert started.status_code == 202, started.text
        backfill = started.json()
        assert backfill["queued"] == 5

        def progress() -> dict[str, Any] | None:
            path = f"/v1/evaluators/relevance/backfills/{backfill['backfill_id']}"
            body = dict(api.client.get(path, headers=headers).json())
            return body if body["finished"] else None

        assert wait_until(progress, "the backfill")["counts"] == {"done": 5}
        scored = {item["inference_id"] for item in evaluator_feedback(api, headers)}
        assert scored == {f"old-{i}" for i in range(2, 7)}
        reversed_range = {"since": window["until"], "until": window["since"]}
        refused = api.client.post("/v1/evaluators/relevance/backfill", json=reversed_range, headers=headers)
        assert refused.status_code == 422
        assert "'since' must be before 'until'" in refused.text


class TestQualityStatistics:
    """Evaluator scores reach the quality statistics by the one feedback path: score_mean per evaluator."""

    def test_score_mean_per_evaluator(self, data_dir: Path, judge: JudgeServer, judge_key: str) -> None:
        settings = eval_settings(data_dir, stats_enabled=True, window_seconds=60, allowed_lateness_seconds=0)
        with TestClient(serving_app(settings)) as client:
            api = Api(client)
            headers = api.key("quality")
            assert client.post("/v1/evaluators", json=judge_evaluator(judge), headers=headers).status_code == 201
            calls = [
                {"event_id": f"q-{i}", "model": "chat", "prompt": f"q {i}" + (" BAD" if i % 2 else ""),
                 "response": "a", "timestamp": f"2026-11-02T10:00:{i:02d}Z"}
                for i in range(10)
            ]  # fmt: skip
            assert client.post("/v1/inferences", json=calls, headers=headers).status_code == 202
            finished(api, headers, "relevance", 10)
            api.wait_written()

            def score_mean() -> list[dict[str, Any]]:
                client.portal.call(api.wait_written_stats)  # type: ignore[union-attr]
                params = {"model": "chat", "metric": "score_mean", "since": "2026-11-02T00:00:00Z"}
                return list(client.get("/v1/stats/quality", params=params, headers=headers).json())

            points = wait_until(score_mean, "the window's score_mean")
            assert [(p["dimension"], round(p["value"], 6), p["sample_size"]) for p in points] == [
                ("relevance", 0.5, 10)
            ]
            storage = api.services.storage
        storage.command(f"DROP DATABASE IF EXISTS {storage.database}")
