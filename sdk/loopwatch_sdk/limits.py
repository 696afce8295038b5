"""Size caps on incoming events (part of the event contract; the server re-exports them as ``schemas.limits``).

Caps protect storage and the stream from one runaway client. Text over its cap is truncated (and the
event marked), because dropping a whole inference for a long prompt would lose its tokens, latency and
feedback join; structural excess (too many features, a huge embedding) is rejected with a precise error.
"""

MAX_ID_LENGTH = 128
MAX_NAME_LENGTH = 200
MAX_TEXT_CHARS = 32_000
MAX_FEATURES = 256
MAX_FEATURE_NAME_LENGTH = 128
MAX_FEATURE_STRING_LENGTH = 1_000
MAX_EMBEDDING_DIM = 4_096
MAX_TAGS = 32
MAX_TAG_KEY_LENGTH = 64
MAX_TAG_VALUE_LENGTH = 256
MAX_PROBABILITIES = 1_000
MAX_FEEDBACK_TEXT_CHARS = 32_000
MAX_TOKENS = 2**32 - 1  # the UInt32 token columns
