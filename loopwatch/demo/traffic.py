"""Synthetic but realistic LLM traffic: several models, routes and users, tokens and latency that
depend on the prompt, occasional errors, and feedback that arrives late and only for some calls.

Seeded, so a run is reproducible; ``drift_at`` switches the traffic to a shifted regime (longer,
shoutier prompts, slower and costlier answers, worse feedback) for the drift demo.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

MODELS = [("gpt-4o-mini", "openai"), ("claude-3-5-haiku-latest", "anthropic"), ("llama-3-8b-internal", "self")]
ROUTES = ["/chat", "/summarise", "/support"]
TOPICS = ["billing", "refund", "password reset", "shipping delay", "api limits", "invoice", "upgrade plan"]
ANSWERS = [
    "Sure, here is how to {t}: open settings, choose the {t} section and follow the steps.",
    "I understand the issue with {t}. Our team resolves most {t} requests within a day.",
    "Thanks for asking about {t}. You can find the details in your account dashboard.",
]


@dataclass
class Traffic:
    project: str
    seed: int = 7
    start: datetime | None = None
    rate_per_second: float = 50.0
    drift_at: int | None = None
    feedback_share: float = 0.3

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        # default: hours ago, so the traffic and its feedback (up to ~3 h late) are already in the past
        self._start = self.start or datetime.now(UTC) - timedelta(hours=4)

    def inference(self, index: int) -> dict[str, Any]:
        rng = self._rng
        drifted = self.drift_at is not None and index >= self.drift_at
        model, provider = MODELS[index % len(MODELS)]
        topic = rng.choice(TOPICS)
        prompt = f"Customer asks about {topic}: " + " ".join(rng.choice(TOPICS) for _ in range(rng.randint(3, 30)))
        if drifted:
            prompt = prompt.upper() + " !!! " + " ".join(rng.choice(TOPICS) for _ in range(rng.randint(40, 90)))
        response = rng.choice(ANSWERS).format(t=topic)
        if drifted:  # the shifted regime: confused, apologetic, rambling answers
            response = "I'm sorry, but I cannot help with that?! " + response * rng.randint(2, 5)
        input_tokens = len(prompt) // 4 + rng.randint(5, 40)
        output_tokens = len(response) // 4 + rng.randint(0, 200) * (3 if drifted else 1)
        error = rng.random() < (0.08 if drifted else 0.01)
        latency = rng.lognormvariate(5.6 if not drifted else 6.4, 0.35) + output_tokens * 0.8
        timestamp = self._start + timedelta(seconds=index / self.rate_per_second)
        return {
            "event_id": f"inf-{self.seed}-{index:08d}",
            "project": self.project,
            "model": model,
            "model_version": "2026-10" if index % 5 else "2026-11",
            "provider": provider,
            "timestamp": timestamp.isoformat(),
            "latency_ms": round(latency, 2),
            "status": "error" if error else "ok",
            "error_type": "timeout" if error else None,
            "input_tokens": input_tokens,
            "output_tokens": 0 if error else output_tokens,
            "prompt": prompt,
            "response": "" if error else response,
            "tags": {"route": rng.choice(ROUTES), "environment": "production", "user": f"u{rng.randint(1, 400):04d}"},
        }

    def feedback_for(self, inference: dict[str, Any], index: int) -> list[dict[str, Any]]:
        """0–2 feedback events, timestamped minutes to hours after the inference, but never later than
        now (a server refuses event times ahead of its clock)."""
        rng = self._rng
        if rng.random() >= self.feedback_share:
            return []
        drifted = self.drift_at is not None and index >= self.drift_at
        happy = rng.random() < (0.45 if drifted else 0.85)
        delay = timedelta(seconds=rng.uniform(30, 3 * 3600))
        now = datetime.now(UTC)
        when = min(datetime.fromisoformat(inference["timestamp"]) + delay, now)
        events = [
            {
                "feedback_id": f"fb-{inference['event_id']}-t",
                "inference_id": inference["event_id"],
                "project": self.project,
                "timestamp": when.isoformat(),
                "kind": "thumbs",
                "value": 1 if happy else -1,
                "source": "user",
                "user_id": inference["tags"]["user"],
            }
        ]
        if not happy and rng.random() < 0.5:
            events.append(
                {
                    "feedback_id": f"fb-{inference['event_id']}-c",
                    "inference_id": inference["event_id"],
                    "project": self.project,
                    "timestamp": min(when + timedelta(minutes=5), now).isoformat(),
                    "kind": "correction",
                    "text": "A better answer: " + inference["response"][:200],
                    "source": "annotator",
                }
            )
        elif rng.random() < 0.3:
            events.append(
                {
                    "feedback_id": f"fb-{inference['event_id']}-r",
                    "inference_id": inference["event_id"],
                    "project": self.project,
                    "timestamp": when.isoformat(),
                    "kind": "rating",
                    "value": rng.randint(3, 5) if happy else rng.randint(1, 3),
                    "source": "user",
                }
            )
        return events

    def batches(self, count: int, batch_size: int) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """(inferences, their feedback) in batches; feedback is sent after its inference batch."""
        for begin in range(0, count, batch_size):
            inferences = [self.inference(i) for i in range(begin, min(begin + batch_size, count))]
            feedback = [fb for i, inf in enumerate(inferences, begin) for fb in self.feedback_for(inf, i)]
            yield inferences, feedback
