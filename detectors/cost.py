"""LLM call cost from token usage, via genai-prices, with overrides for private models.

Token convention (genai-prices' and OpenAI's): ``input_tokens`` is the *total* prompt
size and ``cached_tokens`` the part of it read from the prompt cache (so
``cached_tokens <= input_tokens``); for Anthropic usage add ``cache_read_input_tokens``
to ``input_tokens`` first.

Unknown models return ``None``, never 0 -- a zero would silently hide spend -- and
are counted in :attr:`CostCalculator.unknown_counts` so dashboards can show how much
traffic is unpriced.

Speed: ``genai_prices.calc_price`` costs ~80 us per call (model matching, unit
registry, Decimal). :meth:`CostCalculator.cost` caches the model lookup per
``(provider, model)`` in an LRU and then prices exactly with genai-prices (Decimal).
:meth:`CostCalculator.cost_batch` goes further: prices are linear in the token counts
within one price tier, so for each ``(provider, model, tier)`` it asks genai-prices
once for the cost of a request with no tokens (per-request fees) and of 1M
input / cached / output tokens, verifies linearity on a probe usage, and then
prices the whole batch with numpy (float64). Tiers follow genai-prices' rule: the
tier is chosen by the request's total input tokens (``input_tokens > tier.start``)
and applies to all tokens. Models where the probe fails fall back to exact per-row
calls cached on ``(provider, model, tokens)``.
"""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import ModelInfo, ModelPrice, Provider, TieredPrices

from detectors.cost_config import CostConfig, PriceOverride

_MTOK = 1_000_000
_LINEARITY_PROBE = (1_234_567, 234_567, 345_678)  # input (total), cached, output
_LINEARITY_TOLERANCE = Decimal("1e-12")


@dataclass(frozen=True, slots=True)
class _Rates:
    """Cost = per_request + uncached*input + cached*cached + output*output (USD per token)."""

    per_request: float
    input: float
    cached: float
    output: float


@dataclass(frozen=True, slots=True)
class _TieredRates:
    """Piecewise-linear pricing: ``rates[k]`` applies when ``k`` tier starts are below the input."""

    starts: np.ndarray
    rates: tuple[_Rates, ...]


@dataclass(frozen=True, slots=True)
class CostBatch:
    """Costs of a batch of calls.

    ``costs`` is USD per row with NaN for unpriced rows; ``total`` sums priced rows;
    ``unknown`` counts unpriced rows per ``(provider, model)``.
    """

    costs: np.ndarray
    total: float
    n_unknown: int
    unknown: dict[tuple[str | None, str], int] = field(default_factory=dict)


