"""A user's evaluator function, imported by dotted path (``tests.evals.user_evals:has_answer``)."""

from __future__ import annotations

from streams.evals.call import Call


def has_answer(call: Call) -> dict[str, object]:
    return {"score": "answer" in call.response, "explanation": "mentions an answer"}
