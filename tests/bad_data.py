"""Bad inputs in the data a user gives (for the catalogue, `tests/bad_inputs.py`): files a user
names (split files of each format, the aclImdb folders, predict files, config files), labels and
columns, data too small for what is asked."""

from __future__ import annotations

import builtins
import gzip
import os
from typing import TYPE_CHECKING

from tests.helpers import IMDB, MLM, jsonl, review_rows, write_rows

if TYPE_CHECKING:
    from tests.bad_inputs import Case


def unreadable(case: Case, path: str) -> None:
    """No read permission; as root (CI containers) permissions do not bind, so `open` refuses."""
    os.chmod(path, 0)
    if os.geteuid() == 0:
        real_open = builtins.open

        def refuse(file, *args, **kwargs):
            if str(file) == path:
                raise PermissionError(13, "Permission denied", path)
            return real_open(file, *args, **kwargs)

        case.monkeypatch.setattr(builtins, "open", refuse)


def files(c: Case) -> dict:
    def unreadable_file():
        args, path = c.data("train.jsonl", jsonl(review_rows()))
        unreadable(c, path)
        return args, f"cannot read {path}: PermissionError"

    def not_utf8_aclimdb():
        folder = c.tmp / "acl"
        for label in ("pos", "neg"):
            (folder / "train" / label).mkdir(parents=True)
            (folder / "train" / label / "0_9.txt").write_bytes(b"caf\xe9")
        return [*c.fit(IMDB), "--data.data_dir", str(folder)], f"{folder}/train/neg/0_9.txt is not UTF-8"

    def with_data(name, content, message):
        args, path = c.data(name, content)
        return args, message.format(path=path)

    def config_that_is_a_list():
        (c.tmp / "list.yaml").write_text("- trainer\n- model\n")
        return [*c.fit(), "--config", str(c.tmp / "list.yaml")], \
            f"config file {c.tmp / 'list.yaml'} holds a list, not options"

    return {
        "missing data folder": lambda: ([*c.fit(IMDB), "--data.data_dir", "/no/such/dir"],
                                        "data_dir '/no/such/dir' does not exist"),
        "empty split file": lambda: with_data("train.jsonl", "", "{path} is empty"),
        "unreadable split file": unreadable_file,
        "truncated gzip": lambda: with_data(
            "train.jsonl.gz", gzip.compress(jsonl(review_rows()).encode())[:60],
            "cannot read {path}: truncated or corrupt compressed data"),
        "named .gz, not gzip": lambda: with_data("train.csv.gz", "text,label\nfine,1\n",
                                                 "cannot read {path}: named .gz but not gzip"),
        "JSONL not UTF-8": lambda: with_data(
            "train.jsonl", jsonl(review_rows()).encode() + b'{"text": "caf\xe9", "label": 1}\n',
            "cannot read {path}: not UTF-8 text"),
        "aclImdb file not UTF-8": not_utf8_aclimdb,
        "malformed JSONL row": lambda: with_data("train.jsonl", jsonl(review_rows()) + '{"text": "unclosed\n',
                                                 "cannot read {path}: ArrowInvalid: JSON parse error"),
        "corrupt parquet": lambda: with_data("train.parquet", b"PAR1 this is not parquet",
                                             "cannot read {path}: ArrowInvalid: Parquet magic bytes"),
        "CSV with a missing label": lambda: with_data(
            "train.csv", "text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(10)) + "review x,\n",
            "{path} row 11: missing 'label'"),
        "JSONL with a null label": lambda: with_data(
            "train.jsonl", jsonl(review_rows(10) + [{"text": "meh", "label": None}]),
            "{path} row 11: missing 'label'"),
        "AG News CSV with a short row": lambda: with_data(
            "train.csv", '"3","Title","Text"\n"1","only a title"\n', "{path} row 2: expected an AG News row"),
        "missing predict file": lambda: ([*c.predict(), str(c.tmp / "none.txt")],
                                         f"predict_file '{c.tmp / 'none.txt'}' does not exist"),
        "predict file with a missing text": lambda: (
            [*c.predict(), write_rows(c.tmp, [{"text": "fine"}, {"text": None}], "t.jsonl") + "/t.jsonl"],
            f"{c.tmp / 't.jsonl'} row 2: missing 'text'"),
        "predict file with an object as text": lambda: (
            [*c.predict(), write_rows(c.tmp, [{"text": "fine"}, {"text": {"en": "ok"}}], "t.jsonl")
             + "/t.jsonl"],
            f"{c.tmp / 't.jsonl'} row 2: column 'text' holds an object ({{\"en\": \"ok\"}}), expected text"),
        "config file that is a list": config_that_is_a_list,
    }


def labels_and_columns(c: Case) -> dict:
    def data(rows):
        return [*c.fit(IMDB), "--data.data_dir", write_rows(c.tmp / "data", rows)]

    train = c.tmp / "data" / "train.jsonl"
    return {
        "missing column": lambda: (data([{"review": "x", "label": 0}] * 4),
                                   "train data has no column 'text'; columns are ['review', 'label']"),
        "label outside classes": lambda: (data(review_rows(20) + [{"text": "meh", "label": 5}]),
                                          f"{train} row 21: label 5 is outside the known classes"),
        "label of the wrong type": lambda: (data(review_rows(20) + [{"text": "meh", "label": "great"}]),
                                            f"{train} row 21: label 'great' is outside the known classes"),
        "only empty texts": lambda: (data([{"text": "   ", "label": i % 2} for i in range(6)]),
                                     f"{train} row 1: missing 'text' (only whitespace)"),
        "text that is a list": lambda: (data(review_rows(20) + [{"text": ["meh", "ok"], "label": 0}]),
                                        f"{train} row 21: column 'text' holds a list ([\"meh\", \"ok\"]), "
                                        "expected text"),
        "MLM text that is a boolean": lambda: (
            ["fit", "--config", MLM, "--model.backbone", c.tiny_bert, "--data.train_splits", "[train]",
             "--data.data_dir", write_rows(c.tmp / "data", review_rows(4) + [{"text": True, "label": 0}])],
            f"{train} row 5: column 'text' holds a boolean (true), expected text"),
    }


def too_small(c: Case) -> dict:
    def mlm_corpus():
        folder = write_rows(c.tmp / "data", review_rows(2))
        write_rows(c.tmp / "data", review_rows(2), "test.jsonl")
        return ["fit", "--config", MLM, "--model.backbone", c.tiny_bert, "--data.train_splits", "[train]",
                "--data.data_dir", folder], "the training texts hold"

    def class_without_texts():
        folder = write_rows(c.tmp / "data", [r for r in review_rows() if r["label"] == 0])
        write_rows(c.tmp / "data", review_rows(4), "validation.jsonl")
        return [*c.fit(IMDB), "--data.data_dir", folder], "the training data lacks a class (neg: 20, pos: 0)"

    return {
        "too few texts for a stratified split": lambda: (
            [*c.fit(IMDB), "--data.data_dir", write_rows(c.tmp / "data", review_rows(3))],
            "the training data is too small to hold out a stratified validation split"),
        "a class without training texts": class_without_texts,
        "MLM corpus shorter than a block": mlm_corpus,
    }