class CostCalculator:
    """Prices LLM calls; see the module docstring for conventions and caching."""

    def __init__(self, config: CostConfig | None = None) -> None:
        self._config = config or CostConfig()
        self._overrides = {name.lower(): price for name, price in self._config.overrides.items()}
        self._lookup = lru_cache(maxsize=self._config.lookup_cache_size)(self._lookup_uncached)
        self._exact = lru_cache(maxsize=self._config.exact_cache_size)(self._exact_uncached)
        self._rates: dict[tuple[str | None, str, int], tuple[ModelPrice, _TieredRates | None]] = {}
        self.unknown_counts: Counter[tuple[str | None, str]] = Counter()

    def warm_up(self) -> None:
        """Load genai-prices' price snapshot now (~1 s, once per process) rather than on the first event."""
        get_snapshot()

    def cost(
        self,
        model: str,
        provider: str | None,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int = 0,
        at: datetime | None = None,
    ) -> Decimal | None:
        """Exact USD cost of one call, or ``None`` when the model has no known price.

        Overrides win over genai-prices. ``at`` selects time-dependent prices (default now).
        Raises ``ValueError`` for negative counts or ``cached_tokens > input_tokens``.
        """
        _check_tokens(input_tokens, output_tokens, cached_tokens)
        override = self._overrides.get(model.lower())
        if override is not None:
            return _override_cost(override, input_tokens, output_tokens, cached_tokens)
        if self._lookup(provider, model) is None:
            self.unknown_counts[(provider, model)] += 1
            return None
        return self._exact(provider, model, input_tokens, output_tokens, cached_tokens, _resolve_time(at))

    def cost_batch(
        self,
        models: Sequence[str],
        providers: Sequence[str | None] | str | None,
        input_tokens: Sequence[int] | np.ndarray,
        output_tokens: Sequence[int] | np.ndarray,
        cached_tokens: Sequence[int] | np.ndarray | None = None,
        at: datetime | None = None,
    ) -> CostBatch:
        """Vectorised costs for many calls (one price lookup per model; see module docstring)."""
        n = len(models)
        inp = np.asarray(input_tokens, dtype=np.int64)
        out = np.asarray(output_tokens, dtype=np.int64)
        cached = np.zeros(n, dtype=np.int64) if cached_tokens is None else np.asarray(cached_tokens, dtype=np.int64)
        if not (inp.size == out.size == cached.size == n):
            raise ValueError("all per-call sequences must have the same length")
        if (inp < 0).any() or (out < 0).any() or (cached < 0).any() or (cached > inp).any():
            raise ValueError("token counts must be >= 0 and cached_tokens <= input_tokens")
        model_list = [str(m) for m in models]
        if providers is None or isinstance(providers, str):
            provider_list: list[str | None] = [providers] * n
        else:
            provider_list = [None if p is None else str(p) for p in providers]
        when = _resolve_time(at)
        groups: dict[tuple[str | None, str], list[int]] = {}
        for i, key in enumerate(zip(provider_list, model_list, strict=True)):
            groups.setdefault(key, []).append(i)

        costs = np.full(n, np.nan, dtype=np.float64)
        unknown: dict[tuple[str | None, str], int] = {}
        for (provider, model), rows in groups.items():
            idx = np.asarray(rows, dtype=np.int64)
            override = self._overrides.get(model.lower())
            rates: _TieredRates | None
            if override is not None:
                rates = _TieredRates(np.zeros(0, dtype=np.int64), (_override_rates(override),))
            else:
                found = self._lookup(provider, model)
                if found is None:
                    unknown[(provider, model)] = len(rows)
                    continue
                rates = self._model_rates(provider, model, found, when)
                if rates is None:
                    costs[idx] = [
                        float(self._exact(provider, model, int(inp[i]), int(out[i]), int(cached[i]), when))
                        for i in rows
                    ]
                    continue
            costs[idx] = _apply_rates(rates, inp[idx], out[idx], cached[idx])
        self.unknown_counts.update(unknown)
        priced = ~np.isnan(costs)
        return CostBatch(
            costs=costs,
            total=float(costs[priced].sum()),
            n_unknown=int(n - priced.sum()),
            unknown=unknown,
        )

    def _lookup_uncached(self, provider: str | None, model: str) -> tuple[Provider, ModelInfo] | None:
        try:
            return get_snapshot().find_provider_model(model, None, provider, None)
        except LookupError:
            return None

    def _exact_uncached(
        self,
        provider: str | None,
        model: str,
        input_tokens: int,
        output_tokens: int,
        cached_tokens: int,
        at: datetime,
    ) -> Decimal:
        found = self._lookup(provider, model)
        assert found is not None
        provider_info, model_info = found
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_tokens)
        return model_info.calc_price(usage, provider_info, genai_request_timestamp=at).total_price

    def _model_rates(
        self, provider: str | None, model: str, found: tuple[Provider, ModelInfo], at: datetime
    ) -> _TieredRates | None:
        model_price = found[1].get_prices(at)
        key = (provider, model, id(model_price))
        cached = self._rates.get(key)
        if cached is None or cached[0] is not model_price:
            cached = (model_price, _tiered_rates(model_price))
            self._rates[key] = cached
        return cached[1]


def _resolve_time(at: datetime | None) -> datetime:
    return at if at is not None else datetime.now(tz=UTC)


