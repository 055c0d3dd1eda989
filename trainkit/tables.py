"""Rich tables that fit the terminal: key columns stay whole, long text folds, the rest is left out and named.

rich squeezes every column to fit, so at 120 columns a 13-column report had 1-character job and status
columns and a 172-line table. Here columns are added by priority while their natural widths fit (numbers
never wrap); text columns (overrides) fold to at least `min_width`; what does not fit is left out and
named under the table. No torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# A default rich box: left edge, then per column 1 padding + text + 1 padding + 1 divider.
EDGE = 1
PER_COLUMN = 3


@dataclass
class Col:
    key: str
    header: str
    priority: int  # lower is kept first when the terminal is narrow
    fold: bool = False  # text that may wrap onto more lines; numbers never do
    min_width: int = 12  # the narrowest a folding column may get
    justify: str = "right"


def _header_lines(header: str, split: bool) -> list[str]:
    # "best val_acc" -> "best" / "val_acc": two short header lines instead of one wide one.
    if not split:
        return [header]
    head, _, rest = header.partition(" " if " " in header else "_")
    return [head, rest] if rest else [head]


def _natural(col: Col, cells: list[dict[str, str]], split: bool) -> int:
    widths = [len(line) for line in _header_lines(col.header, split)]
    widths += [len(line) for c in cells for line in c.get(col.key, "").splitlines() or [""]]
    return max(widths)


def width_of(col: Col, cells: list[dict[str, str]], split: bool) -> int:
    """The width a column needs: its longest cell, or `min_width` for folding text."""
    natural = _natural(col, cells, split)
    return min(natural, max(col.min_width, max(len(w) for w in _header_lines(col.header, split)))) if col.fold else natural


def choose(cols: list[Col], cells: list[dict[str, str]], width: int) -> tuple[list[Col], bool]:
    """The columns that fit `width` (in their given order) and whether headers go on two lines."""
    for split in (False, True):
        used = EDGE
        chosen: list[Col] = []
        for col in sorted(cols, key=lambda c: c.priority):
            need = width_of(col, cells, split) + PER_COLUMN
            if used + need <= width:
                chosen.append(col)
                used += need
        if len(chosen) == len(cols):
            break
    return [c for c in cols if c in chosen], split


def spare(chosen: list[Col], cells: list[dict[str, str]], split: bool, width: int) -> int:
    """The width left over once `chosen` take what they need."""
    return width - EDGE - sum(width_of(c, cells, split) + PER_COLUMN for c in chosen)


def build(cols: list[Col], cells: list[dict[str, str]], split: bool, title: str | None = None,
          styles: list[str | None] | None = None) -> Any:
    """The rich Table of `cells` (one dict per row, key -> text) with `cols`."""
    from rich.table import Table

    table = Table(title=title)
    for col in cols:
        header = "\n".join(_header_lines(col.header, split))
        if col.fold:
            table.add_column(header, overflow="fold", min_width=min(col.min_width, _natural(col, cells, split)))
        else:
            table.add_column(header, justify=col.justify, no_wrap=True)  # type: ignore[arg-type]
    for i, c in enumerate(cells):
        table.add_row(*(c.get(col.key, "") for col in cols), style=styles[i] if styles else None)
    return table


def console(width: int | None = None) -> Any:
    """A terminal's own width; a pipe or log file gets 200 columns (no 80-column squeeze)."""
    from rich.console import Console

    if width is not None:
        return Console(highlight=False, width=width)
    out = Console(highlight=False)
    return out if out.is_terminal else Console(highlight=False, width=200)
