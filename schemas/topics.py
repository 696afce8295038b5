"""Kafka topic names. One prefix (``LOOPWATCH_TOPIC_PREFIX``) so several deployments can share a cluster."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one deployment."""

    prefix: str = "loopwatch"

    @property
    def inference(self) -> str:
        return f"{self.prefix}.inference"

    @property
    def feedback(self) -> str:
        return f"{self.prefix}.feedback"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}.alerts"

    @property
    def retrain(self) -> str:
        return f"{self.prefix}.retrain"

    @property
    def dlq(self) -> str:
        return f"{self.prefix}.dlq"

    def all(self) -> tuple[str, ...]:
        return (self.inference, self.feedback, self.alerts, self.retrain, self.dlq)
