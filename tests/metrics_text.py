"""Reading Prometheus exposition text in tests: parsed by prometheus_client's own parser.

Counters are process-global and every test in the session moves them, so tests compare two scrapes
(``after.delta(before, ...)``) instead of reading absolute values.
"""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.waiting import wait_until

__all__ = ["Scrape", "scrape_process", "wait_until"]  # wait_until lives in tests.waiting


class Scrape:
    """Every sample of one exposition, addressed by sample name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def value(self, name: str, **labels: str) -> float:
        """A sample's value; 0 for a labelled series not created yet (a counter that never moved)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def delta(self, before: Scrape, name: str, **labels: str) -> float:
        return self.value(name, **labels) - before.value(name, **labels)

    def series(self, name: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every labelled sample of ``name``."""
        return {labels: value for (sample, labels), value in self.samples.items() if sample == name}


def scrape_process() -> Scrape:
    """This process's registry, as ``/metrics`` and the worker's metrics port serve it."""
    return Scrape(generate_latest().decode())
