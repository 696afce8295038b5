"""A judge's scores calibrated to people's thumbs: P(thumbs up | score), and a window's estimated
thumbs-up rate from its judged calls.

Method: **Platt scaling** (Platt 1999): a logistic regression ``P(up | s) = 1 / (1 + exp(-(a + b·s)))``
fitted by Newton's method on the calls that have both a judge score and a thumb, with Platt's smoothed
targets (``(N₊ + 1) / (N₊ + 2)`` for an up, ``1 / (N₋ + 2)`` for a down) so that a judge that separates
the thumbs perfectly still gets finite odds. A window's estimate is the mean predicted probability over
its judged calls. Its 95 % interval is a seeded bootstrap: each replicate refits the calibration on the
pairs resampled with replacement, resamples the window's judged calls, and draws each call's thumb from
its predicted probability, so the interval is where the thumbs-up rate of the window's calls would fall.

Against the reference (:func:`estimate_change`): the reference period's judged calls go through the
same fit, and the two sides' predicted probabilities are compared with **Welch's t-test** (unequal
variances). Its false-alarm rate is what alpha says (up to Welch's approximation) whatever the fit: when
the judge scores both periods' calls alike, one fit maps them to alike probabilities, so the null holds
(the fit's own error moves both sides the same way and is not counted). Not the two-proportion test of
thumbs-up rates: a mean of probabilities varies less than thumbs would
(``(E[p²] − p̄²) / n ≤ p̄(1 − p̄) / n``); a test assuming the binomial spread raised 0.25 % false alarms
at alpha 5 % (Welch: 5.7 %) and found a 0.1 fall of every score in 28 % of windows where Welch finds it
in 69 % (``tests/detectors/test_calibration.py``).

No estimate (a reason instead) below ``MIN_PAIRS`` pairs, or when the judge's agreement with the thumbs
is undefined or weaker than ``MIN_AGREEMENT`` in size (a judge that agrees in reverse, as a toxicity
judge does with thumbs-up, predicts as well), or for a window without judged calls. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import ttest_ind

from detectors.agreement import Agreement, judge_vs_thumbs, reading

METHOD = "platt"
MIN_TESTED = 10  # judged calls on each side for a test against the reference (estimate_change)
TEST = "welch_t"  # how a window's estimate is tested against the reference (estimate_change)
INTERVAL = "95 % bootstrap (refit on resampled pairs, resampled judged calls, thumbs drawn from the fit), seeded"
MIN_PAIRS = 30
MIN_AGREEMENT = 0.4  # |kappa| or |rho|: "moderate" or better
REPLICATES = 200
SEED = 20240611


@dataclass(frozen=True, slots=True)
class Platt:
    """A fitted ``P(up | score) = 1 / (1 + exp(-(intercept + slope·score)))``."""

    intercept: float
    slope: float

    def predict(self, scores: np.ndarray) -> np.ndarray:
        return _sigmoid(self.intercept + self.slope * np.asarray(scores, dtype=float))


@dataclass(frozen=True, slots=True)
class Calibration:
    """A judge calibrated against thumbs: the agreement it rests on, the fit (None with a ``reason``
    when no estimate may be made) and the bootstrap refits behind every window's interval."""

    agreement: Agreement
    pairs: int
    fit: Platt | None
    reason: str
    replicates: tuple[Platt, ...] = ()
    method: str = METHOD

    @property
    def usable(self) -> bool:
        return self.fit is not None


@dataclass(frozen=True, slots=True)
class RateEstimate:
    """A window's estimated thumbs-up rate (None with a ``reason`` when there is none)."""

    rate: float | None
    low: float | None
    high: float | None
    judged_calls: int
    pairs: int
    reason: str
    method: str = METHOD
    interval: str = INTERVAL


@dataclass(frozen=True, slots=True)
class EstimateChange:
    """A window's estimated thumbs-up rate against the reference period's, through the same fit."""

    reference_rate: float
    reference_calls: int  # the reference period's judged calls: its n
    difference: float  # the window's estimate minus the reference's
    p_value: float
    test: str = TEST


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * x)))  # no overflow warnings for large |x|


