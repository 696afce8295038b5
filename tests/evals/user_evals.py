"""A user's evaluator function, imported by dotted path (``tests.evals.user_evals:has_answer``)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from streams.evals.call import Call


def has_answer(call: Call) -> dict[str, object]:
    return {"score": "answer" in call.response, "explanation": "mentions an answer"}


def never_returns(call: Call) -> float:
    """A runaway evaluator: writes its process id where ``LOOPWATCH_TEST_RUNAWAY_DIR`` says, then never returns."""
    Path(os.environ["LOOPWATCH_TEST_RUNAWAY_DIR"], call.event_id).write_text(str(os.getpid()))
    threading.Event().wait()
    return 1.0
