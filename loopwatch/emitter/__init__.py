"""Send inference and feedback events from an application to loopwatch (Kafka or HTTP).

``Emitter`` is the entry point; the rest is what its methods return.
"""

from loopwatch.emitter._emitter import Emitter
from loopwatch.emitter._stats import EmitterStats
from loopwatch.emitter._track import TrackedCall, Tracker

__all__ = ["Emitter", "EmitterStats", "TrackedCall", "Tracker"]
