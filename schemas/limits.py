"""Size caps on incoming events: they are part of the event contract, which lives in the SDK.

Re-exported so the server keeps one ``schemas`` import for every contract (see ``loopwatch_sdk.limits``).
"""

from loopwatch_sdk.limits import (
    MAX_EMBEDDING_DIM,
    MAX_FEATURE_NAME_LENGTH,
    MAX_FEATURE_STRING_LENGTH,
    MAX_FEATURES,
    MAX_FEEDBACK_TEXT_CHARS,
    MAX_ID_LENGTH,
    MAX_NAME_LENGTH,
    MAX_PROBABILITIES,
    MAX_TAG_KEY_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    MAX_TAGS,
    MAX_TEXT_CHARS,
    MAX_TOKENS,
)

__all__ = [
    "MAX_EMBEDDING_DIM",
    "MAX_FEATURES",
    "MAX_FEATURE_NAME_LENGTH",
    "MAX_FEATURE_STRING_LENGTH",
    "MAX_FEEDBACK_TEXT_CHARS",
    "MAX_ID_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PROBABILITIES",
    "MAX_TAGS",
    "MAX_TAG_KEY_LENGTH",
    "MAX_TAG_VALUE_LENGTH",
    "MAX_TEXT_CHARS",
    "MAX_TOKENS",
]
