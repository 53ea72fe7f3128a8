"""Tables from visitors: a CSV or XLSX upload, or lines of text, as columns and rows for Batch.

A visitor controls every size in such a file, and a workbook declares sizes it does not have (a 4.9 KB
XLSX can declare 20,000 × 16,384 cells). So nothing declared is believed: rows, columns and cells are
counted while the table streams, and reading stops at the first limit passed; the page reads in a worker
process (`read_table_isolated`) so that what no limit foresaw costs a worker, not the server.
"""
from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .isolation import WorkTooHeavy, run_isolated

MAX_ROWS = 2000
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024  # a workbook's parts, as its zip directory declares them
MAX_COLUMNS = 500
MAX_CELLS = 1_000_000  # cells read from a table, blank ones and a sheet's padding included


class BatchInputError(ValueError):
    """Input the page cannot run: `key` names the i18n message, `values` fill it."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(f"{key}: {values}")
        self.key, self.values = key, values

    def __reduce__(self) -> tuple[Any, ...]:  # comes back whole from a worker process
        return _refused, (type(self), self.key, self.values)


def _refused(kind: type[BatchInputError], key: str, values: dict[str, object]) -> BatchInputError:
    return kind(key, **values)


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[dict[str, str]]


def table_from_lines(text: str) -> Table:
    """One prompt per non-empty line; the lines are the column `text` (for a template's `{text}`)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return Table(["text"], [{"text": line} for line in lines])


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value).strip()


def _headers(raw: list[Any]) -> list[str]:
    """Column names from a header row: blanks named by position, repeats numbered."""
    names: list[str] = []
    taken: set[str] = set()
    for index, value in enumerate(raw):
        name = _cell(value) or f"column {index + 1}"
        while name in taken:
            name = f"{name} ({index + 1})"
        taken.add(name)
        names.append(name)
    return names


def _without_trailing_blanks(raw: Sequence[Any]) -> list[Any]:
    end = len(raw)
    while end and not _cell(raw[end - 1]):
        end -= 1
    return list(raw[:end])


def _table(header: Sequence[Any], body: Iterable[Sequence[Any]], name: str) -> Table:
    """The rows under a header, read as they stream: columns, rows and the cells read (blank ones and a
    sheet's padding included) are counted as they come, so that no file can make this read more than
    MAX_CELLS, whatever it declares."""
    named = _without_trailing_blanks(header)
    if len(named) > MAX_COLUMNS:
        raise BatchInputError("batch_too_many_columns", limit=MAX_COLUMNS)
    columns = _headers(named)
    cells_read = len(header)
    rows = []
    for raw in body:
        cells_read += max(1, len(raw))
        if cells_read > MAX_CELLS:
            raise BatchInputError("batch_too_many_cells", limit=MAX_CELLS)
        cells = [_cell(value) for value in raw[:len(columns)]]
        if not any(cells):
            continue  # blank lines at the end of a sheet
        if len(rows) >= MAX_ROWS:
            raise BatchInputError("batch_too_many_rows", limit=MAX_ROWS)
        rows.append(dict(zip(columns, cells + [""] * (len(columns) - len(cells)))))
    if not rows:
        raise BatchInputError("batch_file_empty", name=name)
    return Table(columns, rows)


def _decode(data: bytes, name: str) -> str:
    for encoding in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise BatchInputError("batch_file_encoding", name=name)


def read_table(name: str, data: bytes) -> Table:
    """A CSV or XLSX upload as a table (its first row names the columns); raises BatchInputError.
    Bounded, but heavy for a big file: the page calls `read_table_isolated`."""
    if len(data) > MAX_FILE_BYTES:
        raise BatchInputError("batch_file_too_big", name=name, limit=MAX_FILE_BYTES // (1024 * 1024))
    lowered = name.lower()
    if lowered.endswith((".xlsx", ".xlsm")):
        return _read_xlsx(name, data)
    if lowered.endswith((".csv", ".tsv", ".txt")):
        text = _decode(data, name)
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel_tab if lowered.endswith(".tsv") else csv.excel
        try:
            lines = csv.reader(io.StringIO(text), dialect)
            header = next(lines, None)
            if header is None:
                raise BatchInputError("batch_file_empty", name=name)
            return _table(header, lines, name)
        except csv.Error as error:
            raise BatchInputError("batch_file_unreadable", name=name, reason=str(error)[:200]) from None
    raise BatchInputError("batch_file_type", name=name)


def _unzipped_size(data: bytes) -> int:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, ValueError):
        return 0  # openpyxl says what is wrong with it


def _read_xlsx(name: str, data: bytes) -> Table:
    from openpyxl import load_workbook  # only when a workbook comes

    if _unzipped_size(data) > MAX_UNZIPPED_BYTES:
        raise BatchInputError("batch_file_too_big", name=name, limit=MAX_UNZIPPED_BYTES // (1024 * 1024))
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many kinds for a file that is not a workbook
        raise BatchInputError("batch_file_unreadable", name=name, reason=type(error).__name__) from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # the declared <dimension> is the file's word: 20,000 × 16,384 blank cells
        lines = sheet.iter_rows(values_only=True)
        header = next(lines, None)
        if header is None:
            raise BatchInputError("batch_file_empty", name=name)
        return _table(header, lines, name)
    finally:
        book.close()


def read_table_isolated(name: str, data: bytes) -> Table:
    """`read_table` in a worker process with CPU, memory and time limits (atri.isolation)."""
    try:
        return run_isolated(read_table, name, data)
    except WorkTooHeavy as error:
        raise BatchInputError("batch_file_too_heavy", name=name, limit=error.limit) from None
