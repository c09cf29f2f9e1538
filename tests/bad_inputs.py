"""The catalogue of bad inputs, one or more per class: each case writes what it needs under
`tmp` and returns (CLI arguments, text the one-line error must contain). Here: the harness (`Case`),
the index of classes, and the cases of what a user sets: model folders and checkpoints, option
values; the data a user gives (files, labels and columns, data too small) is in `tests/bad_data.py`."""

import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer

from lightning_modules.classification import SequenceClassifier
from tests.bad_data import files, labels_and_columns, too_small
from tests.helpers import IMDB, QUICKSTART


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


CLASSES = {"files": files, "labels and columns": labels_and_columns, "models and checkpoints": models,
           "options": options, "data too small": too_small}


def all_cases() -> list[tuple[str, str]]:
    """(class, case) pairs, for parametrize."""
    probe = Case(Path("/nonexistent"), "", None)
    return [(kind, name) for kind, build in CLASSES.items() for name in build(probe)]


def build(kind: str, name: str, case: Case) -> tuple[list[str], str]:
    return CLASSES[kind](case)[name]()
