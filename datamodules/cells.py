"""What a cell holds, read as its writer meant it: the text of a row (its text columns joined), a
label cell, a column in one piece, and the texts of a file to predict on.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import UserError

if TYPE_CHECKING:  # `datasets` is imported where a file is read: predict.py's checks need none of it
    from datasets import Dataset


def require_columns(ds: Dataset, columns: list[str], where: str, hint: str) -> None:
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise UserError(f"{where} has no column {missing[0]!r}; columns are {ds.column_names} ({hint})")


def cell_text(value, where: str, row: int, column: str) -> str:
    """A cell where text belongs, read as its writer meant it: a JSON or Parquet number is its text
    (0 is a text too; CSV cells are read as written, see `readers.csv_as_written`), a null ''. A
    list, an object or a boolean holds no one text, so it is refused, naming the row and column,
    rather than joined as Python writes it. A lone surrogate (JSON's "\\ud800", no character at
    all) is refused too: no tokenizer can encode it."""
    if is_null(value):
        return ""
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as err:
                raise UserError(f"{where} row {row}: column {column!r} holds {value[err.start]!r} at "
                                f"character {err.start + 1}, a lone surrogate, which is no text") from None
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


def read_texts(path: str, text_fields: list[str], option: str = "predict_file") -> list[str]:
    """Texts to predict on (or, for a distillation, to label), one per row, as written: a `.txt`
    file (one text per line; blank lines are skipped) or a JSONL / CSV / Parquet file whose
    `text_fields` columns are joined with a space; a row without text in them is refused, as its
    prediction belongs on that row. `option` names the file in the errors."""
    from datamodules.readers import FORMATS, read_dataset

    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{option} '{path}' does not exist")
    ext = os.path.splitext(file.name.removesuffix(".gz"))[1]
    if ext not in FORMATS:
        raise UserError(f"{option} '{path}' has an unknown format; use one of {sorted(FORMATS)}")
    ds = read_dataset(file)
    if ext == ".txt":
        return [line for line in column(ds, "text") if line and line.strip()]
    require_columns(ds, text_fields, f"{option} '{path}'", "set --data.text_fields")
    return joined_texts(ds, text_fields, str(file), required=True)
