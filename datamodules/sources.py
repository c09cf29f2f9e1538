"""Where text comes from: a hub id or a local folder -> `DatasetDict` of {text, label}.

Local folders may hold the original aclImdb layout (`train/pos/*.txt` ...), the original AG News
CSV (no header: class 1-4, title, description), or split files named `train`, `validation` (or
`val`, `dev`), `test` and `unsup` (unlabelled text, for MLM) in JSON Lines, CSV, Parquet or plain
text (`.txt`, one text per line), optionally gzipped. A CSV cell is read as the text written in
it ("007" stays "007", "NA" and "" stay text); JSON and Parquet values keep their writer's types.
"""

import csv
import gzip
import itertools
import json
import math
import os
import zlib
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict

from core.errors import UserError
from core.pretrained import hub_reachable

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


def reason(err: BaseException) -> str:
    """The innermost cause of a reader's failure, in one line."""
    while err.__cause__ is not None or (err.__context__ is not None and not str(err).strip()):
        err = err.__cause__ or err.__context__
    if isinstance(err, UnicodeDecodeError):
        return f"not UTF-8 text (byte {err.start}: {err.object[err.start:err.start + 1]!r})"
    if isinstance(err, (EOFError, zlib.error)):
        return f"truncated or corrupt compressed data ({err})"
    if isinstance(err, gzip.BadGzipFile):
        return f"named .gz but not gzip-compressed ({err})"
    if "Invalid UTF8" in str(err):  # pyarrow's check of the bytes it read
        return "not UTF-8 text"
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


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
    their text by the data module (`label_cell`)."""
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


def data_folder(data_dir: str) -> Path:
    """The local data folder, or one line saying it is missing."""
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise UserError(f"data_dir '{data_dir}' does not exist or is not a folder")
    return path


def load_local(data_dir: str) -> DatasetDict:
    path = data_folder(data_dir)
    if is_aclimdb(path):
        return read_aclimdb(path)
    files = split_files(path)
    if "train" not in files:
        raise UserError(
            f"no training data in '{data_dir}': expected train.jsonl / train.csv / train.parquet "
            "(optionally .gz) or the aclImdb layout train/pos, train/neg"
        )
    return read_split_files(files)


def load_hub(dataset: str) -> DatasetDict:
    """A dataset from the Hugging Face hub, or its cached copy when HF_HUB_OFFLINE=1."""
    if not datasets.config.HF_HUB_OFFLINE and not hub_reachable():
        raise UserError(
            f"cannot load dataset '{dataset}': the Hugging Face hub is unreachable; set "
            "HF_HUB_OFFLINE=1 to use a cached copy, or pass local files with --data.data_dir"
        )
    try:
        splits = datasets.load_dataset(dataset)
        return DatasetDict({SPLIT_NAMES.get(name, name): ds for name, ds in splits.items()})
    except (ConnectionError, FileNotFoundError, datasets.exceptions.DatasetNotFoundError) as err:
        raise UserError(f"cannot load dataset '{dataset}': {str(err).splitlines()[0]}") from None


def load_source(dataset: str | None, data_dir: str | None) -> DatasetDict:
    """Local files win over the hub id, so one config serves online and offline users."""
    if data_dir:
        return load_local(data_dir)
    if dataset:
        return load_hub(dataset)
    raise UserError("no data source: set --data.data_dir (local files) or --data.dataset (hub id)")


def origin(data_dir: str | None, split: str) -> str:
    """How errors name a split: its file where it is a local split file."""
    if data_dir:
        path = Path(data_dir).expanduser()
        files = split_files(path) if path.is_dir() and not is_aclimdb(path) else {}
        if split in files:
            return str(files[split])
    return f"{split} data"


def identity(dataset: str | None, data_dir: str | None) -> dict:
    """What identifies a source in a cache key: its files' names, sizes and times, or the hub id."""
    return {"files": fingerprint(data_dir)} if data_dir else {"dataset": dataset}


def fingerprint(data_dir: str) -> list:
    """Name, size and mtime of every file under a data folder: the cache key of local sources."""
    root = Path(data_dir).expanduser().resolve()
    return [str(root)] + [
        (str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*")) if p.is_file()
    ]


def require_columns(ds: Dataset, columns: list[str], where: str, hint: str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise UserError(f"{where} has no column {missing[0]!r}; columns are {ds.column_names} ({hint})")


def cell_text(value, where: str, row: int, column: str) -> str:
    """A cell where text belongs, read as its writer meant it: a JSON or Parquet number is its text
    (0 is a text too; CSV cells are read as written, see `csv_as_written`), a null ''. A list, an
    object or a boolean holds no one text, so it is refused, naming the row and column, rather
    than joined as Python writes it."""
    if is_null(value):
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    kind = {list: "a list", dict: "an object", bool: "a boolean"}.get(type(value), type(value).__name__)
    shown = json.dumps(value, ensure_ascii=False, default=str)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    raise UserError(f"{where} row {row}: column {column!r} holds {kind} ({shown}), expected text")


def is_null(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def label_cell(value, names: list[str]):
    """A label cell as its writer meant it, for `labels.label_id`: a CSV's labels are read as
    text, so a label that is no class name but an integer ('2', '2.0') is that id, and an empty
    one is missing; other values pass unchanged."""
    if not isinstance(value, str) or value in names:
        return value
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() else value


def column(ds: Dataset, name: str) -> list:
    """A column as a list, read in one piece: iterating `ds[name]` formats it row by row (seconds
    on IMDB's 25,000 reviews)."""
    return ds[name][:]


def joined_texts(ds: Dataset, fields: list[str], where: str, required: bool = False) -> list[str]:
    """Each row's `fields` as text (`cell_text`), the non-empty ones joined with a space: a null
    title beside a description (AG News) gives the description; `where` names the file. With
    `required`, a row whose fields hold no text (null, empty or only whitespace) is refused in one
    line naming the file, the row and the columns."""
    values = [column(ds, field) for field in fields]
    columns = [[cell_text(value, where, row, field) for row, value in enumerate(cells, 1)]
               for field, cells in zip(fields, values)]
    texts = [" ".join(part for part in parts if part) for parts in zip(*columns)]
    empty = next((i for i, text in enumerate(texts) if not text.strip()), None) if required else None
    if empty is not None:
        states = ", ".join("null" if is_null(cells[empty]) else "empty" if cells[empty] == ""
                           else "only whitespace" for cells in values)
        raise UserError(f"{where} row {empty + 1}: missing {' and '.join(map(repr, fields))} ({states}): "
                        "every row needs a text")
    return texts


def read_texts(path: str, text_fields: list[str]) -> list[str]:
    """Texts to predict on, one per row, as written: a `.txt` file (one text per line; blank lines
    are skipped) or a JSONL / CSV / Parquet file whose `text_fields` columns are joined with a
    space; a row without text in them is refused, as its prediction belongs on that row."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"predict_file '{path}' does not exist")
    ext = os.path.splitext(file.name.removesuffix(".gz"))[1]
    if ext not in FORMATS:
        raise UserError(f"predict_file '{path}' has an unknown format; use one of {sorted(FORMATS)}")
    ds = read_dataset(file)
    if ext == ".txt":
        return [line for line in column(ds, "text") if line and line.strip()]
    require_columns(ds, text_fields, f"predict_file '{path}'", "set --data.text_fields")
    return joined_texts(ds, text_fields, str(file), required=True)
