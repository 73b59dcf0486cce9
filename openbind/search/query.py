"""Query terms as users write them: `value` or `value:weight` (rclip's syntax), as (kind, value, weight)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from openbind.modalities import TEXT_TOWER, get_input, input_for_path

ITEM = "item"  # a query term naming an indexed item by its id


def parse_term(kind: str, text: str, sign: float = 1.0) -> tuple[str, Any, float]:
    """`"a dog:0.5"` -> (kind, "a dog", 0.5). The weight is split off at the last ':' only when what follows
    parses as a number, so a path like `C:\\photos\\x.jpg` stays whole.
    `sign` -1 subtracts the term."""
    value, sep, weight = text.rpartition(":")
    if sep and value:
        try:
            return kind, value, sign * float(weight)
        except ValueError:
            pass
    return kind, text, sign


def query_terms(
    queries: Sequence[str] = (),
    by_kind: Mapping[str, Sequence[str]] | None = None,
    items: Sequence[str] = (),
    minus: Sequence[str] = (),
) -> list[tuple[str, Any, float]]:
    """The terms of a command line: bare `queries` (a file of a known kind is that kind, anything else a text),
    `by_kind` values per input kind, indexed item ids, and texts to subtract; each may end in `:weight`."""
    text = get_input(TEXT_TOWER).name
    terms = []
    for query in queries:
        kind, value, weight = parse_term(text, query)
        found = input_for_path(value) if Path(value).is_file() else None
        terms.append((found.name if found is not None and found.holds_files else kind, value, weight))
    for kind, values in (by_kind or {}).items():
        terms += [parse_term(get_input(kind).name, value) for value in values]
    for item in items:
        kind, value, weight = parse_term(ITEM, item)
        if not value.isdigit():
            raise ValueError(f"--item takes an item id (a number), got {value!r}")
        terms.append((kind, int(value), weight))
    return terms + [parse_term(text, value, -1.0) for value in minus]
