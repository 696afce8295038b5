"""Lossless JSON encoding of category keys and floats for stored summaries.

JSON object keys must be strings and ``1``/``"1"``/``True`` are different
categories, so keys are stored as ``[tag, value]`` pairs. Non-finite floats become
``null`` because strict JSON (and ClickHouse's JSON functions) reject ``NaN``.
"""

from collections.abc import Hashable
from typing import Any

import numpy as np


def encode_key(key: Hashable) -> list[Any]:
    """``"x" -> ["s", "x"]``, ``True -> ["b", true]``, ``3 -> ["i", 3]``, ``2.5 -> ["f", 2.5]``."""
    if isinstance(key, (bool, np.bool_)):
        return ["b", bool(key)]
    if isinstance(key, (int, np.integer)):
        return ["i", int(key)]
    if isinstance(key, (float, np.floating)):
        return ["f", float(key)]
    if isinstance(key, str):
        return ["s", key]
    raise TypeError(f"category of type {type(key).__name__} cannot be stored in a profile")


def decode_key(item: list[Any]) -> Hashable:
    """Inverse of :func:`encode_key`."""
    tag, value = item
    if tag == "b":
        return bool(value)
    if tag == "i":
        return int(value)
    if tag == "f":
        return float(value)
    if tag == "s":
        return str(value)
    raise ValueError(f"unknown key tag {tag!r}")


def encode_float(value: float) -> float | None:
    """Finite floats pass through; NaN/inf become ``None``."""
    return float(value) if np.isfinite(value) else None


def decode_float(value: float | None) -> float:
    """Inverse of :func:`encode_float` (``None`` -> NaN)."""
    return float("nan") if value is None else float(value)


__all__ = ["decode_float", "decode_key", "encode_float", "encode_key"]
