"""CostCalculator against genai-prices' own calc_price; unknown models and overrides."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from genai_prices import Usage, calc_price

from detectors import CostCalculator, CostConfig, PriceOverride

AT = datetime(2025, 9, 1, 12, 0, tzinfo=UTC)
KNOWN = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-pro", None),
]


def _genai(model: str, provider: str | None, inp: int, out: int, cached: int) -> Decimal:
    usage = Usage(input_tokens=inp, output_tokens=out, cache_read_tokens=cached)
    return calc_price(usage, model_ref=model, provider_id=provider, genai_request_timestamp=AT).total_price


class TestCost:
    """Single-call costs are genai-prices' exact Decimal totals."""

    @pytest.mark.parametrize(("model", "provider"), KNOWN)
    @pytest.mark.parametrize(("inp", "out", "cached"), [(1000, 200, 0), (12_345, 678, 2_000), (250_000, 4_000, 10_000)])
    def test_known_usage_equals_genai_prices(
        self, model: str, provider: str | None, inp: int, out: int, cached: int
    ) -> None:
        assert CostCalculator().cost(model, provider, inp, out, cached, at=AT) == _genai(
            model, provider, inp, out, cached
        )

    def test_unknown_model_is_none_and_counted(self) -> None:
        calculator = CostCalculator()
        assert calculator.cost("definitely-not-a-model", "openai", 10, 10, at=AT) is None
        assert calculator.cost("definitely-not-a-model", "openai", 10, 10, at=AT) is None
        assert calculator.cost("gpt-4o", "no-such-provider", 10, 10, at=AT) is None
        assert calculator.unknown_counts[("openai", "definitely-not-a-model")] == 2
        assert calculator.unknown_counts[("no-such-provider", "gpt-4o")] == 1

    def test_override_wins_over_genai_prices(self) -> None:
        override = PriceOverride(
            input_per_mtok=Decimal("1"), output_per_mtok=Decimal("4"), cached_input_per_mtok=Decimal("0.25")
        )
        calculator = CostCalculator(CostConfig(overrides={"GPT-4o": override, "acme-private-7b": override}))
        expected = (Decimal(9_000) * 1 + Decimal(1_000) * Decimal("0.25") + Decimal(500) * 4) / 1_000_000
        assert calculator.cost("gpt-4o", "openai", 10_000, 500, 1_000, at=AT) == expected
        assert calculator.cost("acme-private-7b", None, 10_000, 500, 1_000) == expected
        no_cache_price = PriceOverride(input_per_mtok=Decimal("2"), output_per_mtok=Decimal("2"))
        assert CostCalculator(CostConfig(overrides={"m": no_cache_price})).cost("m", None, 100, 0, 50) == Decimal(
            "0.0002"
        )

    def test_invalid_tokens(self) -> None:
        with pytest.raises(ValueError, match="cannot exceed"):
            CostCalculator().cost("gpt-4o", "openai", 10, 0, 11)
        with pytest.raises(ValueError, match=">= 0"):
            CostCalculator().cost("gpt-4o", "openai", -1, 0)

    def test_lookup_is_cached(self) -> None:
        calculator = CostCalculator()
        for i in range(50):
            calculator.cost("gpt-4o", "openai", 1000 + i, 10, at=AT)
        info = calculator._lookup.cache_info()  # the documented (provider, model) LRU
        assert info.misses == 1
        assert info.currsize == 1
        assert info.hits >= 49


class TestCostBatch:
    """Vectorised batches equal per-call genai-prices totals, tiers included."""

    def test_batch_equals_per_call(self) -> None:
        rng = np.random.default_rng(0)
        n = 3000
        names = np.array([m for m, _ in KNOWN] + ["unknown-model", "acme"])
        providers = {m: p for m, p in KNOWN}
        models = rng.choice(names, n)
        inp = rng.integers(0, 400_000, n)  # crosses the 200k tiers of Claude/Gemini
        cached = (inp * rng.random(n) * 0.5).astype(np.int64)
        out = rng.integers(0, 8_000, n)
        calculator = CostCalculator(
            CostConfig(overrides={"acme": PriceOverride(input_per_mtok=Decimal("3"), output_per_mtok=Decimal("9"))})
        )
        batch = calculator.cost_batch(list(models), [providers.get(m) for m in models], inp, out, cached, at=AT)
        assert batch.n_unknown == int((models == "unknown-model").sum())
        assert batch.unknown == {(None, "unknown-model"): batch.n_unknown}
        for i in range(0, n, 7):
            exact = calculator.cost(
                str(models[i]), providers.get(str(models[i])), int(inp[i]), int(out[i]), int(cached[i]), at=AT
            )
            if exact is None:
                assert np.isnan(batch.costs[i])
            else:
                assert batch.costs[i] == pytest.approx(float(exact), rel=1e-12, abs=1e-15)
        assert batch.total == pytest.approx(np.nansum(batch.costs))

    def test_tier_boundary(self) -> None:
        calculator = CostCalculator()
        inp = np.array([199_999, 200_000, 200_001, 500_000])
        batch = calculator.cost_batch(["claude-sonnet-4-5"] * 4, "anthropic", inp, [100] * 4, at=AT)
        expected = [float(_genai("claude-sonnet-4-5", "anthropic", int(i), 100, 0)) for i in inp]
        np.testing.assert_allclose(batch.costs, expected, rtol=1e-12)

    def test_batch_validation(self) -> None:
        with pytest.raises(ValueError, match="same length"):
            CostCalculator().cost_batch(["gpt-4o"], "openai", [1, 2], [1])
        with pytest.raises(ValueError, match="cached_tokens"):
            CostCalculator().cost_batch(["gpt-4o"], "openai", [1], [1], [2])
