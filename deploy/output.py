"""The output of `predict.py`: one row per input text, in input order, with the text, the label and
each class's probability (the columns of `train.py predict`), as CSV or JSON Lines by extension.

Rows are appended a chunk at a time, each chunk in one write, so a stopped prediction leaves
whole rows. Resuming reads the rows back, checks that each holds the input's text at its place,
cuts off a last row that a kill tore, and appends after the rows that are whole."""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.errors import UserError


class OutputFile:
    def __init__(self, path: Path, label_names: list[str]):
        self.path, self.label_names = path, list(label_names)
        self.jsonl = path.name.endswith(".jsonl")
        self.columns = ["text", "label", *(f"prob_{name}" for name in label_names)]
        self.end = 0  # bytes of whole rows (and the header), found by `written_texts`

    def records(self, texts: list[str], probs: np.ndarray) -> list[list]:
        labels = probs.argmax(-1).tolist()
        return [[text, self.label_names[label], *(round(p, 6) for p in row)]
                for text, label, row in zip(texts, labels, probs.tolist(), strict=True)]

    def write(self, texts: list[str], probs: np.ndarray, header: bool = False) -> None:
        """Append the rows of one chunk (after the header, where asked) in one write."""
        buffer = io.StringIO()
        rows = self.records(texts, probs)
        if self.jsonl:
            buffer.writelines(json.dumps(dict(zip(self.columns, row))) + "\n" for row in rows)
        else:
            writer = csv.writer(buffer)
            if header:
                writer.writerow(self.columns)
            writer.writerows(rows)
        with open(self.path, "ab") as f:
            f.write(buffer.getvalue().encode("utf-8"))

    def start(self) -> None:
        """An empty output, with its header."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(b"")
        self.write([], np.empty((0, len(self.label_names)), dtype=np.float32), header=True)

    def lines(self) -> Iterator[str]:
        """The file's whole lines; `line_end` is the byte after the last one read."""
        self.line_end = 0
        with open(self.path, "rb") as f:
            for raw in iter(f.readline, b""):
                if not raw.endswith(b"\n"):
                    return  # a write stopped inside this line
                self.line_end += len(raw)
                yield raw.decode("utf-8", errors="replace")

    def written_texts(self) -> Iterator[str]:
        """The text of each whole row, in order; `end` follows the last whole row."""
        if self.jsonl:
            for number, line in enumerate(self.lines(), 1):
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    return
                self.check_columns(list(row) if isinstance(row, dict) else [], number == 1)
                self.end = self.line_end
                yield row["text"]
            return
        reader = csv.reader(self.lines())
        try:
            self.check_columns(next(reader, []), True)
            self.end = self.line_end
            for row in reader:
                if len(row) != len(self.columns):
                    return
                self.end = self.line_end
                yield row[0]
        except csv.Error:  # a quoted text that a kill cut off
            return

    def check_columns(self, columns: list[str], first: bool) -> None:
        if first and columns != self.columns:
            raise UserError(f"{self.path} has columns {columns}, not this model's {self.columns}: "
                            "it holds other predictions; choose another --output or --overwrite")

    def resume(self, texts: Iterator[str]) -> int:
        """How many rows the file holds whole, each checked against the next of `texts`; a torn
        last row is cut off, so appending goes on after the whole ones."""
        done = 0
        for done, written in enumerate(self.written_texts(), 1):
            if next(texts, None) != written:
                raise UserError(f"{self.path} row {done} holds another text than row {done} of the "
                                "input: it holds predictions of another file; choose another --output "
                                "or --overwrite")
        if self.end == 0:  # not even its header is whole
            self.start()
            return 0
        with open(self.path, "r+b") as f:
            f.truncate(self.end)
        return done
