"""The markdown table that the benchmark scripts write: one line per named row, one cell per column."""

from __future__ import annotations

from collections.abc import Iterable

# a column: (key in a row's dict, title, format of the value)
Column = tuple[str, str, str]


def markdown_table(
    rows: Iterable[tuple[str, dict]], columns: Iterable[Column], first: str = "row"
) -> list[str]:
    """Lines of a table: a header (`first`, then each column's title), then for each (name, row) the name and
    each column's value formatted, '–' where the row lacks it; numbers right-aligned."""
    columns = list(columns)
    lines = [
        f"| {first} | " + " | ".join(title for _, title, _ in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for name, row in rows:
        cells = [fmt.format(row[key]) if row.get(key) is not None else "–" for key, _, fmt in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def other_machine_notes(names, rows: dict, machine: str) -> list[str]:
    """One line per row of `names` recorded on another machine than `machine` (rows without one: on it)."""
    return [
        f"- {n}: trained on {rows[n]['machine']}"
        for n in names
        if rows.get(n, {}).get("machine", machine) != machine
    ]
