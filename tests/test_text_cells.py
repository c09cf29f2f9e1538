"""A text cell is text: CSV cells come back as written, labels are still ids or class names, and a
row without text is refused in one line naming its file, row and column."""

import csv
import json

import pandas as pd
import pytest

from core.errors import UserError
from datamodules import cells, sources
from tests.helpers import classification_dm

# texts a CSV reader would type as numbers, booleans or missing values, or otherwise rewrite
AS_WRITTEN = ["007", "1.50", "0042", "-0", "1e3", "1,000", "TRUE", "NA", "null", "NaN", "None", "#N/A",
              "  spaced  ", 'a "quoted" word', "two\nlines"]


def write_csv(path, header: list[str], rows: list[list]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([header, *rows])
    return str(path)


def test_csv_texts_come_back_byte_for_byte(tmp_path):
    source = write_csv(tmp_path / "texts.csv", ["text"], [[t] for t in AS_WRITTEN])
    assert cells.read_texts(source, ["text"]) == AS_WRITTEN
    write_csv(tmp_path / "train.csv", ["text", "label"], [[t, i % 2] for i, t in enumerate(AS_WRITTEN)])
    train = sources.load_local(str(tmp_path))["train"]
    assert cells.joined_texts(train, ["text"], "train") == AS_WRITTEN


def test_a_csv_column_of_digits_then_words_comes_back_as_written(tmp_path):
    """pandas types a CSV by chunks of 10,000 rows: digits first, words after them."""
    texts = [f"{i:05d}" for i in range(10_005)] + ["a word", "1.50"]
    source = write_csv(tmp_path / "texts.csv", ["text"], [[t] for t in texts])
    assert cells.read_texts(source, ["text"]) == texts


def test_json_and_parquet_numbers_are_their_text(tmp_path):
    """These files type their own values: a number is its text, as before."""
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in ["7", 7, 1.5]))
    assert cells.read_texts(str(tmp_path / "texts.jsonl"), ["text"]) == ["7", "7", "1.5"]
    pd.DataFrame({"text": [7.0, 1.5]}).to_parquet(tmp_path / "texts.parquet")
    assert cells.read_texts(str(tmp_path / "texts.parquet"), ["text"]) == ["7", "1.5"]


@pytest.mark.parametrize("names, labels, ids", [
    (["neg", "pos"], ["0", "1", "1.0", "pos"], [0, 1, 1, 1]),  # ids as digits, or names
    (["1", "2"], ["1", "2", "2", "1"], [0, 1, 1, 0]),  # names that are digits are names
])
def test_csv_labels_are_ids_or_class_names_beside_texts_as_written(tiny_bert, tmp_path, names, labels, ids):
    texts = ["007", "1.50", "NA", "0042"]
    write_csv(tmp_path / "train.csv", ["text", "label"], list(zip(texts, labels)))
    dm = classification_dm(tiny_bert, str(tmp_path), label_names=names)
    out = dm.to_text_label(sources.load_local(str(tmp_path))["train"], "train")
    assert out["text"] == texts and out["label"] == ids


def test_an_empty_csv_label_is_missing(tiny_bert, tmp_path):
    path = write_csv(tmp_path / "train.csv", ["text", "label"], [["007", "1"], ["008", ""]])
    dm = classification_dm(tiny_bert, str(tmp_path))
    with pytest.raises(UserError, match=f"^{path} row 2: missing 'label'$"):
        dm.to_text_label(sources.load_local(str(tmp_path))["train"], "train")


LABELLED = {  # file, content whose row 3 has no text, what the error says of it
    "csv empty": ("validation.csv", "text,label\n007,1\n1.50,0\n,1\n", "empty"),
    "csv whitespace": ("validation.csv", "text,label\n007,1\n1.50,0\n   ,1\n", "only whitespace"),
    "jsonl null": ("validation.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n'
                                       '{"text": null, "label": 1}\n', "null"),
    "jsonl empty": ("validation.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 0}\n'
                                        '{"text": "", "label": 1}\n', "empty"),
}


@pytest.mark.parametrize("case", LABELLED)
def test_a_labelled_row_without_text_is_refused_naming_file_row_and_column(tiny_bert, tmp_path, case):
    name, content, state = LABELLED[case]
    (tmp_path / name).write_text(content)
    (tmp_path / "train.jsonl").write_text('{"text": "fine", "label": 0}\n')
    dm = classification_dm(tiny_bert, str(tmp_path))
    raw = sources.load_local(str(tmp_path))
    with pytest.raises(UserError) as refused:
        dm.to_text_label(raw["validation"], "validation")
    assert str(refused.value) == f"{tmp_path / name} row 3: missing 'text' ({state}): every row needs a text"


def test_a_prediction_row_without_text_is_refused_and_a_blank_line_of_txt_skipped(tmp_path):
    """A prediction belongs beside its input row, so a row without text cannot be left out; a
    .txt file holds one text per line, and a blank line holds none."""
    source = write_csv(tmp_path / "texts.csv", ["id", "text"], [[1, "007"], [2, ""], [3, "fine"]])
    with pytest.raises(UserError, match=f"^{source} row 2: missing 'text' \\(empty\\)"):
        cells.read_texts(source, ["text"])
    (tmp_path / "texts.txt").write_text("007\n\n   \n 1.50 \n")
    assert cells.read_texts(str(tmp_path / "texts.txt"), ["text"]) == ["007", " 1.50 "]
