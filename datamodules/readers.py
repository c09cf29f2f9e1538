"""How each kind of local file is read, every read failure one line naming the file: the original
aclImdb folders (`train/pos/*.txt` ...), the original AG News CSV (no header: class 1-4, title,
description), and split files named `train`, `validation` (or `val`, `dev`), `test` and `unsup`
(unlabelled text, for MLM) in JSON Lines, CSV, Parquet or plain text (`.txt`, one text per line),
optionally gzipped. A CSV cell is read as the text written in it ("007" stays "007", "NA" and ""
stay text); JSON and Parquet values keep their writer's types.
"""

import csv
import gzip
import itertools
import os
import zlib
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from core.errors import UserError, reason

SPLIT_NAMES = {"train": "train", "validation": "validation", "val": "validation", "dev": "validation",
               "test": "test", "unsup": "unsup", "unsupervised": "unsup"}
FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text"}
ACLIMDB_LABELS = {"neg": 0, "pos": 1}
# `datasets` types a JSON column by the file's first 10 MB and forces later chunks into that type:
# one number after them wrapped every later text in quotes. One chunk types a column by all rows.
READ_OPTIONS = {"json": {"chunksize": 2**31 - 1}}


def split_files(data_dir: Path) -> dict[str, Path]:
    """`{split: file}` for the split files in a folder, named as in the module docstring."""
    found = {}
    for path in sorted(data_dir.iterdir()):
        name = path.name.removesuffix(".gz")
        stem, ext = os.path.splitext(name)
        if stem in SPLIT_NAMES and ext in FORMATS and path.is_file():
            split = SPLIT_NAMES[stem]
            if split in found:
                raise UserError(f"two files for split '{split}' in {data_dir}: "
                                f"{found[split].name}, {path.name}")
            found[split] = path
    return found


def is_aclimdb(data_dir: Path) -> bool:
    return all((data_dir / "train" / label).is_dir() for label in ACLIMDB_LABELS)


def read_aclimdb(data_dir: Path) -> DatasetDict:
    """The original aclImdb folders: one review per `{id}_{rating}.txt`; neg = 0, pos = 1."""
    splits = {}
    for split in ("train", "test"):
        texts, labels = [], []
        for label_name, label in ACLIMDB_LABELS.items():
            folder = data_dir / split / label_name
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.txt")):
                texts.append(read_utf8(path))
                labels.append(label)
        if texts:
            splits[split] = Dataset.from_dict({"text": texts, "label": labels})
    return DatasetDict(splits)


def read_utf8(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        bad = err.object[err.start:err.start + 1]
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}: {bad!r})") from None
    except OSError as err:
        raise UserError(f"cannot read {path}: {err.strerror or err}") from None


def read_dataset(path: Path) -> Dataset:
    """A JSON Lines / CSV / Parquet / text file (optionally gzipped) read by `datasets`; whatever
    goes wrong (empty, truncated, wrongly compressed, not UTF-8, malformed rows) is one line
    naming the file."""
    if path.stat().st_size == 0:
        raise UserError(f"{path} is empty")
    builder = FORMATS[os.path.splitext(path.name.removesuffix(".gz"))[1]]
    options = csv_as_written(path) if builder == "csv" else READ_OPTIONS.get(builder, {})
    try:
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", **options)
        ds.data.table.validate(full=True)  # catches bytes that are not UTF-8 before any text is used
    except Exception as err:  # the reader's many error types all mean: this file cannot be read
        raise UserError(f"cannot read {path}: {reason(err)}") from None
    if len(ds) == 0:
        raise UserError(f"{path} holds no rows")
    return ds


def csv_as_written(path: Path) -> dict:
    """Reader options under which every CSV cell is the text written in it: a CSV has no types,
    and pandas would read "007" as 7, "1.50" as 1.5, "NA", "null" and "" as missing, and type a
    column chunk by chunk (digits in the first 10,000 rows, words later). Labels are read from
    their text by the data module (`cells.label_cell`)."""
    width = len(next((row for row in csv_rows(path, limit=10) if row), []))
    return {"converters": {i: str for i in range(width)}, "na_filter": False}


def csv_rows(path: Path, limit: int | None = None) -> list[list[str]]:
    """Rows of a CSV file (optionally gzipped), every read failure one line naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as f:
            return list(itertools.islice(csv.reader(f), limit))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as err:
        raise UserError(f"cannot read {path}: {reason(err)}") from None


def is_ag_news_csv(path: Path) -> bool:
    """The original AG News CSV has no header and starts with a class index 1-4 and two texts."""
    first = (csv_rows(path, limit=1) or [[]])[0]
    return len(first) == 3 and first[0] in {"1", "2", "3", "4"}


def read_ag_news_csv(path: Path) -> Dataset:
    """Original AG News rows -> text = title + description, label = class index - 1 (0-3)."""
    rows = csv_rows(path)
    for row, fields in enumerate(rows, 1):
        if len(fields) != 3 or fields[0] not in {"1", "2", "3", "4"}:
            raise UserError(f"{path} row {row}: expected an AG News row (class 1-4, title, "
                            f"description), got {len(fields)} fields starting {fields[:1]}")
    return Dataset.from_dict({
        "text": [f"{title} {description}" for _, title, description in rows],
        "label": [int(cls) - 1 for cls, _, _ in rows],
    })


def read_split_files(files: dict[str, Path]) -> DatasetDict:
    splits = {}
    generic = {}
    for split, path in files.items():
        if path.stat().st_size == 0:
            raise UserError(f"{path} is empty")
        if path.name.removesuffix(".gz").endswith(".csv") and is_ag_news_csv(path):
            splits[split] = read_ag_news_csv(path)
        else:
            generic[split] = path
    for split, path in generic.items():
        splits[split] = read_dataset(path)
    return DatasetDict(splits)
