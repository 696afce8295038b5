"""The public surface of ``loopwatch`` is exactly what ``__all__`` promises (the httpx rule)."""

from __future__ import annotations

import importlib

import loopwatch_sdk

import loopwatch
import loopwatch.emitter


def test_all_is_the_sorted_public_surface() -> None:
    assert loopwatch.__all__ == sorted(loopwatch.__all__) == ["Emitter", "Settings"]


def test_public_names_import() -> None:
    from loopwatch import Emitter, Settings

    assert Emitter is loopwatch.emitter.Emitter
    assert Settings.__name__ == "Settings"


def test_emitter_implementation_modules_are_private() -> None:
    """The SDK distribution implements the emitter; ``loopwatch.emitter`` re-exports exactly its names."""
    assert loopwatch.emitter.__all__ == loopwatch_sdk.__all__ == sorted(loopwatch_sdk.__all__)
    for name in loopwatch_sdk.__all__:
        assert getattr(loopwatch.emitter, name) is getattr(loopwatch_sdk, name)
        module = getattr(loopwatch_sdk, name).__module__
        assert module.startswith("loopwatch_sdk._"), (name, module)
        importlib.import_module(module)
