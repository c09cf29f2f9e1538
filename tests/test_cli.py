"""The Lightning CLI end to end: every config runs, a real fit writes what users look for."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from lightning_modules.classification import SequenceClassifier
from plugins.export import module_state_from_checkpoint
from tests.conftest import ROOT

CONFIGS = sorted(p.relative_to(ROOT / "configs") for p in (ROOT / "configs").rglob("*.yaml")
                 if p.name != "defaults.yaml" and p.parent.name != "overlays")


def data_override(config: Path, shared: Path) -> list[str]:
    """Point each task's config at the real local copy of its data, kept small."""
    task = config.parts[0]
    if task == "imdb":
        return ["--data.data_dir", str(shared / "imdb" / "aclImdb_sample")]
    if task == "ag_news":
        return ["--data.data_dir", str(shared / "ag_news"), "--data.limit_train_samples", "200",
                "--data.limit_test_samples", "50"]
    if task == "mlm":
        return ["--data.data_dir", str(shared / "imdb" / "aclImdb_sample"),
                "--data.train_splits", "[train]", "--data.block_size", "64"]
    return []


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_config_runs_one_step(config, tiny_bert, shared_data):
    from train import main

    main([
        "fit", "--config", str(ROOT / "configs" / config),
        "--model.backbone", tiny_bert, "--data.num_workers", "0",
        *([] if config.parts[0] == "mlm" else ["--data.max_length", "128"]),
        *data_override(config, shared_data),
        "--trainer.fast_dev_run", "1",
    ])


@pytest.fixture(scope="module")
def fitted_run(tiny_bert, tmp_path_factory):
    """One real `train.py fit` in a subprocess, on generated data, shared by the tests below."""
    workdir = tmp_path_factory.mktemp("run")
    os.chdir(workdir)
    result = run_cli(
        "fit", "--config", str(ROOT / "configs" / "quickstart.yaml"),
        "--model.backbone", tiny_bert, "--model.learning_rate", "1e-3",
        "--data.num_train", "200", "--data.num_test", "40", "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.val_check_interval", "1.0",
        "--trainer.logger.init_args.name", "e2e",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "logs" / "e2e" / "version_0"


def test_fit_writes_events_config_checkpoints_and_export(fitted_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(fitted_run))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "val/loss", "val/acc", "val/f1"} <= scalars
    assert len(events.Scalars("val/acc")) == 2
    assert (fitted_run / "config.yaml").is_file()
    checkpoints = {p.name for p in (fitted_run / "checkpoints").iterdir()}
    assert "last.ckpt" in checkpoints and len(checkpoints) == 2
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in (fitted_run / "hf_model").iterdir()}


def test_export_reloads_to_the_same_logits_as_the_best_checkpoint(fitted_run, tiny_bert):
    export = fitted_run / "hf_model"
    best = next(p for p in (fitted_run / "checkpoints").iterdir() if p.name != "last.ckpt")
    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).eval()
    module.model.load_state_dict(module_state_from_checkpoint(str(best)))
    reloaded = AutoModelForSequenceClassification.from_pretrained(export).eval()
    tokenizer = AutoTokenizer.from_pretrained(export)
    batch = tokenizer(["the movie was not dull.", "the plot was awful, but the cast was superb."],
                      padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(module.model(**batch).logits, reloaded(**batch).logits, atol=1e-5)
    assert reloaded.config.id2label == {0: "neg", 1: "pos"}
    classify = pipeline("text-classification", model=str(export))
    assert classify("the movie was brilliant.")[0]["label"] in {"neg", "pos"}


def test_rerun_in_same_folder_does_not_crash_on_existing_config(fitted_run, tiny_bert):
    os.chdir(fitted_run.parents[2])
    result = run_cli(
        "validate", "--config", str(ROOT / "configs" / "quickstart.yaml"),
        "--model.backbone", tiny_bert, "--data.num_train", "200", "--data.num_test", "40",
        "--trainer.logger.init_args.name", "e2e", "--trainer.logger.init_args.version", "0",
        "--ckpt_path", str(fitted_run / "checkpoints" / "last.ckpt"),
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("option, value, message", [
    ("--model.backbone", "nobody/no-such-model", "error: cannot load tokenizer 'nobody/no-such-model'"),
    ("--data.data_dir", "/no/such/dir", "error: data_dir '/no/such/dir' does not exist"),
])
def test_bad_input_is_one_line_on_stderr(option, value, message):
    result = run_cli("fit", "--config", str(ROOT / "configs" / "imdb" / "distilbert.yaml"),
                     option, value, timeout=120)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(message), result.stderr[-2000:]
    assert "Traceback" not in result.stderr


OVERLAYS = sorted((ROOT / "configs" / "overlays").glob("*.yaml"))


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_every_overlay_stacks_on_a_config(overlay, capsys):
    from train import main

    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(ROOT / "configs" / "imdb" / "distilbert.yaml"),
              "--config", str(overlay), "--print_config"])
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "class_path: datamodules.imdb.IMDBDataModule" in printed
    if overlay.stem in ("ddp", "fsdp"):
        assert "Strategy" in printed and "devices: -1" in printed
