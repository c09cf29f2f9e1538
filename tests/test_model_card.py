"""The export's model card: metadata the hub parses back, results equal to what the run logged,
one training-results row per validation, for classification, LoRA and MLM runs; the push option
refused in one line before training when the hub cannot be reached."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard

from core.errors import UserError
from core.events import run_events, scalars
from datamodules.synthetic import generate
from plugins.model_card import run_name
from tests.helpers import MLM, quick_args, shared_run_args
from train import main


def card(folder: Path) -> ModelCard:
    return ModelCard.load(folder / "README.md")


def table_rows(text: str) -> list[list[str]]:
    """The training-results table, one list of cells per row."""
    section = text.split("### Training results")[1].split("###")[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][1:]  # after the header
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def logged(run: Path, tag: str) -> float:
    return scalars(run_events(run), tag)[-1][1]


def test_a_classification_card_holds_the_runs_own_results(trained_runs):
    run = Path(trained_runs["full"].trainer.log_dir)
    found = card(run / "hf_model")
    data = found.data
    assert data.library_name == "transformers" and data.pipeline_tag == "text-classification"
    assert data.base_model is None  # a local model folder: no hub id to claim
    assert "bert-lightning" in data.tags and "lora" not in data.tags
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"loss": logged(run, "hp/test_loss"), "accuracy": logged(run, "hp/test_acc"),
                       "f1": logged(run, "hp/test_f1")}
    assert {r.dataset_split for r in data.eval_results} == {"test"}
    assert {r.dataset_name for r in data.eval_results} == {"generated reviews (datamodules/synthetic.py)"}
    rows = table_rows(found.text)
    validations = scalars(run_events(run), "val/loss")
    assert [int(row[2]) for row in rows] == [step for step, _ in validations] and len(rows) == 4
    assert [row[3] for row in rows] == [f"{loss:.4f}" for _, loss in validations]
    assert [row[4] for row in rows] == [f"{acc:.4f}" for _, acc in scalars(run_events(run), "val/acc")]
    assert "- learning_rate: 0.001" in found.text and "- train_batch_size: 16" in found.text
    assert "- eval_batch_size: 32" in found.text  # the loaders' own: twice the training batch
    assert "betas=(0.9, 0.999)" in found.text and "weight decay 0.01 and 0" in found.text
    assert f"pipeline(\"text-classification\", model=\"{run / 'hf_model'}\")" in found.text
    assert "- transformers: " in found.text
    assert f"python train.py fit --config {run / 'config.yaml'}\n" in found.text


def test_a_card_is_named_after_the_run_folder_under_logs():
    assert run_name(Path("logs/imdb/distilbert/version_0")) == "imdb-distilbert-version_0"
    assert run_name(Path("logs/sweeps/imdb/seeds/trial_005/seed_1/version_0")) == \
        "sweeps-imdb-seeds-trial_005-seed_1-version_0"
    assert run_name(Path("/elsewhere/runs/version_3")) == "runs-version_3"


def test_a_lora_run_gets_a_card_for_the_merged_model_and_one_for_the_adapter(trained_runs):
    run = Path(trained_runs["lora"].trainer.log_dir)
    merged, adapter = card(run / "hf_model"), card(run / "adapter")
    assert merged.data.library_name == "transformers" and adapter.data.library_name == "peft"
    assert {"lora", "peft"} <= set(adapter.data.tags) and {"lora", "peft"} <= set(merged.data.tags)
    assert "PeftModel.from_pretrained(base, " in adapter.text and "pipeline(" in merged.text
    assert "LoRA: r=8" in adapter.text and "LoRA adapters of rank 8" in adapter.text
    assert {r.metric_type: r.metric_value for r in adapter.data.eval_results}["accuracy"] == logged(
        run, "hp/test_acc")


def test_an_mlm_card_reports_the_best_validation_perplexity(tiny_bert, tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in generate(300, 0)))
    cli = main(["fit", "--config", MLM, "--model.backbone", tiny_bert, "--data.data_dir", str(corpus),
                "--data.train_splits", "[train]", "--data.val_split", "train", "--data.block_size", "32",
                "--data.batch_size", "16", "--data.num_workers", "0", "--trainer.max_epochs", "2",
                "--trainer.accelerator", "cpu", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
                "--trainer.enable_progress_bar", "false"])
    run = Path(cli.trainer.log_dir)
    found = card(run / "hf_model")
    assert found.data.pipeline_tag == "fill-mask" and "masked-lm" in found.data.tags
    results = {r.metric_type: r.metric_value for r in found.data.eval_results}
    best = logged(run, "hp/best_val_perplexity")
    assert results["perplexity"] == best
    assert {r.dataset_split for r in found.data.eval_results} == {"validation"}
    assert len(table_rows(found.text)) == len(scalars(run_events(run), "val/perplexity")) == 2
    assert "local data (corpus)" in found.text


def test_push_to_hub_is_refused_in_one_line_before_training_when_offline(tiny_bert, tmp_path):
    with pytest.raises(UserError) as caught:
        main(quick_args(tiny_bert, tmp_path, tmp_path / "cache", "--push_to_hub", "someone/tiny-model"))
    message = str(caught.value)
    assert message.startswith("--push_to_hub someone/tiny-model: cannot reach the Hugging Face hub")
    assert "\n" not in message
    assert not (tmp_path / "logs").exists()  # refused before any run folder was made


def test_a_resumed_runs_card_reproduces_it_in_a_new_folder(trained_runs, tmp_path, shared_cache,
                                                          tiny_distilbert):
    """A resumed run's config.yaml resumes into the old folder (ckpt_path, logger version): the
    card's Reproduce line sets both back, as best.yaml of a sweep does."""
    run = Path(trained_runs["full"].trainer.log_dir)
    copy = tmp_path / "logs" / "full" / "version_0"
    shutil.copytree(run, copy)
    main(shared_run_args(tiny_distilbert, tmp_path, shared_cache, 3, "--trainer.logger.init_args.name",
                         "full", "--ckpt_path", str(copy / "checkpoints" / "last.ckpt"),
                         "--trainer.enable_progress_bar", "false"))
    lines = card(copy / "hf_model").text.splitlines()
    line = next(line for line in lines if line.startswith("python train.py"))
    assert line == (f"python train.py fit --config {copy / 'config.yaml'} --ckpt_path null "
                    "--trainer.logger.init_args.version null")
    saved = yaml.safe_load((copy / "config.yaml").read_text())  # what the two options set back
    assert saved["ckpt_path"] and saved["trainer"]["logger"]["init_args"]["version"] == "version_0"
