"""One drift statistic per module, mirroring evidently's ``legacy/calculations/stattests``.

Importing this package registers the built-in tests in :mod:`.registry`.
"""

from detectors.stattests.chisquare import CHISQUARE
from detectors.stattests.jensenshannon import JENSENSHANNON
from detectors.stattests.ks import KS
from detectors.stattests.psi import PSI
from detectors.stattests.registry import (
    StatTestSpec,
    available_stat_tests,
    get_stat_test,
    register_stat_test,
)
from detectors.stattests.selection import default_stat_test
from detectors.stattests.wasserstein import WASSERSTEIN
from detectors.stattests.z_test import Z_TEST

__all__ = [
    "CHISQUARE",
    "JENSENSHANNON",
    "KS",
    "PSI",
    "WASSERSTEIN",
    "Z_TEST",
    "StatTestSpec",
    "available_stat_tests",
    "default_stat_test",
    "get_stat_test",
    "register_stat_test",
]
