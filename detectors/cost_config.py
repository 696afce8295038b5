"""Configuration for :class:`~detectors.cost.CostCalculator`: private-model price overrides.

pydantic because these come from monitor config files (YAML/JSON) and must be
validated there; prices are ``Decimal`` per million tokens so money is never rounded
through binary floats.
"""

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class PriceOverride(BaseModel):
    """Per-million-token prices for a model genai-prices does not know (or must not price).

    ``cached_input_per_mtok`` prices cache-read input tokens; when omitted they are
    billed at ``input_per_mtok``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_mtok: Decimal = Field(ge=0)
    output_per_mtok: Decimal = Field(ge=0)
    cached_input_per_mtok: Decimal | None = Field(default=None, ge=0)

    @property
    def cached_rate(self) -> Decimal:
        """Price per million cached input tokens."""
        return self.input_per_mtok if self.cached_input_per_mtok is None else self.cached_input_per_mtok


class CostConfig(BaseModel):
    """Overrides keyed by model name (matched case-insensitively, any provider) and cache size."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    overrides: dict[str, PriceOverride] = Field(default_factory=dict)
    lookup_cache_size: int = Field(default=1024, ge=1)
    exact_cache_size: int = Field(default=65_536, ge=1)


__all__ = ["CostConfig", "PriceOverride"]
