"""The output of `predict.py`: one row per input text, in input order, with the columns kept from
the input (a `.txt` file's line number), the text, the label and each class's probability (the
columns of `train.py predict`), as CSV or JSON Lines by extension; and beside it,
`<output>.run.json`, what wrote it (the weights' sha256, the runtime, the tokens per text).

Rows are appended a chunk at a time, each chunk in one write, so a stopped prediction leaves
whole rows. Resuming checks that the same model, runtime and length go on, reads the rows back,
checks that each holds the input's text at its place, cuts off a last row that a kill tore, and
appends after the rows that are whole."""

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.errors import UserError

FORMATS = (".csv", ".jsonl")
IDENTITY = ("weights_sha256", "runtime", "max_length")  # what a resume must share with the file


def record_path(path: Path) -> Path:
    """Where what wrote `path` is recorded."""
    return path.with_name(path.name + ".run.json")


class OutputFile:
    def __init__(self, path: Path, label_names: list[str], kept: list[str] = (), record: dict | None = None):
        if path.suffix not in FORMATS:
            raise UserError(f"--output {path}: the output is a {' or '.join(FORMATS)} file, by its extension")
        self.path, self.label_names, self.record = path, list(label_names), record or {}
        self.jsonl = path.suffix == ".jsonl"
        self.columns = [*kept, "text", "label", *(f"prob_{name}" for name in label_names)]
        self.text_column = len(kept)
        self.end = 0  # bytes of whole rows (and the header), found by `written_texts`

    def records(self, rows: list[tuple[list, str]], probs: np.ndarray) -> list[list]:
        labels = probs.argmax(-1).tolist()
        return [[*kept, text, self.label_names[label], *(round(p, 6) for p in row)]
                for (kept, text), label, row in zip(rows, labels, probs.tolist(), strict=True)]

    def write(self, rows: list[tuple[list, str]], probs: np.ndarray, header: bool = False) -> None:
        """Append the rows of one chunk (after the header, where asked) in one write."""
        buffer = io.StringIO()
        records = self.records(rows, probs)
        if self.jsonl:
            buffer.writelines(json.dumps(dict(zip(self.columns, row)), default=str) + "\n" for row in records)
        else:
            writer = csv.writer(buffer)
            if header:
                writer.writerow(self.columns)
            writer.writerows(records)
        with open(self.path, "ab") as f:
            f.write(buffer.getvalue().encode("utf-8"))

    def start(self) -> None:
        """An empty output, with its header, and the record of what writes it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.save_record()
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
            header = next(reader, None)
            if header is None:  # not even the header is whole
                return
            self.check_columns(header, True)
            self.end = self.line_end
            for row in reader:
                if len(row) != len(self.columns):
                    return
                self.end = self.line_end
                yield row[self.text_column]
        except csv.Error:  # a quoted text that a kill cut off
            return

    def check_columns(self, columns: list[str], first: bool) -> None:
        if first and columns != self.columns:
            raise UserError(f"{self.path} has columns {columns}, not this model's {self.columns}: "
                            "it holds other predictions; choose another --output or --overwrite")

    def save_record(self, **more) -> None:
        """`<output>.run.json`: what writes the file, and `more` (how PyTorch ran, once known)."""
        self.record.update(more)
        path = record_path(self.path)
        staged = path.with_name(path.name + ".partial")  # a kill while it is written leaves the old one
        staged.write_text(json.dumps(self.record, indent=2) + "\n")
        staged.replace(path)

    def written_record(self) -> dict | None:
        path = record_path(self.path)
        return json.loads(path.read_text()) if path.is_file() else None

    def check_record(self) -> None:
        """A resume goes on only with what wrote the file: the same weights, runtime and length."""
        written = self.written_record()
        differ = [key for key in IDENTITY if (written or {}).get(key) != self.record[key]]
        if differ:
            was = ("no record of what wrote it" if written is None else
                   "predictions of " + ", ".join(f"{k} {written.get(k)}" for k in differ))
            now = ", ".join(f"{k} {self.record[k]}" for k in differ)
            raise UserError(f"{self.path} holds {was}; this run has {now}: resuming would mix them; "
                            "use the options that wrote it, another --output, or --overwrite")

    def resume(self, texts: Iterator[str]) -> int:
        """How many rows the file holds whole, each checked against the next of `texts`; a torn
        last row is cut off, so appending goes on after the whole ones."""
        self.check_record()
        done = 0
        for done, written in enumerate(self.written_texts(), 1):
            if next(texts, None) != written:
                raise UserError(f"{self.path} row {done} holds another text than row {done} of the "
                                "input: it holds predictions of another file; choose another --output "
                                "or --overwrite")
        if self.end == 0:  # not even its header is whole: the caller starts it anew
            return 0
        with open(self.path, "r+b") as f:
            f.truncate(self.end)
        return done
