"""A judge against people: its agreement over a period, and its calibration to thumbs, read from the
``feedback`` table (judge results are feedback of source ``evaluator``; people's are every other source).

The statistics engine asks ``JudgeCalibrations`` for each window's ``estimated_thumbs_up_rate`` (one per
evaluator that judged calls of the window, model-wide and per model version, each against the reference
period); ``GET /v1/evaluators/{id}/agreement`` reads the same functions over the period it is asked for.

Calibration is per model: a judge can read two models' answers differently, so a window's estimate uses
a fit on the pairs of its own model's calls, and the pooled fit (every model's pairs) only while the model
has fewer than ``MIN_PAIRS`` of its own. The model's versions share the model's fit. The methods are
:mod:`detectors.agreement` and :mod:`detectors.calibration`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import structlog

from detectors.agreement import Agreement, cohen_kappa_interval, spearman_interval
from detectors.calibration import (
    MIN_PAIRS,
    Calibration,
    EstimateChange,
    RateEstimate,
    calibrate,
    estimate_change,
    estimate_rate,
)
from schemas.stats import WindowKey
from streams.storage import Storage
from streams.storage.feedback import judge_pairs, judge_scores

log = structlog.get_logger(__name__)

Against = Literal["thumbs", "rating", "label"]
Scope = Literal["model", "pooled"]  # which calls' pairs a window's calibration was fitted on
# A window's estimate is calibrated on the pairs of calls of the period before the end of its hour
# (one fit serves the windows of an hour).
CALIBRATION_PERIOD = timedelta(days=7)
CALIBRATION_TTL = 300.0  # seconds a usable calibration is reused before it is fitted again


@dataclass(frozen=True, slots=True)
class JudgeAgreement:
    """The agreement of one evaluator with people's feedback of one kind over a period, and (against
    thumbs, for a judge that scores) its calibration with the estimate for the period's judged calls."""

    against: Against
    agreement: Agreement
    calibration: Calibration | None
    estimate: RateEstimate | None
    thumbs_up_rate: float | None  # people's thumbs-up rate on the paired calls
    # whose pairs the calibration was fitted on: every model's ("all", no model asked), the model's own
    # ("model"), or every model's for a model with too few of its own ("pooled"), as windows do
    fitted_on: Literal["all", "model", "pooled"] = "all"


@dataclass(frozen=True, slots=True)
class ModelCalibration:
    """The calibration a model's windows use: fitted on the model's own pairs (``scope`` model), or on
    every model's while it has fewer than ``MIN_PAIRS`` (``pooled``); ``model_pairs`` counts its own."""

    calibration: Calibration
    scope: Scope
    model_pairs: int


@dataclass(frozen=True, slots=True)
class JudgeEstimate:
    """A window's estimated thumbs-up rate from one evaluator, how it was calibrated, and its change
    against the reference period (None without judged reference calls)."""

    estimate: RateEstimate
    scope: Scope
    model_pairs: int
    change: EstimateChange | None


def _thumb_pairs(
    storage: Storage,
    project: str,
    evaluator_id: str,
    since: datetime | None,
    until: datetime | None,
    model: str | None = None,
) -> tuple[list[float], list[bool]]:
    """(judge score, thumbs up) of each call of ``[since, until)`` with both (of ``model`` if given)."""
    scores, ups = [], []
    for pair in judge_pairs(storage, project, evaluator_id, "thumbs", since, until, model=model):
        if pair.score is not None and pair.value is not None:
            scores.append(float(pair.score))
            ups.append(pair.value > 0)
    return scores, ups


def thumbs_calibration(
    storage: Storage,
    project: str,
    evaluator_id: str,
    since: datetime | None,
    until: datetime | None,
    model: str | None = None,
) -> Calibration:
    """The evaluator's scores calibrated to people's thumbs on the calls of ``[since, until)`` (of
    ``model`` only, when given)."""
    return calibrate(*_thumb_pairs(storage, project, evaluator_id, since, until, model))


def model_calibration(
    storage: Storage,
    project: str,
    evaluator_id: str,
    model: str,
    since: datetime | None,
    until: datetime | None,
    own: Calibration | None = None,
) -> ModelCalibration:
    """The calibration for ``model``'s calls: its own pairs' fit (``own`` when already fitted), else
    (fewer than ``MIN_PAIRS`` of them) the fit on every model's pairs. A model with enough pairs whose own
    fit is unusable (the judge does not predict its thumbs) gets no estimate: the pooled fit would hide that."""
    if own is None:
        own = thumbs_calibration(storage, project, evaluator_id, since, until, model)
    if own.pairs >= MIN_PAIRS:
        return ModelCalibration(own, "model", own.pairs)
    return ModelCalibration(thumbs_calibration(storage, project, evaluator_id, since, until), "pooled", own.pairs)


