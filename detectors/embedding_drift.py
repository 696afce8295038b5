"""Drift of embedding matrices (n rows x d dimensions).

evidently 0.7.23's default (``legacy/metrics/data_drift/embeddings_drift.py``:
``model(bootstrap=reference_rows < 1000)`` from ``embedding_drift_methods.py``) is a
*domain classifier*: label reference rows 1 and current rows 0, split 50/50 with
``train_test_split(test_size=0.5, random_state=42, shuffle=True)``, fit a linear
classifier, and report the held-out ROC AUC. Drift when ``AUC > 0.55``, or -- for
references under 1000 rows -- when AUC exceeds the 95th percentile of AUCs that 100
random score vectors (``np.random.seed(i); np.random.rand``, i = 0..99) reach on the
same test labels. A classifier that cannot tell the sets apart scores ~0.5.

``method="model"`` (default) reproduces that protocol exactly -- same split
permutation (``RandomState(42).permutation``), same labels, same random-AUC threshold
-- with one substitution: evidently's classifier is sklearn's ``SGDClassifier`` and
this package has no sklearn, so we fit a *diagonal linear discriminant* (weights
``(mean_ref - mean_cur) / pooled_variance`` on the training half). It is closed-form
(no iterations, no RNG), O(n*d), and for the mean shifts that dominate embedding
drift separates as well as a logistic model; like any linear classifier it does not
see a pure change of spread (use ``method="ratio"`` for that). AUC values are close to,
but not identical with, evidently's.

``method="ratio"``: evidently's ``RatioDriftMethod`` -- share of dimensions whose
normed Wasserstein distance is ``>= 0.1``; drift when the share is ``> 0.2``. Identical
to evidently.

``method="distance"``: evidently's ``DistanceDriftMethod`` -- Euclidean distance between
the mean embeddings; drift when ``> 0.2``. Identical to evidently (no bootstrap).

Rows containing NaN/inf are dropped.
"""

from typing import Literal, TypeAlias

import numpy as np
from scipy.stats import rankdata

from detectors.column_data import numeric_data
from detectors.results import ColumnDriftResult
from detectors.stattests.wasserstein import WASSERSTEIN

EmbeddingMethod: TypeAlias = Literal["model", "ratio", "distance"]

MODEL_AUC_THRESHOLD: float = 0.55
MODEL_SPLIT_SEED: int = 42
MODEL_BOOTSTRAP_BELOW_ROWS: int = 1000
MODEL_BOOTSTRAP_ROUNDS: int = 100
MODEL_BOOTSTRAP_QUANTILE: float = 0.95
RATIO_COMPONENT_THRESHOLD: float = 0.1
RATIO_THRESHOLD: float = 0.2
DISTANCE_THRESHOLD: float = 0.2

_DISPLAY_NAMES: dict[str, str] = {
    "model": "Domain classifier ROC AUC",
    "ratio": "Share of drifted embedding components",
    "distance": "Euclidean distance between mean embeddings",
}


def embedding_drift(
    reference: np.ndarray,
    current: np.ndarray,
    *,
    method: EmbeddingMethod = "model",
    threshold: float | None = None,
    bootstrap: bool | None = None,
) -> ColumnDriftResult:
    """Compare two embedding matrices; ``value`` is the AUC, drifted share or distance.

    ``threshold`` overrides the method's default (for ``model`` it also disables the
    bootstrap threshold). ``bootstrap=None`` follows evidently (on when the reference
    has fewer than 1000 rows); only ``model`` supports it.
    """
    ref = _clean(reference, "reference")
    cur = _clean(current, "current")
    if ref.shape[1] != cur.shape[1]:
        raise ValueError(f"dimension mismatch: reference d={ref.shape[1]}, current d={cur.shape[1]}")
    n_ref, n_cur = int(ref.shape[0]), int(cur.shape[0])
    if min(n_ref, n_cur) < 2:
        return ColumnDriftResult(
            column=None,
            column_type=None,
            method=method,
            display_name=_DISPLAY_NAMES[method],
            value=float("nan"),
            threshold=threshold,
            drifted=False,
            p_value=None,
            n_reference=n_ref,
            n_current=n_cur,
            status="insufficient_data",
            reason="need at least 2 complete rows on each side",
        )
    if method == "model":
        value, actual_threshold = _model_auc(ref, cur, threshold, bootstrap)
        drifted = value > actual_threshold
    elif method == "ratio":
        value = _ratio(ref, cur)
        actual_threshold = RATIO_THRESHOLD if threshold is None else threshold
        drifted = value > actual_threshold
    elif method == "distance":
        value = float(np.linalg.norm(ref.mean(axis=0) - cur.mean(axis=0)))
        actual_threshold = DISTANCE_THRESHOLD if threshold is None else threshold
        drifted = value > actual_threshold
    else:
        raise ValueError(f"unknown embedding drift method {method!r}")
    return ColumnDriftResult(
        column=None,
        column_type=None,
        method=method,
        display_name=_DISPLAY_NAMES[method],
        value=float(value),
        threshold=float(actual_threshold),
        drifted=bool(drifted),
        p_value=None,
        n_reference=n_ref,
        n_current=n_cur,
    )


