"""Parsers for the three sources: each turns one landing file into typed rows or rejects.

A parser yields `(line_number, row)` where row is a tuple in the raw table's column order, or
`(line_number, Reject(reason, raw_text))`, or a `RowBlock` of many good rows parsed column-wise. Parsers never drop a line silently. Duplicate keys within a file are found by the loader in SQL,
so parsers keep no per-file state and memory stays flat however large the file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str
    raw_text: str


@dataclass(frozen=True, slots=True)
class RowBlock:
    """Many good rows at once, column-wise: pyarrow string arrays in the raw table's column order
    (null for NULL) whose values never need COPY escaping (no tab, newline, carriage return or
    backslash), and the line number of each row. The loader sends them without a Python loop."""

    columns: list
    line_numbers: object  # pyarrow int64 array

    def __len__(self) -> int:
        return len(self.line_numbers)


class FileError(Exception):
    """The file as a whole is unusable (missing, empty, cut-off gzip, schema drift): load nothing."""

    def __init__(self, file: str, reason: str, line: int | None = None) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {reason}")
        self.file, self.reason, self.line = file, reason, line
