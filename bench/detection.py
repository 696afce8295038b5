"""Detection benchmark: does a shift raise an alert, how fast, and how often does calm traffic alert?

Generated LLM traffic (four numeric features, a plan category, prompts, responses, 32-d embeddings and
thumbs feedback on 30 % of calls) goes through the statistics the engine writes
(``streams.stats.families.drift_rows`` / ``quality_rows``, with the real text descriptors and the
first window as reference) and two sets of monitors judge every window:

* **(a) evidently**: the previous defaults: ``dataset_drift`` flagged (evidently's share rule,
  drift_share 0.5) and the thumbs-up test at p < 0.05;
* **(b) loopwatch**: today's default monitors (``streams.monitors.defaults``): ``family_drift`` in any
  family and the thumbs-up test at p < 0.002 (latency and spend defaults do not react to these
  scenarios and are left out).

Scenarios: ``stationary`` (many windows, no shift) and shifts that start at window ``--onset`` of each
run: numeric features, a category mix, longer prompts, apologetic responses, embeddings, a quality
drop seen only through feedback, a slow ramp, and the issue's mix. Columns:

* ``detected``: share of the drifted windows in which the rule alerts (a monitor's breach; cooldowns
  are ignored so every window counts);
* ``first alert``: windows from the onset to the first alert, mean over runs (0 = in the first
  drifted window; ``–`` = never). The gradual ramp becomes material (a KS distance of 0.1) at its
  third window, so 2 is on time there;
* ``false/100``: breaches per 100 windows before the onset (stationary scenario: all its windows,
  ``--stationary`` split over ``--runs`` models, each with its own reference window: the false-alarm
  bound holds on average over reference draws; one unlucky fixed reference can sit above it).

Targets (issue 11): every material shift alerted within one window of its onset by (b), and (b) at
most 1 false alarm per 100 stationary windows per model. Column values stay evidently's (the parity
tests check that); only the verdicts differ.

Scenarios marked ``small`` / ``immaterial`` are below what the rule is built to catch at this window
size (a single feature moved 0.3 SD needs ~1000 events per window for a one-window alert) and are
shown to make the power limits visible, not counted against the targets.

Run from the repository root (about 1-2 minutes on 2 cores with the defaults)::

    .venv/bin/python bench/detection.py [--events 400] [--runs 5] [--stationary 1500]
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rich.table import Table  # noqa: E402

from bench._common import console  # noqa: E402
from detectors.family_drift import embedding_evidence  # noqa: E402
from schemas.monitors import FlaggedCondition, Monitor, PValueCondition  # noqa: E402
from schemas.settings import Settings  # noqa: E402
from schemas.stats import StatRow, WindowKey  # noqa: E402
from streams.monitors.defaults import default_monitors  # noqa: E402
from streams.monitors.evaluation import counts_for, row_breaches  # noqa: E402
from streams.stats.families import drift_rows, quality_rows  # noqa: E402
from streams.stats.references import Reference, profile_from_columns  # noqa: E402
from streams.stats.window_data import drift_columns  # noqa: E402

T0 = datetime(2026, 1, 1, tzinfo=UTC)
WORDS = ["refund", "invoice", "password", "shipping", "upgrade", "limits", "billing", "account", "order", "login"]
ANSWERS = [
    "Sure, here is how to handle {t}: open settings, choose the {t} section and follow the steps.",
    "I understand the issue with {t}. Our team resolves most {t} requests within a day.",
    "Thanks for asking about {t}. You can find the details in your account dashboard.",
]
EMBEDDING_DIM = 32


@dataclass(frozen=True)
class Shift:
    """What changes in a window, as a function of windows since the onset (``k >= 0``)."""

    features: float = 0.0  # mean shift of features a, b, c in reference SDs
    one_feature: float = 0.0  # mean shift of feature a only
    plan_mix: bool = False
    prompt_length: float = 1.0  # prompt words multiplied by this
    apologetic: float = 0.0  # share of responses in an apologetic, refusing style
    embedding: float = 0.0  # mean shift of 4 of the 32 embedding dimensions
    thumbs_up: float | None = None  # thumbs-up probability (0.8 normally)


@dataclass(frozen=True)
class Scenario:
    name: str
    shift: Callable[[int], Shift]
    material: bool = True
    material_from: int = 0  # windows after the onset where the shift becomes material (gradual drift)


SCENARIOS: list[Scenario] = [
    Scenario("features +0.5 SD (3 of 4)", lambda k: Shift(features=0.5)),
    Scenario("small: feature +0.3 SD (1 of 4)", lambda k: Shift(one_feature=0.3), material=False),
    Scenario("category mix 60/30/10 → 40/40/20", lambda k: Shift(plan_mix=True)),
    Scenario("prompts 1.5x longer", lambda k: Shift(prompt_length=1.5)),
    Scenario("responses: 30 % apologetic", lambda k: Shift(apologetic=0.3)),
    Scenario("embeddings +0.5 in 4 of 32 dims", lambda k: Shift(embedding=0.5)),
    Scenario("quality: thumbs-up 80 % → 60 %", lambda k: Shift(thumbs_up=0.6)),
    Scenario("gradual: features +0.1 SD per window", lambda k: Shift(features=0.1 * (k + 1)), material_from=2),
    Scenario(
        "mixed (issue 11): features, mix, prompts", lambda k: Shift(features=0.5, plan_mix=True, prompt_length=1.5)
    ),
    Scenario("immaterial: feature +0.05 SD", lambda k: Shift(one_feature=0.05), material=False),
]


@dataclass
class Window:
    features: list[str]
    prompts: list[str]
    responses: list[str]
    embeddings: np.ndarray
    thumbs: list[int] = field(default_factory=list)


def generate(rng: random.Random, nprng: np.random.Generator, events: int, shift: Shift) -> Window:
    """One window of traffic under ``shift`` (``Shift()`` = the stationary regime)."""
    features, prompts, responses = [], [], []
    plans, weights = ["free", "pro", "team"], ([0.4, 0.4, 0.2] if shift.plan_mix else [0.6, 0.3, 0.1])
    for _ in range(events):
        row = {
            "a": rng.gauss(shift.features + shift.one_feature, 1),
            "b": rng.gauss(shift.features, 1),
            "c": rng.gauss(shift.features, 1),
            "d": rng.lognormvariate(0, 0.5),
            "plan": rng.choices(plans, weights)[0],
        }
        features.append(orjson.dumps(row).decode())
        topic = rng.choice(WORDS)
        words = round(rng.randint(5, 30) * shift.prompt_length)
        prompts.append(f"Customer asks about {topic}: " + " ".join(rng.choice(WORDS) for _ in range(words)))
        answer = rng.choice(ANSWERS).format(t=topic)
        if rng.random() < shift.apologetic:
            answer = "I'm sorry, but I cannot help with that. " + answer.lower()
        responses.append(answer)
    embeddings = nprng.normal(size=(events, EMBEDDING_DIM))
    embeddings[:, :4] += shift.embedding
    up = 0.8 if shift.thumbs_up is None else shift.thumbs_up
    thumbs = [1 if rng.random() < up else -1 for _ in range(events) if rng.random() < 0.3]
    return Window(features, prompts, responses, embeddings, thumbs)


def _quality(window: Window) -> dict[str, Any]:
    return {"feedback_count": len(window.thumbs), "thumbs": window.thumbs, "ratings": [], "scores": {}, "labels": []}


def old_defaults(project: str) -> list[Monitor]:
    """The defaults before issue 11: evidently's dataset rule and the thumbs test at p < 0.05."""
    common: dict[str, Any] = {"project": project, "scope": "*", "builtin": True}
    return [
        Monitor(
            monitor_id="default-dataset-drift",
            name="Dataset drift",
            family="drift",
            metric="dataset_drift",
            condition=FlaggedCondition(),
            min_samples=30,
            **common,
        ),
        Monitor(
            monitor_id="default-thumbs-drop",
            name="Thumbs-up rate dropped",
            family="quality",
            metric="thumbs_up_rate",
            condition=PValueCondition(alpha=0.05, direction="down"),
            min_samples=30,
            **common,
        ),
    ]


