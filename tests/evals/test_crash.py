"""A server killed with SIGKILL mid-evaluation loses no sampled call and stores no second score."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson

from tests.evals.judge_server import JudgeServer
from tests.server_process import ServerProcess, run_cli
from tests.waiting import wait_until

CALLS = 40


def test_kill_9_mid_evaluation_then_restart(tmp_path: Path, judge: JudgeServer) -> None:
    token = run_cli(tmp_path, "keys", "create", "--project", "crash").strip().splitlines()[-1]
    headers = {"authorization": f"Bearer {token}"}
    settings = {"evaluator_allowed_hosts": "127.0.0.1", "evaluator_concurrency": "2", "stats_enabled": "false"}
    judge.delay = 0.2
    judge.fail("slow", -1)  # every answer takes 0.2 s: the kill lands mid-run
    evaluator = {
        "evaluator_id": "relevance",
        "name": "Relevance",
        "kind": "llm_judge",
        "template": "answer_relevance",
        "judge": {"base_url": judge.base_url, "model": "judge-1", "timeout_seconds": 10},
    }
    server = ServerProcess(tmp_path, **settings)
    try:
        assert httpx.post(f"{server.url}/v1/evaluators", json=evaluator, headers=headers).status_code == 201
        calls = [{"event_id": f"k-{i}", "model": "chat", "prompt": f"q {i}", "response": "a"} for i in range(CALLS)]
        sent = httpx.post(f"{server.url}/v1/inferences", content=orjson.dumps(calls), headers=headers, timeout=30)
        assert sent.status_code == 202
        wait_until(lambda: len(judge.requests) >= 6, "the judge to be busy")
    finally:
        server.kill()
    judged_before = {request.body["messages"][-1]["content"] for request in judge.requests}
    assert len(judged_before) < CALLS  # killed mid-run

    server = ServerProcess(tmp_path, **settings)
    try:

        def evaluations() -> dict[str, object]:
            response = httpx.get(f"{server.url}/v1/evaluators/relevance/evaluations?limit=1000", headers=headers)
            return dict(response.json())

        state = wait_until(lambda: (found := evaluations())["counts"] == {"done": CALLS} and found, "every call scored")
        assert {item["event_id"] for item in state["items"]} == {f"k-{i}" for i in range(CALLS)}  # type: ignore[union-attr]
        feedback = httpx.get(f"{server.url}/v1/feedback?source=evaluator&limit=1000", headers=headers).json()["items"]
        assert sorted(item["inference_id"] for item in feedback) == sorted(f"k-{i}" for i in range(CALLS))
        assert len({item["feedback_id"] for item in feedback}) == CALLS
    finally:
        server.terminate(60)
