"""Configuration objects, kept apart from the calculations that use them.

Plain frozen dataclasses: they are small, validated in ``__post_init__``, and a
monitor-config loader (pydantic, YAML) can build them with ``Config(**section)``.
"""

from dataclasses import dataclass

OTHER_CATEGORY: str = "__other__"
"""Bucket for categories beyond a summary's category cap."""


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """How much of a reference column a :class:`~detectors.profile.ReferenceProfile` keeps.

    ``sample_size``: numeric columns keep at most this many values (a deterministic
    quantile sample); references no larger are kept whole, so drift equals drift on
    the raw data. 20,000 points bound the Wasserstein/KS approximation error to
    roughly 1/20,000 of the quantile range while the JSON stays ~0.5 MB per column.
    ``max_categories``: categorical columns keep the most frequent categories and
    fold the rest into ``__other__``.
    """

    sample_size: int = 20_000
    max_categories: int = 1_000

    def __post_init__(self) -> None:
        if self.sample_size < 1:
            raise ValueError("sample_size must be >= 1")
        if self.max_categories < 1:
            raise ValueError("max_categories must be >= 1")


DEFAULT_PROFILE_CONFIG = ProfileConfig()

__all__ = [
    "DEFAULT_PROFILE_CONFIG",
    "OTHER_CATEGORY",
    "ProfileConfig",
]