def alerts(monitors: list[Monitor], rows: list[StatRow]) -> bool:
    """Whether any monitor breaches on the window's rows (``streams.monitors.evaluation``'s own rule)."""
    return any(counts_for(monitor, row) and row_breaches(monitor, row) for monitor in monitors for row in rows)


class Run:
    """One model's traffic: a reference window, then windows judged by both rule sets."""

    def __init__(self, seed: int, events: int) -> None:
        self.rng = random.Random(seed)
        self.nprng = np.random.default_rng(seed)
        self.events = events
        first = generate(self.rng, self.nprng, events, Shift())
        columns = drift_columns(first.features, first.prompts, first.responses)
        self.reference = Reference("bench", "m", "first_window", columns.rows, profile_from_columns(columns))
        self.reference_embeddings = first.embeddings
        self.reference_quality = _quality(first)
        self.rules = {
            "evidently": old_defaults("bench"),
            "loopwatch": [
                m for m in default_monitors("bench", Settings(_env_file=None)) if m.family in ("drift", "quality")
            ],  # type: ignore[call-arg]
        }
        self.index = 0

    def window(self, shift: Shift) -> dict[str, bool]:
        self.index += 1
        start = T0 + timedelta(minutes=self.index)
        key = WindowKey("bench", "m", start, start + timedelta(minutes=1))
        data = generate(self.rng, self.nprng, self.events, shift)
        current = drift_columns(data.features, data.prompts, data.responses)
        evidence = embedding_evidence("embedding", self.reference_embeddings, data.embeddings)
        rows, _ = drift_rows(key, self.reference, current, drift_share=0.5, correction="none", embedding=evidence)
        rows += quality_rows(key, _quality(data), self.reference_quality)
        return {name: alerts(monitors, rows) for name, monitors in self.rules.items()}


