"""Planted personal data and secrets, one or more of every detected kind, for the redaction tests."""

from __future__ import annotations

from hypothesis import strategies as st

# kind → values that must never be stored in clear
PLANTED: dict[str, list[str]] = {
    "EMAIL": ["ana.lopez+shop@example.co.uk", "j_doe@mail.example.com"],
    "PHONE": ["+44 20 7946 0958", "(415) 555-2671"],
    "CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"],
    "IP": ["192.168.10.42", "2001:db8::8a2e:370:7334"],
    "SECRET": ["AKIAIOSFODNN7EXAMPLE", "sk-proj-" + "Xy9_" * 8],
    "URL_CREDENTIALS": ["app:hunter2"],
}


def in_text(kind: str, value: str) -> str:
    """How the value appears in a sentence (a URL's credentials sit inside a URL)."""
    return f"postgres://{value}@db.internal/prod" if kind == "URL_CREDENTIALS" else value


filler = st.text(alphabet="abcdefghijklmnopqrstuvwxyz ,.!?", max_size=30)
planted_entity = st.sampled_from([(kind, value) for kind, values in PLANTED.items() for value in values])


@st.composite
def planted_text(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    """A text with 1–4 planted entities between ordinary words, and the entities."""
    entities = draw(st.lists(planted_entity, min_size=1, max_size=4))
    parts = [draw(filler)]
    for kind, value in entities:
        parts += [" ", in_text(kind, value), " ", draw(filler)]
    return "".join(parts), entities


def every_entity_text() -> str:
    """One sentence holding every planted value."""
    return " and ".join(in_text(kind, value) for kind, values in PLANTED.items() for value in values)


def clear_values() -> list[str]:
    return [value for values in PLANTED.values() for value in values]
