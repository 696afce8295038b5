"""Online evaluations: evaluators score sampled production calls (``streams.evals.service``)."""

from streams.evals.service import Evaluations, feedback_id
from streams.evals.store import EvaluatorExistsError, EvaluatorFileError, EvaluatorStore, load_evaluators_file

__all__ = [
    "Evaluations",
    "EvaluatorExistsError",
    "EvaluatorFileError",
    "EvaluatorStore",
    "feedback_id",
    "load_evaluators_file",
]
