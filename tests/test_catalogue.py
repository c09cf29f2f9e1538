"""A catalogue of bad inputs, one or more per class: each run of the real CLI (in-process) stops
with one `error:` line that names the bad file, row or option. Classes: files a user names
(split files of each format, predict files, model folders, checkpoints), option values, data too
small for what is asked. Lightning's own switches must work with our defaults."""

import builtins
import gzip
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import EarlyStopping

from core.errors import exit_on_user_error
from tests.conftest import ROOT
from train import main

QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
IMDB = str(ROOT / "configs" / "imdb" / "distilbert.yaml")
MLM = str(ROOT / "configs" / "mlm" / "tinybert-imdb.yaml")


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def rows(n=40):
    return [{"text": f"a {'good' if i % 2 else 'bad'} film {i}", "label": i % 2} for i in range(n)]


def data_dir(tmp: Path, name: str, content: bytes | str) -> tuple[list[str], str]:
    folder = tmp / "data"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return ["--data.data_dir", str(folder)], str(path)


def unreadable(path: str, monkeypatch) -> None:
    """No read permission; as root (CI containers) permissions do not bind, so `open` refuses."""
    os.chmod(path, 0)
    if os.geteuid() == 0:
        real_open = builtins.open

        def refuse(file, *args, **kwargs):
            if str(file) == path:
                raise PermissionError(13, "Permission denied", path)
            return real_open(file, *args, **kwargs)

        monkeypatch.setattr(builtins, "open", refuse)


def corrupt_model(tmp: Path, tiny_bert: str, name: str) -> tuple[list[str], str]:
    folder = tmp / "model"
    shutil.copytree(tiny_bert, folder)
    (folder / name).write_bytes(b"\x00garbage")
    return ["--model.backbone", str(folder)], f"cannot load model from '{folder}'"


# case: (option, value given, value as the error shows it)
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


def case(name: str, tmp: Path, tiny_bert: str, monkeypatch) -> tuple[list[str], str]:
    """(arguments to the CLI, text the error line must contain)."""
    fit = ["fit", "--config", QUICKSTART, "--model.backbone", tiny_bert]
    files = ["fit", "--config", IMDB, "--model.backbone", tiny_bert, "--data.max_length", "128"]
    if name == "empty split file":
        args, path = data_dir(tmp, "train.jsonl", "")
        return files + args, f"{path} is empty"
    if name == "unreadable split file":
        args, path = data_dir(tmp, "train.jsonl", jsonl(rows()))
        unreadable(path, monkeypatch)
        return files + args, f"cannot read {path}: PermissionError"
    if name == "truncated gzip":
        args, path = data_dir(tmp, "train.jsonl.gz", gzip.compress(jsonl(rows()).encode())[:60])
        return files + args, f"cannot read {path}: truncated or corrupt compressed data"
    if name == "named .gz, not gzip":
        args, path = data_dir(tmp, "train.csv.gz", "text,label\nfine,1\n")
        return files + args, f"cannot read {path}: named .gz but not gzip"
    if name == "JSONL not UTF-8":
        args, path = data_dir(
            tmp, "train.jsonl", jsonl(rows()).encode() + b'{"text": "caf\xe9", "label": 1}\n'
        )
        return files + args, f"cannot read {path}"
    if name == "malformed JSONL row":
        args, path = data_dir(tmp, "train.jsonl", jsonl(rows()) + '{"text": "unclosed\n')
        return files + args, f"cannot read {path}"
    if name == "corrupt parquet":
        args, path = data_dir(tmp, "train.parquet", b"PAR1 this is not parquet")
        return files + args, f"cannot read {path}"
    if name == "CSV with a missing label":
        csv = "text,label\n" + "".join(f"review {i},{i % 2}\n" for i in range(10)) + "review x,\n"
        args, path = data_dir(tmp, "train.csv", csv)
        return files + args, f"{path} row 11: missing 'label'"
    if name == "JSONL with a null label":
        args, path = data_dir(tmp, "train.jsonl", jsonl(rows(10) + [{"text": "meh", "label": None}]))
        return files + args, f"{path} row 11: missing 'label'"
    if name == "AG News CSV with a short row":
        args, path = data_dir(tmp, "train.csv", '"3","Title","Text"\n"1","only a title"\n')
        return files + args, f"{path} row 2: expected an AG News row"
    predict = ["predict", "--config", QUICKSTART, "--model.backbone", tiny_bert, "--data.predict_file"]
    validate = ["validate", "--config", QUICKSTART, "--model.backbone", tiny_bert, "--ckpt_path"]
    if name == "missing predict file":
        return predict + [str(tmp / "none.txt")], f"predict_file '{tmp / 'none.txt'}' does not exist"
    if name == "predict file with a missing text":
        _, path = data_dir(tmp, "texts.jsonl", jsonl([{"text": "fine"}, {"text": None}]))
        return predict + [path], f"{path} row 2: missing 'text'"
    if name == "corrupt config.json":
        args, message = corrupt_model(tmp, tiny_bert, "config.json")
        return ["fit", "--config", QUICKSTART, *args], message.split(" from ")[1]
    if name == "corrupt weights":
        args, message = corrupt_model(tmp, tiny_bert, "model.safetensors")
        return ["fit", "--config", QUICKSTART, *args], message
    if name == "missing checkpoint":
        return validate + [str(tmp / "none.ckpt")], f"--ckpt_path '{tmp / 'none.ckpt'}' does not exist"
    if name == "file that is not a checkpoint":
        (tmp / "bad.ckpt").write_bytes(b"not a checkpoint at all")
        return validate + [str(tmp / "bad.ckpt")], "is not a readable checkpoint"
    if name == "weights file as a checkpoint":
        torch.save({"weight": torch.zeros(2)}, tmp / "weights.ckpt")
        return validate + [str(tmp / "weights.ckpt")], "is not a Lightning checkpoint"
    if name in OPTIONS:
        option, value, shown = OPTIONS[name]
        return fit + [option, value], f"{option}={shown} is out of range"
    if name == "too few texts for a stratified split":
        args, _ = data_dir(tmp, "train.jsonl", jsonl(rows(3)))
        return files + args, "the training data is too small to hold out a stratified validation split"
    if name == "a class without training texts":
        args, _ = data_dir(tmp, "train.jsonl", jsonl([r for r in rows() if r["label"] == 0]))
        data_dir(tmp, "validation.jsonl", jsonl(rows(4)))
        return files + args, "the training data lacks a class (neg: 20, pos: 0)"
    if name == "MLM corpus shorter than a block":
        args, _ = data_dir(tmp, "train.jsonl", jsonl(rows(2)))
        data_dir(tmp, "test.jsonl", jsonl(rows(2)))
        return [
            "fit",
            "--config",
            MLM,
            "--model.backbone",
            tiny_bert,
            "--data.train_splits",
            "[train]",
            *args,
        ], "the training texts hold"
    raise AssertionError(name)


