"""The SDK's public names under the server package's name, so ``from loopwatch.emitter import Emitter`` works.

The implementation is the ``loopwatch-sdk`` distribution (``loopwatch_sdk``), which apps install alone.
"""

from loopwatch_sdk import Emitter, EmitterStats, TrackedCall, Tracker

__all__ = ["Emitter", "EmitterStats", "TrackedCall", "Tracker"]
