"""Plain-text tables: the one layout every table of the command line uses."""

from __future__ import annotations

from collections.abc import Container, Sequence


def aligned(rows: Sequence[Sequence[str]], right: Container[int]) -> list[str]:
    """``rows`` of cells as lines: each column as wide as its widest cell (a header row
    included), the columns in ``right`` aligned right and the others left, two spaces
    between, trailing blanks dropped."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                      for i, (c, w) in enumerate(zip(row, widths))).rstrip() for row in rows]
