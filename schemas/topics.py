"""Kafka topic names: part of the wire format, which lives in the SDK (``loopwatch_sdk.wire``).

Re-exported so the server keeps one ``schemas`` import for every contract.
"""

from loopwatch_sdk.wire import Topics

__all__ = ["Topics"]
