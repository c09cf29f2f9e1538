"""Every mistake a user can make stops the real CLI early, in one line that names the bad value."""

import json
import shutil

import pytest

from tests.conftest import ROOT
from tests.test_cli import run_cli

QUICKSTART = str(ROOT / "configs" / "quickstart.yaml")
IMDB = str(ROOT / "configs" / "imdb" / "distilbert.yaml")


def write_jsonl(folder, rows):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(folder)


def good_rows(n=20):
    return [{"text": f"a fine review {i}", "label": i % 2} for i in range(n)]


def case_args(case: str, tmp_path, tiny_bert: str) -> tuple[list[str], str]:
    """(arguments after `fit`, the start of the expected last stderr line) for each case."""
    data = lambda rows: ["--data.data_dir", write_jsonl(tmp_path / "data", rows)]  # noqa: E731
    imdb = ["--config", IMDB, "--model.backbone", tiny_bert, "--data.max_length", "128"]
    if case == "missing path":
        return imdb + ["--data.data_dir", "/no/such/dir"], "error: data_dir '/no/such/dir' does not exist"
    if case == "missing column":
        return imdb + data([{"review": "x", "label": 0}] * 4), \
            "error: train data has no column 'text'; columns are ['review', 'label']"
    if case == "label outside classes":
        return imdb + data(good_rows() + [{"text": "meh", "label": 5}]), \
            f"error: {tmp_path / 'data' / 'train.jsonl'} row 21: label 5 is outside the known classes"
    if case == "label of the wrong type":
        return imdb + data(good_rows() + [{"text": "meh", "label": "great"}]), \
            f"error: {tmp_path / 'data' / 'train.jsonl'} row 21: label 'great' is outside the known classes"
    if case == "not utf-8":
        folder = tmp_path / "acl"
        for label in ("pos", "neg"):
            (folder / "train" / label).mkdir(parents=True)
            (folder / "train" / label / "0_9.txt").write_bytes(b"caf\xe9")
        return imdb + ["--data.data_dir", str(folder)], f"error: {folder}/train/neg/0_9.txt is not UTF-8"
    if case == "only empty texts":
        return imdb + data([{"text": "   ", "label": i % 2} for i in range(6)]), \
            "error: train data has no non-empty texts"
    if case == "unknown backbone offline":
        return ["--config", IMDB, "--model.backbone", "nobody/no-such-model"], \
            "error: cannot load tokenizer 'nobody/no-such-model'"
    if case == "model folder without weights":
        folder = tmp_path / "no-weights"
        shutil.copytree(tiny_bert, folder)
        (folder / "model.safetensors").unlink()
        return ["--config", QUICKSTART, "--model.backbone", str(folder)], \
            f"error: cannot load model from '{folder}'"
    if case == "model folder without tokenizer":
        folder = tmp_path / "no-tokenizer"
        shutil.copytree(tiny_bert, folder)
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            (folder / name).unlink(missing_ok=True)
        return ["--config", QUICKSTART, "--model.backbone", str(folder)], \
            f"error: cannot load tokenizer from '{folder}'"
    if case == "classifier head of another size":
        from transformers import AutoTokenizer

        from lightning_modules.classification import SequenceClassifier
        folder = tmp_path / "four-labels"
        classifier = SequenceClassifier(tiny_bert, ["World", "Sports", "Business", "Sci/Tech"])
        classifier.model.save_pretrained(folder)
        AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
        return ["--config", QUICKSTART, "--model.backbone", str(folder)], \
            f"error: backbone '{folder}' is a classifier for 4 labels"
    if case == "lora target matches nothing":
        return ["--config", QUICKSTART, "--model.backbone", tiny_bert, "--model.lora.target_modules",
                "[qkv]"], "error: LoRA target 'qkv' matches no Linear module"
    if case == "too many frozen layers":
        return ["--config", QUICKSTART, "--model.backbone", tiny_bert, "--model.freeze_layers", "9"], \
            "error: freeze_layers=9 but this backbone has 2 encoder layers"
    if case == "max_length above the limit":
        return ["--config", QUICKSTART, "--model.backbone", tiny_bert, "--data.max_length", "4096"], \
            "error: max_length=4096 exceeds the 128-token limit"
    raise AssertionError(case)


CASES = ["missing path", "missing column", "label outside classes", "label of the wrong type",
         "not utf-8", "only empty texts", "unknown backbone offline", "model folder without weights",
         "model folder without tokenizer", "lora target matches nothing", "too many frozen layers",
         "max_length above the limit", "classifier head of another size"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_fails_fast_in_one_line(case, tmp_path, tiny_bert):
    args, expected = case_args(case, tmp_path, tiny_bert)
    result = run_cli("fit", *args, "--data.cache_dir", str(tmp_path / "cache"),
                     "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(expected), result.stderr[-3000:]
    assert not (tmp_path / "logs").exists() or not list((tmp_path / "logs").rglob("*.ckpt"))


def test_misspelled_config_key_is_named_by_the_cli(tiny_bert, tmp_path):
    (tmp_path / "typo.yaml").write_text("model:\n  init_args:\n    learnin_rate: 0.001\n")
    result = run_cli("fit", "--config", QUICKSTART, "--config", str(tmp_path / "typo.yaml"),
                     "--model.backbone", tiny_bert, timeout=120)
    assert result.returncode == 2
    assert "learnin_rate" in result.stderr and "Traceback" not in result.stderr


def test_checkpoint_of_another_label_set_is_named(tiny_bert, tmp_path):
    common = ["--config", QUICKSTART, "--model.backbone", tiny_bert, "--data.num_train", "64",
              "--data.num_test", "16", "--data.cache_dir", str(tmp_path / "cache"),
              "--test_after_fit", "false", "--trainer.max_epochs", "1",
              "--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    rows = [{"text": f"review {i}", "label": ["bad", "okay", "good"][i % 3]} for i in range(60)]
    three = run_cli("fit", "--config", IMDB, "--model.backbone", tiny_bert, "--data.max_length", "128",
                    "--data.label_names", "[bad, okay, good]",
                    "--data.data_dir", write_jsonl(tmp_path / "three-classes", rows),
                    "--data.cache_dir", str(tmp_path / "cache"), "--test_after_fit", "false",
                    "--trainer.max_epochs", "1",
                    "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
                    "--trainer.logger.init_args.name", "three")
    assert three.returncode == 0, three.stderr[-2000:]
    checkpoint = tmp_path / "logs" / "three" / "version_0" / "checkpoints" / "last.ckpt"
    result = run_cli("validate", *[a for a in common if a not in ("--test_after_fit", "false")],
                     "--ckpt_path", str(checkpoint), timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: checkpoint does not fit this model (weight 'model.classifier.bias' "
                           "has shape (3,), this model (2,))"), result.stderr[-2000:]