@dataclass
class Tally:
    drifted: int = 0
    detected: int = 0
    calm: int = 0
    false_alarms: int = 0
    first: list[float] = field(default_factory=list)


def run_scenario(scenario: Scenario | None, args: argparse.Namespace, seed: int) -> dict[str, Tally]:
    tallies = {"evidently": Tally(), "loopwatch": Tally()}
    for r in range(args.runs):
        run = Run(seed * 1000 + r, args.events)
        calm_windows = args.stationary // args.runs if scenario is None else args.onset
        first: dict[str, float] = {}
        for _ in range(calm_windows):
            for name, fired in run.window(Shift()).items():
                tallies[name].calm += 1
                tallies[name].false_alarms += fired
        if scenario is None:
            continue
        for k in range(args.drifted):
            for name, fired in run.window(scenario.shift(k)).items():
                tallies[name].drifted += 1
                tallies[name].detected += fired
                if fired and name not in first:
                    first[name] = k
        for name, tally in tallies.items():
            tally.first.append(first.get(name, math.inf))
    return tallies


def _first(values: list[float]) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    text = f"{sum(finite) / len(finite):.1f}"
    return text if len(finite) == len(values) else f"{text} ({len(finite)}/{len(values)} runs)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=400, help="events per window")
    parser.add_argument("--runs", type=int, default=5, help="runs (models) per shift scenario")
    parser.add_argument("--onset", type=int, default=6, help="calm windows before each shift")
    parser.add_argument("--drifted", type=int, default=6, help="drifted windows per run")
    parser.add_argument("--stationary", type=int, default=1500, help="windows of the stationary scenario")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 runs, 200 stationary windows")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.stationary = 2, 200
    # evidently's KS on tied values falls back to its asymptotic form with a warning; the values are right
    warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
    started = time.perf_counter()
    table = Table(
        "scenario",
        "rule",
        "detected",
        "first alert (windows)",
        "false/100 calm",
        title=f"detection: {args.events} events/window, first window = reference",
    )
    total_calm = {"evidently": [0, 0], "loopwatch": [0, 0]}
    missed: list[str] = []
    for seed, scenario in enumerate([None, *SCENARIOS], start=1):
        name = "stationary" if scenario is None else scenario.name
        tallies = run_scenario(scenario, args, seed)
        for rule, tally in tallies.items():
            total_calm[rule][0] += tally.false_alarms
            total_calm[rule][1] += tally.calm
            detected = "–" if scenario is None else f"{tally.detected / tally.drifted:.0%}"
            first = "–" if scenario is None else _first(tally.first)
            rate = f"{100 * tally.false_alarms / tally.calm:.2f}" if tally.calm else "–"
            table.add_row(
                name if rule == "evidently" else "", rule, detected, first, rate, end_section=rule == "loopwatch"
            )
            late = scenario is not None and max(tally.first) - scenario.material_from > 1
            if rule == "loopwatch" and scenario is not None and scenario.material and late:
                missed.append(name)
        console.print(f"  {name}: done ({time.perf_counter() - started:.0f} s)")
    console.print(table)
    for rule, (alarms, calm) in total_calm.items():
        console.print(f"{rule}: {alarms} false alarms in {calm} calm windows = {100 * alarms / calm:.2f} per 100")
    loopwatch_rate = 100 * total_calm["loopwatch"][0] / total_calm["loopwatch"][1]
    console.print(
        f"targets: material shifts alerted within one window of onset: {'yes' if not missed else 'NO ' + str(missed)}; "
        f"false alarms <= 1 per 100 calm windows: {'yes' if loopwatch_rate <= 1 else 'NO'}"
    )
    console.print(f"took {time.perf_counter() - started:.0f} s")
    return 0 if not missed and loopwatch_rate <= 1 else 1


if __name__ == "__main__":
    sys.exit(main())
