"""The judge client against a real HTTP judge: a failing endpoint opens its breaker, which closes again."""

from __future__ import annotations

import asyncio

import pytest

from schemas.evaluators import JudgeEndpoint, ScoreOutput
from streams.evals.judge import AllowedHosts, BreakerOpenError, JudgeClient, JudgeError
from tests.evals.judge_server import JudgeServer
from tests.waiting import wait_until


def test_breaker_opens_and_closes(judge: JudgeServer) -> None:
    async def scenario() -> None:
        client = JudgeClient(AllowedHosts("127.0.0.1"), max_attempts=1, breaker_threshold=2, breaker_seconds=0.3)
        endpoint = JudgeEndpoint(base_url=judge.base_url, model="judge-1")
        judge.fail("500", -1)
        for _ in range(2):
            with pytest.raises(JudgeError, match="HTTP 500"):
                await client.judge(endpoint, "question", ScoreOutput())
        assert client.breaker_states() == {judge.base_url: "open"}
        with pytest.raises(BreakerOpenError):
            await client.judge(endpoint, "question", ScoreOutput())
        assert len(judge.requests) == 2  # the open breaker did not call
        await asyncio.to_thread(wait_until, lambda: client.breaker_states()[judge.base_url] == "half_open", "half-open")
        with pytest.raises(JudgeError):  # the trial call fails: open again
            await client.judge(endpoint, "question", ScoreOutput())
        assert client.breaker_states() == {judge.base_url: "open"}
        judge.fail("ok", 0)
        await asyncio.to_thread(wait_until, lambda: client.breaker_states()[judge.base_url] == "half_open", "half-open")
        verdict = await client.judge(endpoint, "question", ScoreOutput())
        assert verdict.score == 0.9
        assert client.breaker_states() == {judge.base_url: "closed"}
        await client.aclose()

    asyncio.run(scenario())


def test_retry_after_is_honoured(judge: JudgeServer) -> None:
    async def scenario() -> None:
        client = JudgeClient(AllowedHosts("127.0.0.1"), max_attempts=3, backoff_seconds=0.01)
        judge.fail("429", 1)
        judge.retry_after = "0.3"
        verdict = await client.judge(JudgeEndpoint(base_url=judge.base_url, model="j"), "q BAD", ScoreOutput())
        assert (verdict.score, verdict.attempts) == (0.1, 2)
        assert verdict.latency_ms >= 300  # waited what the server asked, not the 10 ms backoff
        await client.aclose()

    asyncio.run(scenario())
