"""Accuracy and macro-F1 from labels, in numpy (no sklearn in ``detectors``).

Macro-F1 follows sklearn's ``f1_score(average="macro")`` defaults: classes are the
union of true and predicted labels, a class with no predicted and no true samples
cannot occur, and a class whose precision or recall is undefined (0/0) counts as
F1 = 0 (sklearn's ``zero_division`` default after its warning). Missing labels
(None/NaN) drop the pair.
"""

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from detectors.kinds import ArrayLike, ResultStatus
from detectors.missing import as_array, is_missing


@dataclass(frozen=True, slots=True)
class ClassificationQuality:
    """Accuracy, macro-F1 and the counts needed for :func:`~detectors.proportions.accuracy_change`."""

    n: int
    n_correct: int
    accuracy: float
    macro_f1: float
    n_classes: int
    status: ResultStatus = "ok"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form."""
        return asdict(self)


def classification_quality(y_true: ArrayLike, y_pred: ArrayLike) -> ClassificationQuality:
    """Accuracy and macro-F1 of predictions against labels (pairs with a missing side are dropped)."""
    true = as_array(y_true)
    pred = as_array(y_pred)
    if true.size != pred.size:
        raise ValueError(f"y_true has {true.size} labels but y_pred has {pred.size}")
    keep = np.fromiter(
        (not (is_missing(t) or is_missing(p)) for t, p in zip(true.tolist(), pred.tolist(), strict=True)),
        dtype=bool,
        count=true.size,
    )
    true, pred = true[keep], pred[keep]
    n = int(true.size)
    if n == 0:
        return ClassificationQuality(0, 0, float("nan"), float("nan"), 0, "insufficient_data")
    labels = sorted(set(true.tolist()) | set(pred.tolist()), key=repr)
    index = {label: i for i, label in enumerate(labels)}
    t_idx = np.fromiter((index[v] for v in true.tolist()), dtype=np.int64, count=n)
    p_idx = np.fromiter((index[v] for v in pred.tolist()), dtype=np.int64, count=n)
    k = len(labels)
    correct = t_idx == p_idx
    tp = np.bincount(t_idx[correct], minlength=k).astype(np.float64)
    true_count = np.bincount(t_idx, minlength=k).astype(np.float64)
    pred_count = np.bincount(p_idx, minlength=k).astype(np.float64)
    denom = true_count + pred_count
    # F1 = 2TP / (2TP + FP + FN) = 2TP / (true_count + pred_count); 0 when undefined.
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    n_correct = int(correct.sum())
    return ClassificationQuality(n, n_correct, n_correct / n, float(f1.mean()), k)


__all__ = ["ClassificationQuality", "classification_quality"]
