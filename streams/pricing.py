"""Cost at ingest: fill ``cost_usd`` from token usage where the app did not send it.

Pricing is part of accepting an event, not of window statistics: an event is stored with its cost
whether or not this process computes statistics (``LOOPWATCH_STATS_ENABLED=false`` used to stop it).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from detectors import CostCalculator, CostConfig, PriceOverride
from schemas.records import InferenceRecord
from schemas.settings import Settings


class Pricer:
    """Prices events in place with ``detectors.CostCalculator`` (genai-prices plus the overrides of
    ``LOOPWATCH_COST_OVERRIDES``); events of unknown models keep a null cost."""

    def __init__(self, settings: Settings) -> None:
        overrides = {
            name: PriceOverride(**{field: Decimal(str(value)) for field, value in price.items()})
            for name, price in settings.cost_overrides.items()
        }
        self.calculator = CostCalculator(CostConfig(overrides=overrides))

    def warm_up(self) -> None:
        """Load the price snapshot now (start-up), not on the first priced event's request."""
        self.calculator.warm_up()

    def price(self, events: Sequence[InferenceRecord]) -> None:
        """Fill ``cost_usd`` in place for events with token usage and no cost of their own."""
        picked = [e for e in events if e.cost_usd is None and (e.input_tokens or e.output_tokens)]
        if not picked:
            return
        batch = self.calculator.cost_batch(
            [e.model for e in picked],
            [e.provider for e in picked],
            [max(e.input_tokens or 0, e.cached_tokens or 0) for e in picked],
            [e.output_tokens or 0 for e in picked],
            [e.cached_tokens or 0 for e in picked],
        )
        for event, cost in zip(picked, batch.costs.tolist(), strict=True):
            if cost == cost:  # NaN: no price known
                event.cost_usd = cost
