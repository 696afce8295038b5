"""Start-up YAML files of project resources (``LOOPWATCH_MONITORS_FILE``, ``LOOPWATCH_EVALUATORS_FILE``):
one reader, so both files take the same shape, the same ``${NAME}`` environment references and report
every problem at once in the same words."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from schemas.problems import location, problem_lines

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_Entry = TypeVar("_Entry", bound=BaseModel)


def expand_env(value: Any, where: list[str | int], problems: list[str]) -> Any:
    """``${NAME}`` in strings is replaced by the environment variable, so secrets stay out of the file."""
    if isinstance(value, str):

        def lookup(match: re.Match[str]) -> str:
            name = match[1]
            if name not in os.environ:
                problems.append(f"{location(where)}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REF.sub(lookup, value)
    if isinstance(value, dict):
        return {key: expand_env(item, [*where, str(key)], problems) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item, [*where, index], problems) for index, item in enumerate(value)]
    return value


def load_entries(
    path: str | Path,
    model: type[_Entry],
    *,
    section: str,
    key_field: str,
    set_by_loopwatch: tuple[str, ...],
    error: type[Exception],
) -> list[_Entry]:
    """The validated entries of the file: a list, or a mapping with a ``section`` list. Each entry needs
    ``project`` and ``key_field`` (the upsert key) and must not set ``set_by_loopwatch``; every problem
    is raised at once as ``error("<path>: <section>[2].field: …; …")``."""
    noun = section.removesuffix("s")
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise error(f"{path}: cannot read {section} file: {exc}") from exc
    entries = document.get(section) if isinstance(document, dict) else document
    if document is None:
        entries = []
    if not isinstance(entries, list):
        raise error(f"{path}: expected a list of {section} (or a mapping with a '{section}' list)")
    problems: list[str] = []
    found: list[_Entry] = []
    seen: set[tuple[str, str]] = set()
    for index, entry in enumerate(entries):
        where: list[str | int] = [section, index]
        if not isinstance(entry, dict):
            problems.append(f"{location(where)}: each {noun} must be a mapping")
            continue
        for required in ("project", key_field):
            if required not in entry:
                problems.append(f"{location([*where, required])}: field required (the upsert key)")
        entry = expand_env(entry, where, problems)
        for field in set_by_loopwatch:
            if field in entry:
                problems.append(f"{location([*where, field])}: set by loopwatch, not by the file")
        try:
            item = model.model_validate(entry)
        except ValidationError as exc:
            problems += problem_lines(exc, where)
            continue
        key = (str(item.project), str(getattr(item, key_field)))  # type: ignore[attr-defined]
        if key in seen:
            problems.append(f"{location([*where, key_field])}: duplicate {key_field} {key[1]!r}")
        seen.add(key)
        found.append(item)
    if problems:
        raise error(f"{path}: " + "; ".join(problems))
    return found
