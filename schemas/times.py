"""One rule for time zones (naive = UTC), written once in the SDK, which the server depends on."""

from loopwatch_sdk.times import as_utc, assume_utc

__all__ = ["as_utc", "assume_utc"]
