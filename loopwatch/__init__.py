"""loopwatch: monitoring and feedback for LLM and ML models in production.

The public surface is small on purpose: ``Settings`` for configuration. The CLI is ``loopwatch``.
"""

from schemas.settings import Settings

__all__ = ["Settings"]
