"""``python -m loopwatch`` is the ``loopwatch`` command."""

from loopwatch.cli import app

app()