def fit_platt(scores: Sequence[float] | np.ndarray, ups: Sequence[bool] | np.ndarray) -> Platt:
    """Platt scaling of ``scores`` to the thumbs ``ups`` (maximum likelihood on Platt's smoothed targets)."""
    s = np.asarray(scores, dtype=float)
    up = np.asarray(ups, dtype=bool)
    if s.size == 0:
        raise ValueError("no pairs to fit")
    positives = int(up.sum())
    negatives = int(up.size - positives)
    targets = np.where(up, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    prior = (positives + 1) / (up.size + 2)
    beta = np.array([np.log(prior / (1 - prior)), 0.0])
    design = np.column_stack([np.ones_like(s), s])
    for _ in range(100):
        p = _sigmoid(design @ beta)
        weights = np.maximum(p * (1 - p), 1e-12)
        hessian = design.T @ (design * weights[:, None])
        hessian += np.eye(2) * 1e-12 * max(1.0, float(np.trace(hessian)))  # constant scores: slope stays 0
        step = np.linalg.solve(hessian, design.T @ (targets - p))
        beta = beta + step
        if float(np.abs(step).max()) < 1e-10:
            break
    return Platt(float(beta[0]), float(beta[1]))


def calibrate(
    scores: Sequence[float], ups: Sequence[bool], *, replicates: int = REPLICATES, seed: int = SEED
) -> Calibration:
    """Agreement of the judge with the thumbs and, where it is good enough, its Platt calibration with
    ``replicates`` bootstrap refits (seeded: the same pairs give the same figures)."""
    agreement = judge_vs_thumbs(scores, ups)
    n = len(scores)
    if n < MIN_PAIRS:
        reason = f"only {n} calls have both a judge score and a thumb; {MIN_PAIRS} needed"
        return Calibration(agreement, n, None, reason)
    if agreement.value is None:
        return Calibration(agreement, n, None, "agreement with the thumbs is undefined (one side never varies)")
    if abs(agreement.value) < MIN_AGREEMENT:
        return Calibration(
            agreement,
            n,
            None,
            f"{reading(agreement.value, agreement.statistic)} ({agreement.statistic} {agreement.value:.2f}): "
            f"below {MIN_AGREEMENT} in size, the judge does not predict thumbs well enough",
        )
    s, up = np.asarray(scores, dtype=float), np.asarray(ups, dtype=bool)
    rng = np.random.default_rng(seed)
    refits = []
    for _ in range(replicates):
        pick = rng.integers(0, n, n)
        refits.append(fit_platt(s[pick], up[pick]))
    return Calibration(agreement, n, fit_platt(s, up), "", tuple(refits))


def estimate_rate(calibration: Calibration, window_scores: Sequence[float], *, seed: int = SEED) -> RateEstimate:
    """The estimated thumbs-up rate of a window's judged calls (their ``window_scores``), with its interval."""
    m = len(window_scores)
    if calibration.fit is None:
        return RateEstimate(None, None, None, m, calibration.pairs, calibration.reason)
    if m == 0:
        return RateEstimate(None, None, None, 0, calibration.pairs, "the window has no judged calls")
    w = np.asarray(window_scores, dtype=float)
    rate = float(calibration.fit.predict(w).mean())
    rng = np.random.default_rng(seed)
    draws = np.empty(len(calibration.replicates))
    for index, refit in enumerate(calibration.replicates):
        p = refit.predict(w[rng.integers(0, m, m)])
        draws[index] = float((rng.random(m) < p).mean())
    low, high = np.quantile(draws, [0.025, 0.975]) if draws.size else (rate, rate)
    return RateEstimate(rate, min(float(low), rate), max(float(high), rate), m, calibration.pairs, "")


def estimate_change(
    calibration: Calibration,
    reference_scores: Sequence[float],
    window_scores: Sequence[float],
    estimate: RateEstimate,
) -> EstimateChange | None:
    """The window's ``estimate`` (from its judged calls' ``window_scores``) against the rate the same
    calibration gives the reference period's judged calls (``reference_scores``): Welch's t-test on the
    two sides' predicted probabilities. None without an estimate, or with fewer than ``MIN_TESTED`` judged
    calls on a side: a handful of calls the judge scored alike has no spread, and Welch's error would then
    come from the other side alone (three calls scored 1 against a spread reference: p near 0)."""
    n_ref, n_cur = len(reference_scores), len(window_scores)
    if calibration.fit is None or estimate.rate is None or min(n_ref, n_cur) < MIN_TESTED:
        return None
    reference = calibration.fit.predict(np.asarray(reference_scores, dtype=float))
    window = calibration.fit.predict(np.asarray(window_scores, dtype=float))
    reference_rate = float(reference.mean())
    if np.ptp(reference) == 0 and np.ptp(window) == 0:  # t undefined: equal or certainly apart
        p_value = 1.0 if window[0] == reference[0] else 0.0
    else:
        p_value = float(ttest_ind(window, reference, equal_var=False).pvalue)
    return EstimateChange(reference_rate, n_ref, estimate.rate - reference_rate, p_value, TEST)
