"""The catalogue of bad inputs, one or more per class: each case writes what it needs under
`tmp` and returns (CLI arguments, text the one-line error must contain). Classes: files a user
names (split files of each format, predict files, config files, model folders, checkpoints),
labels and columns, option values, data too small for what is asked."""

import builtins
import gzip
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from lightning_modules.classification import SequenceClassifier
from tests.helpers import IMDB, MLM, QUICKSTART, jsonl, review_rows, write_rows


@dataclass
class Case:
    tmp: Path
    tiny_bert: str
    monkeypatch: object

    def fit(self, config: str = QUICKSTART) -> list[str]:
        return ["fit", "--config", config, "--model.backbone", self.tiny_bert,
                *(["--data.max_length", "128"] if config == IMDB else [])]

    def data(self, name: str, content: bytes | str) -> tuple[list[str], str]:
        """A data folder holding one file; returns (its --data.data_dir arguments, the file)."""
        folder = self.tmp / "data"
        folder.mkdir(exist_ok=True)
        path = folder / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        return [*self.fit(IMDB), "--data.data_dir", str(folder)], str(path)

    def model_folder(self, name: str, change) -> tuple[list[str], Path]:
        folder = self.tmp / name
        shutil.copytree(self.tiny_bert, folder)
        change(folder)
        return ["fit", "--config", QUICKSTART, "--model.backbone", str(folder)], folder

    def predict(self) -> list[str]:
        return ["predict", "--config", QUICKSTART, "--model.backbone", self.tiny_bert, "--data.predict_file"]

    def validate(self) -> list[str]:
        return ["validate", "--config", QUICKSTART, "--model.backbone", self.tiny_bert, "--ckpt_path"]


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


def models(c: Case) -> dict:
    def corrupt(name, reason):
        args, folder = c.model_folder("model", lambda f: (f / name).write_bytes(b"\x00garbage"))
        return args, f"from '{folder}': {reason}"

    def without(names, what):
        args, folder = c.model_folder(f"no-{what}",
                                      lambda f: [(f / n).unlink(missing_ok=True) for n in names])
        return args, f"cannot load {what} from '{folder}'"

    def without_a_body_weight():
        def drop(folder):
            weights = load_file(folder / "model.safetensors")
            del weights["bert.encoder.layer.0.attention.self.query.weight"]
            save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
        args, folder = c.model_folder("no-query", drop)
        return args, (f"backbone '{folder}' has no weights for 'bert.encoder.layer.0.attention.self.query"
                      ".weight' of the model's body")

    def four_label_classifier():
        folder = c.tmp / "four-labels"
        four = SequenceClassifier(c.tiny_bert, ["World", "Sports", "Business", "Sci/Tech"])
        four.model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(c.tiny_bert).save_pretrained(folder)
        return ["fit", "--config", QUICKSTART, "--model.backbone", str(folder)], \
            f"backbone '{folder}' is a classifier for 4 labels"

    def weights_as_checkpoint():
        torch.save({"weight": torch.zeros(2)}, c.tmp / "weights.ckpt")
        return [*c.validate(), str(c.tmp / "weights.ckpt")], "is not a Lightning checkpoint"

    def not_a_checkpoint():
        (c.tmp / "bad.ckpt").write_bytes(b"not a checkpoint at all")
        return [*c.validate(), str(c.tmp / "bad.ckpt")], "is not a readable checkpoint"

    return {
        "unknown backbone offline": lambda: (
            ["fit", "--config", IMDB, "--model.backbone", "nobody/no-such-model"],
            "cannot load tokenizer 'nobody/no-such-model'"),
        "corrupt config.json": lambda: corrupt("config.json", "It looks like the config file at"),
        "corrupt weights": lambda: corrupt("model.safetensors", "Error while deserializing header"),
        "model folder without weights": lambda: without(["model.safetensors"], "model"),
        "model folder missing a weight of the body": without_a_body_weight,
        "model folder without tokenizer": lambda: without(
            ["tokenizer.json", "tokenizer_config.json", "vocab.txt"], "tokenizer"),
        "classifier head of another size": four_label_classifier,
        "LoRA target matches nothing": lambda: (
            [*c.fit(), "--model.lora.target_modules", "[qkv]"],
            "LoRA target 'qkv' matches no Linear module of this bert backbone; Linear modules are ['"),
        "too many frozen layers": lambda: ([*c.fit(), "--model.freeze_layers", "9"],
                                           "freeze_layers=9 but this backbone has 2 encoder layers"),
        "max_length above the limit": lambda: ([*c.fit(), "--data.max_length", "4096"],
                                               "max_length=4096 exceeds the 128-token limit"),
        "missing checkpoint": lambda: ([*c.validate(), str(c.tmp / "none.ckpt")],
                                       f"--ckpt_path '{c.tmp / 'none.ckpt'}' does not exist"),
        "file that is not a checkpoint": not_a_checkpoint,
        "weights file as a checkpoint": weights_as_checkpoint,
    }


# (option, value given, value as the error shows it)
OPTIONS = {
    "batch size 0": ("--data.batch_size", "0", "0"),
    "val_fraction above 1": ("--data.val_fraction", "1.5", "1.5"),
    "max_length 1": ("--data.max_length", "1", "1"),
    "duplicate class names": ("--data.label_names", "[pos, pos]", "['pos', 'pos']"),
    "negative learning rate": ("--model.learning_rate", "-1", "-1.0"),
    "warmup ratio 1": ("--model.warmup_ratio", "1", "1.0"),
    "LoRA rank 0": ("--model.lora.r", "0", "0"),
    "LoRA dropout 1.5": ("--model.lora.dropout", "1.5", "1.5"),
    "LoRA bias unknown": ("--model.lora.bias", "sideways", "'sideways'"),
    "accumulation 0": ("--trainer.accumulate_grad_batches", "0", "0"),
    "negative clipping": ("--trainer.gradient_clip_val", "-0.5", "-0.5"),
    "validation interval 0": ("--trainer.val_check_interval", "0", "0"),
}


def options(c: Case) -> dict:
    return {name: (lambda o=option, v=value, s=shown: ([*c.fit(), o, v], f"{o}={s} is out of range"))
            for name, (option, value, shown) in OPTIONS.items()}


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


CLASSES = {"files": files, "labels and columns": labels_and_columns, "models and checkpoints": models,
           "options": options, "data too small": too_small}


def all_cases() -> list[tuple[str, str]]:
    """(class, case) pairs, for parametrize."""
    probe = Case(Path("/nonexistent"), "", None)
    return [(kind, name) for kind, build in CLASSES.items() for name in build(probe)]


def build(kind: str, name: str, case: Case) -> tuple[list[str], str]:
    return CLASSES[kind](case)[name]()
