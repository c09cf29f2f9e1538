"""What a run leaves for people to read: TensorBoard scalars, images, hparams, report, predictions."""

import ast
import csv
import json
from pathlib import Path

import pytest
import torch
import yaml
from lightning import Trainer
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from compare import compare
from tests.helpers import QUICKSTART
from train import main


@pytest.fixture
def runs(trained_runs, shared_cache):
    """(the tokenization cache the runs used, {kind: the run's CLI})."""
    return shared_cache, {"full": trained_runs["full"], "lora": trained_runs["lora"]}


@pytest.fixture(scope="module")
def truth(trained_runs, tmp_path_factory) -> dict:
    """Per shared run, what the run's records must match, from sources other than those records:
    the monitor, mode and best score the checkpoint callback saved in last.ckpt, the test metrics
    of its best checkpoint evaluated afresh, and the trainable parameters counted on the model."""
    facts = {}
    for kind in ("full", "lora"):
        cli = trained_runs[kind]
        saved = torch.load(Path(cli.trainer.log_dir) / "checkpoints" / "last.ckpt", map_location="cpu",
                           weights_only=False)["callbacks"]
        key, state = next((k, v) for k, v in saved.items()
                          if k.startswith("BestCheckpoint") and v["best_model_score"] is not None)
        module = type(cli.model).load_from_checkpoint(state["best_model_path"])
        trainer = Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                          enable_model_summary=False, default_root_dir=tmp_path_factory.mktemp("evaluate"))
        test = trainer.test(module, datamodule=cli.datamodule, verbose=False)[0]
        facts[kind] = {
            "monitor": state["monitor"], "best": float(state["best_model_score"]),
            "mode": ast.literal_eval(key.removeprefix("BestCheckpoint"))["mode"],
            "test": {k.removeprefix("test/"): v for k, v in test.items()},
            "trainable": sum(p.numel() for p in cli.model.parameters() if p.requires_grad)}
    return facts


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
        assert padding and all(p == 0 for p in padding)  # packed, not compiled: no rounding segment
        assert len(events.Images("val/confusion_matrix")) == 4  # 2 epochs x 2 validations
        run = Path(cli.trainer.log_dir)
        assert (run / "config.yaml").is_file()
        checkpoints = {p.name for p in (run / "checkpoints").iterdir()}
        assert "last.ckpt" in checkpoints and len(checkpoints) == 2  # last and best
        exported = {p.name for p in (run / "hf_model").iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= exported


def test_hparams_hold_the_knobs_the_monitor_and_the_best_checkpoints_results(runs, truth, tiny_distilbert):
    for kind, cli in runs[1].items():
        events = events_of(cli)
        content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
        assert hparams["lora_r"].number_value == (8 if kind == "lora" else 0)
        assert hparams["backbone"].string_value == tiny_distilbert
        assert hparams["monitor"].string_value == truth[kind]["monitor"] == "val/acc"
        assert hparams["monitor_mode"].string_value == truth[kind]["mode"] == "max"
        assert events.Scalars("hp/best_val_acc")[-1].value == pytest.approx(truth[kind]["best"])
        recorded = {t.removeprefix("hp/test_"): events.Scalars(t)[-1].value
                    for t in events.Tags()["scalars"] if t.startswith("hp/test_")}
        assert recorded == pytest.approx(truth[kind]["test"]) and set(recorded) == {"acc", "f1", "loss"}
        assert events.Scalars("hp/trainable_params")[-1].value == truth[kind]["trainable"]


def test_compare_writes_a_table_of_the_runs_and_a_png(runs, truth, tmp_path):
    _, clis = runs
    report = compare(Path(clis["full"].trainer.log_dir).parents[1], tmp_path)
    assert [r.name for r in report] == ["full/version_0", "lora/version_0"]
    table = (tmp_path / "report.md").read_text().splitlines()
    assert len(table) == 4
    assert table[0].startswith("| run | backbone | method | trainable params | best val "
                               "| test acc | test f1 | test loss |")
    for row, line, kind in zip(report, table[2:], ("full", "lora")):
        facts = truth[kind]
        assert (row.monitor, row.mode) == (facts["monitor"], facts["mode"])
        assert row.best_val == pytest.approx(facts["best"])
        assert row.test == pytest.approx(facts["test"])
        assert row.trainable_params == facts["trainable"]
        best = f"{facts['monitor']} {facts['best']:.4f} ({facts['mode']})"
        assert f"| {best} | {facts['test']['acc']:.4f} | {facts['test']['f1']:.4f} |" in line
    assert "| full |" in table[2] and "| LoRA r=8 |" in table[3]
    assert report[0].checkpoint_mb > 5 * report[1].checkpoint_mb
    with Image.open(tmp_path / "report.png") as image:
        assert image.size[0] > 500 and image.size[1] > 300


def fake_run(folder: Path, monitor: str, mode: str, scalars: dict[str, list[float]]) -> None:
    """A run folder as training leaves it, with only what compare.py reads: config.yaml,
    hparams.yaml and TensorBoard scalars (one value per 10 steps)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"init_args": {"backbone": "tinybert"}}}))
    (folder / "hparams.yaml").write_text(yaml.safe_dump({"monitor": monitor, "monitor_mode": mode}))
    with SummaryWriter(str(folder)) as writer:
        for tag, values in scalars.items():
            for i, value in enumerate(values):
                writer.add_scalar(tag, value, 10 * (i + 1))


def test_compare_reports_each_run_by_its_recorded_monitor_mode_and_test_metrics(tmp_path):
    """An F1-monitored run with test metrics and an MLM run without a test: each best value is the
    best of its own monitor by its own mode (neither the first, the last nor the other extreme)."""
    fake_run(tmp_path / "f1" / "version_0", "val/f1", "max", {
        "val/acc": [0.9, 0.95, 0.97], "val/f1": [0.4, 0.8, 0.6], "hp/test_acc": [0.7], "hp/test_f1": [0.65],
        "params/trainable": [1000]})
    fake_run(tmp_path / "mlm" / "version_0", "val/perplexity", "min", {
        "val/acc": [0.1, 0.3, 0.2], "val/perplexity": [40.0, 12.5, 15.0], "params/trainable": [1000]})
    f1, mlm = compare(tmp_path)
    assert (f1.monitor, f1.mode, f1.best_val) == ("val/f1", "max", pytest.approx(0.8))
    assert f1.test == pytest.approx({"acc": 0.7, "f1": 0.65})
    assert (mlm.monitor, mlm.mode, mlm.best_val, mlm.test) == ("val/perplexity", "min", 12.5, {})
    table = (tmp_path / "report.md").read_text().splitlines()
    assert "| best val | test acc | test f1 | epoch time (s) |" in table[0]
    assert "| val/f1 0.8000 (max) | 0.7000 | 0.6500 |" in table[2]
    assert "| val/perplexity 12.5000 (min) | - | - |" in table[3]


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


def test_hparams_yaml_holds_the_run_hyperparameters(runs, truth, tiny_distilbert):
    """Against the shared runs' recipe (helpers.shared_run_args: lr 1e-3, batch 16, 64 tokens) and
    the checkpoint callback's own monitor and mode."""
    for kind, cli in runs[1].items():
        saved = yaml.safe_load((Path(cli.trainer.log_dir) / "hparams.yaml").read_text())
        assert saved["learning_rate"] == saved["model"]["learning_rate"] == 1e-3
        assert saved["backbone"] == saved["model"]["backbone"] == tiny_distilbert
        assert saved["effective_batch"] == saved["data"]["batch_size"] == 16
        assert saved["max_tokens"] == 64 and saved["lora_r"] == (8 if kind == "lora" else 0)
        assert (saved["monitor"], saved["monitor_mode"]) == (truth[kind]["monitor"], truth[kind]["mode"])


@pytest.mark.parametrize("source", ["test split", "predict_file"])
def test_predictions_hold_the_input_file_texts_once_per_row_in_order(source, tiny_bert, tmp_path):
    """predictions.csv against the input file, read back by the csv module (not against the column
    the writer reads): texts shuffled, repeated (each comes back once per input row, in input
    order) and such as a CSV reader types as numbers or missing values."""
    base = [f"The film was {'good' if i % 2 else 'bad'} {i}." for i in range(10)]
    base += ["007", "1.50", "0042", "NA", "two\nlines", " spaced "]
    order = [3, 11, 0, 7, 3, 15, 1, 9, 11, 4, 14, 2, 0, 12, 6, 13, 5, 10, 8, 3]  # every text, some twice
    data = tmp_path / "data"
    data.mkdir()
    for name, texts in (("train.csv", base * 2), ("test.csv", [base[i] for i in order])):
        with open(data / name, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text", "label"], *[[t, i % 2] for i, t in enumerate(texts)]])
    cli = main([
        "predict", "--model", "lightning_modules.classification.SequenceClassifier",
        "--model.backbone", tiny_bert, "--data", "datamodules.classification.TextClassificationDataModule",
        "--data.label_names", "[neg, pos]", "--data.data_dir", str(data), "--data.max_length", "32",
        "--data.num_workers", "0", "--data.cache_dir", str(tmp_path / "cache"),
        "--trainer.accelerator", "cpu", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
        *(["--data.predict_file", str(data / "test.csv")] if source == "predict_file" else []),
    ])
    with open(data / "test.csv", newline="", encoding="utf-8") as f:
        expected = [row["text"] for row in csv.DictReader(f)]
    with open(Path(cli.trainer.log_dir) / "predictions.csv", newline="", encoding="utf-8") as f:
        written = [row["text"] for row in csv.DictReader(f)]
    assert len(expected) == len(order) and len(set(expected)) < len(expected)
    assert written == expected
