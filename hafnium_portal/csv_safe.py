"""CSV files the portal exports, safe to open in a spreadsheet: cells that would run as formulas are escaped.

The OWASP rule against CSV (formula) injection: a cell beginning with `=`, `+`, `-`, `@`, a tab or a
carriage return gets a single quote `'` in front, so a spreadsheet shows it as text instead of running
it. A cell already beginning with `'` gets one too, which makes the escaping reversible: remove one
leading `'` from any cell that begins with one and you have the exact value again (`csv_unescape`).
Every export says so in its first line (`ESCAPING_NOTE`), so a reader of the file knows how to read it.
"""

import csv
from collections.abc import Iterable, Iterator

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
# The first line of every CSV export (one cell, no comma: no CSV quoting needed to read it).
ESCAPING_NOTE = (
    "# Cells beginning with = + - @ tab carriage-return or ' have one ' added in front "
    "(OWASP CSV injection rule); remove one leading ' from such a cell to get the exact value."
)


def csv_escape(value) -> str:
    """The cell's text, with a `'` in front when a spreadsheet could take it for a formula."""
    text = "" if value is None else str(value)
    return QUOTE + text if text.startswith((*FORMULA_STARTS, QUOTE)) else text


def csv_unescape(cell: str) -> str:
    """The exact value `csv_escape` was given (as text)."""
    return cell[1:] if cell.startswith(QUOTE) else cell


class _Echo:
    """What csv.writer writes to: each line is handed back, to be streamed."""

    def write(self, line: str) -> str:
        return line


def csv_lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The lines of a CSV export: the escaping note, the header row, then each row, every cell escaped."""
    writer = csv.writer(_Echo())
    yield writer.writerow([ESCAPING_NOTE])
    yield writer.writerow([csv_escape(name) for name in header])
    for row in rows:
        yield writer.writerow([csv_escape(cell) for cell in row])


def csv_read(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Read back what `csv_lines` wrote: one dict of exact (un-escaped) values per row.

    The first line must be the escaping note: a file escaped another way (or not at all) is refused
    rather than read wrongly.
    """
    reader = csv.reader(lines)
    note = next(reader, None)
    if note != [ESCAPING_NOTE]:
        raise ValueError("not a portal CSV export: its first line is not the escaping note")
    header = [csv_unescape(name) for name in next(reader, [])]
    for cells in reader:
        if len(cells) != len(header):
            raise ValueError(f"line {reader.line_num}: {len(cells)} cells, the header has {len(header)}")
        yield {name: csv_unescape(cell) for name, cell in zip(header, cells, strict=True)}