def _check_tokens(input_tokens: int, output_tokens: int, cached_tokens: int) -> None:
    if input_tokens < 0 or output_tokens < 0 or cached_tokens < 0:
        raise ValueError("token counts must be >= 0")
    if cached_tokens > input_tokens:
        raise ValueError(f"cached_tokens ({cached_tokens}) cannot exceed input_tokens ({input_tokens})")


def _override_cost(price: PriceOverride, input_tokens: int, output_tokens: int, cached_tokens: int) -> Decimal:
    return (
        Decimal(input_tokens - cached_tokens) * price.input_per_mtok
        + Decimal(cached_tokens) * price.cached_rate
        + Decimal(output_tokens) * price.output_per_mtok
    ) / _MTOK


def _override_rates(price: PriceOverride) -> _Rates:
    return _Rates(
        per_request=0.0,
        input=float(price.input_per_mtok) / _MTOK,
        cached=float(price.cached_rate) / _MTOK,
        output=float(price.output_per_mtok) / _MTOK,
    )


def _tiered_rates(model_price: ModelPrice) -> _TieredRates | None:
    """Per-tier linear rates probed from genai-prices itself; ``None`` if not linear."""
    prices: dict[str, Any] = {k: v for k, v in model_price.__dict__.items() if not k.startswith("_")}
    starts = sorted({tier.start for v in prices.values() if isinstance(v, TieredPrices) for tier in v.tiers})
    rates = []
    for k in range(len(starts) + 1):
        representative = 0 if k == 0 else starts[k - 1] + 1
        flat = ModelPrice(**{name: _flatten(v, representative) for name, v in prices.items()})
        regime_rates = _probe_rates(flat)
        if regime_rates is None:
            return None
        rates.append(regime_rates)
    return _TieredRates(np.asarray(starts, dtype=np.int64), tuple(rates))


def _flatten(price: Any, input_tokens: int) -> Any:
    """genai-prices' tier rule: the last tier with ``input_tokens > start`` applies to all tokens."""
    if not isinstance(price, TieredPrices):
        return price
    for tier in reversed(price.tiers):
        if input_tokens > tier.start:
            return tier.price
    return price.base


def _probe_rates(flat: ModelPrice) -> _Rates | None:
    def total(input_tokens: int = 0, cached: int = 0, output: int = 0) -> Decimal:
        usage = Usage(input_tokens=input_tokens, output_tokens=output, cache_read_tokens=cached)
        return flat.calc_price(usage)["total_price"]

    try:
        base = total()
        per_input = total(input_tokens=_MTOK) - base
        per_cached = total(input_tokens=_MTOK, cached=_MTOK) - base
        per_output = total(output=_MTOK) - base
        probe_in, probe_cached, probe_out = _LINEARITY_PROBE
        predicted = (
            base + ((probe_in - probe_cached) * per_input + probe_cached * per_cached + probe_out * per_output) / _MTOK
        )
        actual = total(probe_in, probe_cached, probe_out)
    except (ValueError, ArithmeticError):
        return None
    if abs(predicted - actual) > _LINEARITY_TOLERANCE:
        return None
    return _Rates(float(base), float(per_input) / _MTOK, float(per_cached) / _MTOK, float(per_output) / _MTOK)


def _apply_rates(rates: _TieredRates, inp: np.ndarray, out: np.ndarray, cached: np.ndarray) -> np.ndarray:
    regime = np.searchsorted(rates.starts, inp, side="left")  # tier starts strictly below the input
    per_request = np.asarray([r.per_request for r in rates.rates])[regime]
    per_input = np.asarray([r.input for r in rates.rates])[regime]
    per_cached = np.asarray([r.cached for r in rates.rates])[regime]
    per_output = np.asarray([r.output for r in rates.rates])[regime]
    costs: np.ndarray = per_request + (inp - cached) * per_input + cached * per_cached + out * per_output
    return costs


__all__ = ["CostBatch", "CostCalculator"]
