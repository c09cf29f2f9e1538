"""The texts of a file to predict on, read one row at a time, so memory does not grow with the file,
and checked as they are read: a bad file, row or byte is one line naming the file and the row. The
rules are `train.py predict`'s (`datamodules.cells.read_texts`): a `.txt` file holds one text per
line, blank lines skipped; a JSON Lines, CSV or Parquet row joins its `text_fields` with a space
and must hold a text, as its prediction belongs on that row. Any of them may be gzipped."""

import csv
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from core.errors import UserError, reason
from datamodules.cells import cell_text, is_null

FORMATS = (".txt", ".jsonl", ".csv", ".parquet")
SHOWN_BLANK_LINES = 5


def input_file(path: str) -> Path:
    """The file named by the user, checked before any model loads."""
    file = Path(path).expanduser()
    if not file.exists():
        raise UserError(f"input file '{path}' does not exist")
    if not file.is_file():
        raise UserError(f"input '{path}' is not a file")
    if extension(file) not in FORMATS:
        raise UserError(f"input file '{path}' has an unknown format; use one of {list(FORMATS)}, "
                        "optionally gzipped (.gz)")
    if file.stat().st_size == 0:
        raise UserError(f"input file '{path}' is empty")
    return file


def extension(file: Path) -> str:
    return os.path.splitext(file.name.removesuffix(".gz"))[1]


class TextFile:
    """The rows of `file`, in order, each time it is iterated: (the values kept beside the
    prediction, the text). A `.txt` file keeps each text's line number; the others keep the
    `keep_columns` of the row. `blank_lines` holds the numbers of the blank lines of a `.txt` file
    that the last pass skipped."""

    def __init__(self, file: Path, text_fields: list[str], keep_columns: list[str] = ()):
        self.file, self.text_fields, self.keep_columns = file, list(text_fields), list(keep_columns)
        if self.keep_columns and extension(file) == ".txt":
            raise UserError(f"--keep_columns {self.keep_columns}: {file} is a .txt file, which has no "
                            "columns (its rows keep their line number)")
        self.kept = ["line"] if extension(file) == ".txt" else self.keep_columns
        self.blank_lines: list[int] = []

    def __iter__(self) -> Iterator[tuple[list, str]]:
        self.blank_lines = []
        kind = extension(self.file)
        if kind == ".txt":
            return self.txt()
        return {".jsonl": self.jsonl, ".csv": self.csv, ".parquet": self.parquet}[kind]()

    def blank_lines_note(self) -> str | None:
        """One line about the blank lines skipped, or None."""
        if not self.blank_lines:
            return None
        shown = ", ".join(map(str, self.blank_lines[:SHOWN_BLANK_LINES]))
        more = ", ..." if len(self.blank_lines) > SHOWN_BLANK_LINES else ""
        return (f"{self.file}: skipped {len(self.blank_lines):,} blank line(s) (line {shown}{more}); "
                "each output row holds its text")

    def lines(self) -> Iterator[tuple[int, str]]:
        """(line number, line with its end) of the UTF-8 file, gzipped or not, one at a time."""
        opener = gzip.open if self.file.name.endswith(".gz") else open
        try:
            with opener(self.file, "rb") as f:
                for number, raw in enumerate(f, 1):
                    try:
                        yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
                    except UnicodeDecodeError as err:
                        raise UserError(f"{self.file} line {number} is not UTF-8 text (byte "
                                        f"{raw[err.start:err.start + 1]!r}); is it a text file?") from None
        except (OSError, EOFError, zlib.error) as err:
            raise UserError(f"cannot read {self.file}: {reason(err)}") from None

    def txt(self) -> Iterator[tuple[list, str]]:
        for number, line in self.lines():
            text = line.rstrip("\r\n")
            if text.strip():
                yield [number], text
            else:
                self.blank_lines.append(number)

    def jsonl(self) -> Iterator[tuple[list, str]]:
        for number, line in self.lines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{self.file} line {number} is not JSON ({err.msg}): a .jsonl file "
                                "holds one JSON object per line") from None
            if not isinstance(row, dict):
                raise UserError(f"{self.file} line {number} holds {type(row).__name__}, expected a "
                                f"JSON object with {self.text_fields}")
            yield self.joined(row, number)

    def csv(self) -> Iterator[tuple[list, str]]:
        reader = csv.reader(line for _, line in self.lines())
        try:
            header = next(reader, [])
            for number, cells in enumerate(reader, 1):
                if not cells:  # a blank line, as pandas skips it
                    continue
                if len(cells) != len(header):
                    raise UserError(f"{self.file} row {number} has {len(cells)} fields, its header "
                                    f"{len(header)}")
                yield self.joined(dict(zip(header, cells)), number)
        except csv.Error as err:
            raise UserError(f"cannot read {self.file}: {err}") from None

    def parquet(self) -> Iterator[tuple[list, str]]:
        import pyarrow.parquet as pq

        source = gzip.open(self.file) if self.file.name.endswith(".gz") else self.file
        try:
            table = pq.ParquetFile(source)
        except Exception as err:  # pyarrow's many error types all mean: this is no Parquet file
            raise UserError(f"cannot read {self.file}: {reason(err)}") from None
        self.require(table.schema_arrow.names)
        number = 0
        columns = list(dict.fromkeys(self.text_fields + self.keep_columns))
        for batch in table.iter_batches(columns=columns, batch_size=1024):
            for row in batch.to_pylist():
                number += 1
                yield self.joined(row, number)

    def require(self, columns: list[str]) -> None:
        for names, option in ((self.text_fields, "--text_fields"), (self.keep_columns, "--keep_columns")):
            missing = [name for name in names if name not in columns]
            if missing:
                raise UserError(f"{self.file} has no column {missing[0]!r}; columns are {columns} "
                                f"(set {option})")

    def joined(self, row: dict, number: int) -> tuple[list, str]:
        """(the kept columns' values, the row's text fields as text, the non-empty ones joined with
        a space); a row without text is refused, as `datamodules.cells.joined_texts` refuses it."""
        self.require(list(row))
        kept = [row[column] for column in self.keep_columns]
        for column, value in zip(self.keep_columns, kept):
            if isinstance(value, str):
                cell_text(value, str(self.file), number, column)
        parts = [cell_text(row[field], str(self.file), number, field) for field in self.text_fields]
        text = " ".join(part for part in parts if part)
        if not text.strip():
            states = ", ".join("null" if is_null(row[f]) else "empty" if row[f] == "" else "only whitespace"
                               for f in self.text_fields)
            raise UserError(f"{self.file} row {number}: missing {' and '.join(map(repr, self.text_fields))} "
                            f"({states}): every row needs a text")
        return kept, text