def judge_agreement(
    storage: Storage,
    project: str,
    evaluator_id: str,
    against: Against,
    since: datetime | None,
    until: datetime | None,
    model: str | None = None,
) -> JudgeAgreement:
    """Agreement of a judge that scores (``against`` thumbs or rating) or labels (``against`` label), on
    the calls of ``model`` when given (its calibration then falls back to every model's pairs as a
    window's does, see :func:`model_calibration`)."""
    if against == "label":
        pairs = judge_pairs(storage, project, evaluator_id, "label", since, until, model=model)
        labelled = [p for p in pairs if p.judge_label]
        kappa = cohen_kappa_interval([p.judge_label for p in labelled], [p.label for p in labelled])
        return JudgeAgreement(against, kappa, None, None, None)
    if against == "rating":
        pairs = [
            p
            for p in judge_pairs(storage, project, evaluator_id, "rating", since, until, model=model)
            if p.score is not None and p.value is not None
        ]
        rho = spearman_interval([float(p.score or 0) for p in pairs], [float(p.value or 0) for p in pairs])
        return JudgeAgreement(against, rho, None, None, None)
    paired, ups = _thumb_pairs(storage, project, evaluator_id, since, until, model)
    calibration = own = calibrate(paired, ups)
    fitted_on: Literal["all", "model", "pooled"] = "all"
    if model is not None:
        fitted = model_calibration(storage, project, evaluator_id, model, since, until, own)
        calibration, fitted_on = fitted.calibration, fitted.scope
    estimate = estimate_rate(calibration, judge_scores(storage, project, evaluator_id, since, until, model=model))
    rate = sum(ups) / len(ups) if ups else None
    return JudgeAgreement(against, own.agreement, calibration, estimate, rate, fitted_on)


def calibration_end(window_end: datetime) -> datetime:
    """Where the calibration period of a window ends: the end of the hour its last moment falls in."""
    last = window_end - timedelta(microseconds=1)
    return last.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)


class JudgeCalibrations:
    """Each evaluator's calibration to thumbs, fitted on the ``CALIBRATION_PERIOD`` before the end of a
    window's hour and reused for ``CALIBRATION_TTL`` by that hour's windows (an unusable one is not
    kept, so thumbs that arrive count at the next window)."""

    def __init__(self, storage: Storage, *, ttl: float = CALIBRATION_TTL) -> None:
        self.storage = storage
        self.ttl = ttl
        self._cache: dict[tuple[str, str, str, datetime], tuple[float, ModelCalibration]] = {}

    def calibration(self, project: str, evaluator_id: str, model: str, window_end: datetime) -> ModelCalibration:
        until = calibration_end(window_end)
        now = time.monotonic()
        cached = self._cache.get((project, evaluator_id, model, until))
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        fitted = model_calibration(self.storage, project, evaluator_id, model, until - CALIBRATION_PERIOD, until)
        if fitted.calibration.usable:
            if len(self._cache) >= 1024:
                self._cache.clear()
            self._cache[(project, evaluator_id, model, until)] = (now, fitted)
        return fitted

    def window_fits(self, key: WindowKey, evaluator_ids: Iterable[str]) -> dict[str, ModelCalibration]:
        """Each evaluator's calibration for the window's model: read once per window and shared by its
        model-wide and per-version estimates (an unusable fit is not cached, so this saves the re-reads)."""
        return {
            evaluator_id: self.calibration(key.project, evaluator_id, key.model, key.end)
            for evaluator_id in evaluator_ids
        }

    def estimates(
        self,
        key: WindowKey,
        judged: Mapping[str, Sequence[float]],
        reference: Mapping[str, Sequence[float]] | None = None,
        fits: Mapping[str, ModelCalibration] | None = None,
    ) -> dict[str, JudgeEstimate]:
        """The window's estimated thumbs-up rate from each evaluator's scores of its calls (``judged``: all
        the model's, or one version's), against the rate the same fit gives the reference period's judged
        calls (``reference``, by evaluator); ``fits`` from :meth:`window_fits` (else read here)."""
        out = {}
        for evaluator_id, scores in sorted(judged.items()):
            fitted = (fits or {}).get(evaluator_id) or self.calibration(key.project, evaluator_id, key.model, key.end)
            estimate = estimate_rate(fitted.calibration, scores)
            if estimate.rate is None:
                log.debug(
                    "no_thumbs_estimate",
                    project=key.project,
                    model=key.model,
                    evaluator=evaluator_id,
                    window_start=key.start.isoformat(),
                    reason=estimate.reason,
                    calibration=fitted.scope,
                )
            change = estimate_change(fitted.calibration, (reference or {}).get(evaluator_id, ()), scores, estimate)
            out[evaluator_id] = JudgeEstimate(estimate, fitted.scope, fitted.model_pairs, change)
        return out


__all__ = [
    "JudgeAgreement",
    "JudgeCalibrations",
    "JudgeEstimate",
    "ModelCalibration",
    "judge_agreement",
    "model_calibration",
    "thumbs_calibration",
]
