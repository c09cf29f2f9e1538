"""What a run leaves for people to read: TensorBoard scalars, images, hparams, report, predictions."""

import csv
import json
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from compare import compare
from tests.helpers import QUICKSTART
from train import main


@pytest.fixture
def runs(trained_runs, shared_cache):
    """(the tokenization cache the runs used, {kind: the run's CLI})."""
    return shared_cache, {"full": trained_runs["full"], "lora": trained_runs["lora"]}


def events_of(cli) -> EventAccumulator:
    events = EventAccumulator(cli.trainer.log_dir, size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_a_run_leaves_events_config_checkpoints_and_export(runs):
    for cli in runs[1].values():
        events = events_of(cli)
        tags = set(events.Tags()["scalars"])
        assert {"train/loss", "train/grad_norm", "val/loss", "val/acc", "val/f1", "test/acc",
                "test/f1", "throughput/samples_per_sec", "throughput/real_tokens_per_sec",
                "throughput/padding_fraction", "time/epoch_s", "params/total",
                "params/trainable"} <= tags
        assert any(t.startswith("lr") for t in tags)
        padding = [e.value for e in events.Scalars("throughput/padding_fraction")]
        assert all(0 <= p < 1 for p in padding) and any(p > 0 for p in padding)
        assert len(events.Images("val/confusion_matrix")) == 4  # 2 epochs x 2 validations
        run = Path(cli.trainer.log_dir)
        assert (run / "config.yaml").is_file()
        checkpoints = {p.name for p in (run / "checkpoints").iterdir()}
        assert "last.ckpt" in checkpoints and len(checkpoints) == 2  # last and best
        exported = {p.name for p in (run / "hf_model").iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= exported


def test_hparams_hold_the_knobs_and_the_real_best_val_acc(runs):
    for kind, cli in runs[1].items():
        events = events_of(cli)
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["lora_r"].number_value == (8 if kind == "lora" else 0)
        assert hparams["backbone"].string_value == cli.model.hparams.backbone
        best = max(e.value for e in events.Scalars("val/acc"))
        assert events.Scalars("hp/best_val_acc")[-1].value == pytest.approx(best)
        assert events.Scalars("hp/test_acc")[-1].value == pytest.approx(events.Scalars("test/acc")[-1].value)
        trainable = events.Scalars("hp/trainable_params")[-1].value
        assert (trainable < 0.2 * events.Scalars("params/total")[-1].value) == (kind == "lora")


def test_compare_writes_a_table_of_the_runs_and_a_png(runs, tmp_path):
    _, clis = runs
    report = compare(Path(clis["full"].trainer.log_dir).parents[1], tmp_path)
    assert [r.name for r in report] == ["full/version_0", "lora/version_0"]
    table = (tmp_path / "report.md").read_text().splitlines()
    assert len(table) == 4
    assert "| full |" in table[2] and "| LoRA r=8 |" in table[3]
    for row, cli in zip(report, clis.values()):
        events = events_of(cli)
        assert row.best_val == pytest.approx(max(e.value for e in events.Scalars("val/acc")))
        assert row.trainable_params == int(events.Scalars("params/trainable")[-1].value)
    assert report[0].checkpoint_mb > 5 * report[1].checkpoint_mb
    with Image.open(tmp_path / "report.png") as image:
        assert image.size[0] > 500 and image.size[1] > 300


@pytest.mark.parametrize("suffix", [".txt", ".jsonl"])
def test_predict_writes_labels_and_probabilities(runs, tmp_path, suffix):
    cache, clis = runs
    run_dir = Path(clis["full"].trainer.log_dir)
    texts = ["the movie was brilliant.", "the plot was not clever.", "a friend recommended it."]
    source = tmp_path / f"texts{suffix}"
    lines = texts if suffix == ".txt" else [json.dumps({"text": t}) for t in texts]
    source.write_text("\n".join(lines) + "\n")
    cli = main([
        "predict", "--config", QUICKSTART,
        "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
        "--data.predict_file", str(source), "--data.cache_dir", str(cache),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
    ])
    with open(Path(cli.trainer.log_dir) / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["text"] for r in rows] == texts
    assert all(r["label"] in {"neg", "pos"} for r in rows)
    for r in rows:
        probs = {"neg": float(r["prob_neg"]), "pos": float(r["prob_pos"])}
        assert sum(probs.values()) == pytest.approx(1, abs=1e-5)
        assert r["label"] == max(probs, key=probs.get)


def test_predict_from_an_exported_model_directory(runs, tmp_path):
    cache, clis = runs
    export = Path(clis["full"].trainer.log_dir) / "hf_model"
    source = tmp_path / "texts.txt"
    source.write_text("the ending was superb.\nthe cast was dull.\n")
    cli = main([
        "predict", "--config", QUICKSTART,
        "--model.backbone", str(export), "--data.predict_file", str(source),
        "--data.cache_dir", str(cache),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
    ])
    with open(Path(cli.trainer.log_dir) / "predictions.csv") as f:
        assert len(list(csv.DictReader(f))) == 2


def test_hparams_yaml_holds_the_run_hyperparameters(runs):
    import yaml

    for cli in runs[1].values():
        saved = yaml.safe_load((Path(cli.trainer.log_dir) / "hparams.yaml").read_text())
        assert saved["learning_rate"] == cli.model.hparams.learning_rate
        assert saved["model"]["backbone"] == cli.model.hparams.backbone
        assert saved["data"]["batch_size"] == cli.datamodule.hparams.batch_size


def test_predictions_on_the_test_split_keep_the_original_text(runs, tmp_path):
    cache, clis = runs
    run_dir = Path(clis["full"].trainer.log_dir)
    cli = main([
        "predict", "--config", QUICKSTART,
        "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt"),
        "--data.num_train", "192", "--data.num_test", "48", "--data.cache_dir", str(cache),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
    ])
    with open(Path(cli.trainer.log_dir) / "predictions.csv") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    assert texts == list(cli.datamodule.splits["test"]["text"])
    assert any(t != t.lower() for t in texts)  # not decoded back from lower-cased token ids
