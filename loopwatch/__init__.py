"""loopwatch: monitoring and feedback for LLM and ML models in production.

The public surface is small on purpose: ``Emitter`` to send events from an app, ``Settings`` for
configuration. The CLI is ``loopwatch``.
"""

from loopwatch.emitter import Emitter
from schemas.settings import Settings

__all__ = ["Emitter", "Settings"]