CASES = [
    "empty split file",
    "unreadable split file",
    "truncated gzip",
    "named .gz, not gzip",
    "JSONL not UTF-8",
    "malformed JSONL row",
    "corrupt parquet",
    "CSV with a missing label",
    "JSONL with a null label",
    "AG News CSV with a short row",
    "missing predict file",
    "predict file with a missing text",
    "corrupt config.json",
    "corrupt weights",
    "missing checkpoint",
    "file that is not a checkpoint",
    "weights file as a checkpoint",
    "batch size 0",
    "val_fraction above 1",
    "max_length 1",
    "duplicate class names",
    "negative learning rate",
    "warmup ratio 1",
    "LoRA rank 0",
    "LoRA dropout 1.5",
    "LoRA bias unknown",
    "accumulation 0",
    "negative clipping",
    "validation interval 0",
    "too few texts for a stratified split",
    "a class without training texts",
    "MLM corpus shorter than a block",
]


def run_main(args: list[str], tmp: Path):
    common = [
        "--data.cache_dir",
        str(tmp / "cache"),
        "--trainer.logger.init_args.save_dir",
        str(tmp / "logs"),
    ]
    return exit_on_user_error(lambda: main([*args, *common]))


@pytest.mark.parametrize("name", CASES)
def test_bad_input_is_one_line_naming_it(name, tmp_path, tiny_bert, capsys, monkeypatch):
    args, expected = case(name, tmp_path, tiny_bert, monkeypatch)
    with pytest.raises(SystemExit) as stop:
        run_main(args, tmp_path)
    message = str(stop.value.code)
    assert message.startswith("error: ") and "\n" not in message, message
    assert expected in message, message
    assert "Traceback" not in capsys.readouterr().err


SWITCHES = {
    "no progress bar": ["--trainer.enable_progress_bar", "false"],
    "no checkpointing": ["--trainer.enable_checkpointing", "false"],
    "no logger": ["--trainer.logger", "false"],
    "no model summary": ["--trainer.enable_model_summary", "false"],
    "fast_dev_run": ["--trainer.fast_dev_run", "true"],
    "max_steps": ["--trainer.max_steps", "3"],
    "limit batches": ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"],
    "validation every 2 batches": ["--trainer.val_check_interval", "2", "--trainer.limit_train_batches", "4"],
}


@pytest.mark.parametrize("switch", SWITCHES)
def test_lightning_switches_work_with_our_defaults(switch, tmp_path, tiny_bert):
    cli = main(
        [
            "fit",
            "--config",
            QUICKSTART,
            "--model.backbone",
            tiny_bert,
            "--data.num_train",
            "64",
            "--data.num_test",
            "16",
            "--trainer.max_epochs",
            "1",
            "--data.cache_dir",
            str(tmp_path / "cache"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
            *SWITCHES[switch],
        ]
    )
    assert cli.trainer.state.finished


def test_early_stopping_overlay_stops_a_run(tmp_path, tiny_bert):
    overlay = str(ROOT / "configs" / "overlays" / "early_stopping.yaml")
    cli = main(
        [
            "fit",
            "--config",
            QUICKSTART,
            "--config",
            overlay,
            "--model.backbone",
            tiny_bert,
            "--data.num_train",
            "64",
            "--data.num_test",
            "16",
            "--model.learning_rate",
            "1e-9",
            "--test_after_fit",
            "false",
            "--trainer.max_epochs",
            "10",
            "--trainer.val_check_interval",
            "1.0",
            "--data.cache_dir",
            str(tmp_path / "cache"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "logs"),
        ]
    )
    stoppers = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stoppers) == 1 and stoppers[0].monitor == "val/acc"
    assert stoppers[0].stopped_epoch > 0 and cli.trainer.current_epoch < 10  # no learning, patience 3


def test_a_broken_yaml_file_gets_the_cli_own_message(tmp_path, capsys):
    (tmp_path / "broken.yaml").write_text("model: [unclosed\n")
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", QUICKSTART, "--config", str(tmp_path / "broken.yaml")])
    assert stop.value.code == 2
    assert "did not find expected" in capsys.readouterr().err  # the YAML parser's own words