def _clean(matrix: np.ndarray, side: str) -> np.ndarray:
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{side} embeddings must be a 2-D array (rows x dimensions)")
    finite = np.isfinite(arr).all(axis=1)
    return arr if finite.all() else arr[finite]


def split_indices(n_samples: int, seed: int = MODEL_SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` exactly as ``sklearn.model_selection.train_test_split(test_size=0.5,
    random_state=seed, shuffle=True)`` draws them: ``n_test = ceil(n/2)``, permutation from
    ``np.random.RandomState(seed)``, test first."""
    n_test = int(np.ceil(0.5 * n_samples))
    permutation = np.random.RandomState(seed).permutation(n_samples)
    return permutation[n_test:], permutation[:n_test]


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC via the Mann-Whitney rank formula (ties get half credit, like sklearn)."""
    positives = labels == 1
    n_pos = int(positives.sum())
    n_neg = int(labels.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def random_auc_threshold(labels: np.ndarray) -> float:
    """evidently's bootstrap threshold: 95th percentile of AUCs of ``np.random.seed(i); rand``."""
    aucs = []
    for i in range(MODEL_BOOTSTRAP_ROUNDS):
        rng = np.random.RandomState(i)  # same stream as np.random.seed(i); np.random.rand(...)
        aucs.append(roc_auc(labels, rng.random_sample(labels.size)))
    return float(np.percentile(aucs, 100 * MODEL_BOOTSTRAP_QUANTILE))


def _model_auc(
    ref: np.ndarray, cur: np.ndarray, threshold: float | None, bootstrap: bool | None
) -> tuple[float, float]:
    data = np.vstack((ref, cur))
    labels = np.concatenate((np.ones(ref.shape[0], dtype=np.int64), np.zeros(cur.shape[0], dtype=np.int64)))
    train, test = split_indices(labels.size)
    x_train, y_train = data[train], labels[train]
    x_test, y_test = data[test], labels[test]
    if y_train.min() == y_train.max():
        return float("nan"), MODEL_AUC_THRESHOLD if threshold is None else threshold
    scores = x_test @ diagonal_discriminant(x_train, y_train)
    auc = roc_auc(y_test, scores)
    if threshold is not None:
        return auc, threshold
    use_bootstrap = ref.shape[0] < MODEL_BOOTSTRAP_BELOW_ROWS if bootstrap is None else bootstrap
    return auc, random_auc_threshold(y_test) if use_bootstrap else MODEL_AUC_THRESHOLD


def diagonal_discriminant(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Weights ``(mean_1 - mean_0) / pooled within-class variance`` (dimensions with no variance get 0)."""
    pos, neg = x[y == 1], x[y == 0]
    mean_pos, mean_neg = pos.mean(axis=0), neg.mean(axis=0)
    pooled = (((pos - mean_pos) ** 2).sum(axis=0) + ((neg - mean_neg) ** 2).sum(axis=0)) / max(y.size - 2, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = np.where(pooled > 0, (mean_pos - mean_neg) / pooled, 0.0)
    return weights


def _ratio(ref: np.ndarray, cur: np.ndarray) -> float:
    drifted = 0
    for j in range(ref.shape[1]):
        value = WASSERSTEIN.func(numeric_data(ref[:, j]), numeric_data(cur[:, j]))
        drifted += WASSERSTEIN.is_drift(value, RATIO_COMPONENT_THRESHOLD)
    return drifted / int(ref.shape[1])


__all__ = [
    "EmbeddingMethod",
    "diagonal_discriminant",
    "embedding_drift",
    "random_auc_threshold",
    "roc_auc",
    "split_indices",
]
