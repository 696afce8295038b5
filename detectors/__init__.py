"""loopwatch detectors: pure statistics for LLM/ML model monitoring.

numpy/scipy only (plus genai-prices for cost): no I/O, no logging configuration, no
pandas in the hot paths. Drift defaults reproduce evidently 0.7.23's
DataDriftPreset exactly (see :mod:`detectors.evidently_defaults` and the stat-test
modules for the mirrored source).
"""

from detectors.classification import ClassificationQuality, classification_quality
from detectors.column_drift import column_drift
from detectors.column_types import infer_column_type
from detectors.config import OTHER_CATEGORY, ProfileConfig
from detectors.cost import CostBatch, CostCalculator
from detectors.cost_config import CostConfig, PriceOverride
from detectors.dataset_drift import dataset_drift
from detectors.embedding_drift import embedding_drift
from detectors.latency import LatencySummary, is_error_status, latency_summary
from detectors.multiple_testing import adjust_p_values
from detectors.pii import PiiCount, pii_counts
from detectors.profile import CategoricalReference, NumericReference, ReferenceProfile
from detectors.proportions import ProportionChange, accuracy_change, proportion_change
from detectors.rank_tests import RankChange, ratings_change, score_change
from detectors.results import ColumnDriftResult, DatasetDriftResult
from detectors.spend import SpendAnomaly, spend_anomaly
from detectors.stattests import StatTestSpec, available_stat_tests, get_stat_test, register_stat_test
from detectors.text_descriptors import DESCRIPTOR_NAMES, text_descriptors

__all__ = [
    "DESCRIPTOR_NAMES",
    "OTHER_CATEGORY",
    "CategoricalReference",
    "ClassificationQuality",
    "ColumnDriftResult",
    "CostBatch",
    "CostCalculator",
    "CostConfig",
    "DatasetDriftResult",
    "LatencySummary",
    "NumericReference",
    "PiiCount",
    "PriceOverride",
    "ProfileConfig",
    "ProportionChange",
    "RankChange",
    "ReferenceProfile",
    "SpendAnomaly",
    "StatTestSpec",
    "accuracy_change",
    "adjust_p_values",
    "available_stat_tests",
    "classification_quality",
    "column_drift",
    "dataset_drift",
    "embedding_drift",
    "get_stat_test",
    "infer_column_type",
    "is_error_status",
    "latency_summary",
    "pii_counts",
    "proportion_change",
    "ratings_change",
    "register_stat_test",
    "score_change",
    "spend_anomaly",
    "text_descriptors",
]
