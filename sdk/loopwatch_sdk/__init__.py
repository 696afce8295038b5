"""loopwatch's SDK: send inference and feedback events from an application (Kafka or HTTP).

Installed on its own as the ``loopwatch-sdk`` distribution (pydantic, httpx, kafka-python, structlog;
none of the server's dependencies). ``Emitter`` is the entry point; the rest is what its methods return.
The server (``loopwatch``) depends on this distribution and re-exports these names as ``loopwatch.emitter``.
"""

from loopwatch_sdk._emitter import Emitter
from loopwatch_sdk._stats import EmitterStats
from loopwatch_sdk._track import TrackedCall, Tracker

__all__ = ["Emitter", "EmitterStats", "TrackedCall", "Tracker"]
