"""LoRA runs through the CLI: lean checkpoints that resume, and two exports that reload exactly."""

import shutil
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from core.errors import UserError
from tests.helpers import shared_run_args
from train import main

TEXTS = ["the movie was not dull.", "the plot was awful, but the cast was superb.", "meh"]


def logits(model, tokenizer_dir) -> torch.Tensor:
    batch = AutoTokenizer.from_pretrained(tokenizer_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.fixture
def runs(trained_runs):
    return trained_runs


def run_dir(cli) -> Path:
    return Path(cli.trainer.log_dir)


def test_lora_checkpoint_is_at_least_10x_smaller(runs):
    sizes = {k: (run_dir(runs[k]) / "checkpoints" / "last.ckpt").stat().st_size for k in ("lora", "full")}
    assert sizes["full"] >= 10 * sizes["lora"], sizes


def test_adapter_export_reloads_to_same_logits(runs, tiny_distilbert):
    cli = runs["lora"]
    adapter_dir = run_dir(cli) / "adapter"
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "config.json"} <= {
        p.name for p in adapter_dir.iterdir()}
    base = AutoModelForSequenceClassification.from_pretrained(tiny_distilbert, num_labels=2)
    reloaded = PeftModel.from_pretrained(base, adapter_dir)
    expected = logits(cli.model.model, tiny_distilbert)
    assert torch.allclose(logits(reloaded, adapter_dir), expected, atol=1e-5)


def test_merged_export_needs_no_peft_and_gives_same_logits(runs, tiny_distilbert):
    cli = runs["lora"]
    export = run_dir(cli) / "hf_model"
    merged = AutoModelForSequenceClassification.from_pretrained(export)
    assert not any("lora" in n for n, _ in merged.named_parameters())
    assert merged.config.id2label == {0: "neg", 1: "pos"}
    expected = logits(cli.model.model, tiny_distilbert)
    assert torch.allclose(logits(merged, export), expected, atol=1e-5)


def test_lora_run_resumes_from_its_lean_checkpoint(runs, tiny_distilbert, tmp_path, shared_cache):
    """The CLI rebuilds the model from the checkpoint's hyperparameters: no overlay needed."""
    first = runs["lora"]
    copy = tmp_path / "logs" / "lora" / "version_0"
    shutil.copytree(run_dir(first), copy)
    resumed = main(shared_run_args(tiny_distilbert, tmp_path, shared_cache, 3,
                                   "--ckpt_path", str(copy / "checkpoints" / "last.ckpt")))
    assert isinstance(resumed.model.model, PeftModel)
    assert Path(resumed.trainer.log_dir) == copy
    assert resumed.trainer.global_step == first.trainer.global_step // 2 * 3
    assert resumed.trainer.current_epoch == 3


def test_checkpoint_of_another_setup_is_refused(runs, tiny_distilbert):
    full = torch.load(run_dir(runs["full"]) / "checkpoints" / "last.ckpt", weights_only=True)
    lora = torch.load(run_dir(runs["lora"]) / "checkpoints" / "last.ckpt", weights_only=True)
    with pytest.raises(UserError, match=r"fit this model \(unexpected weight 'model.classifier.bias', "):
        runs["lora"].model.on_load_checkpoint(full)
    with pytest.raises(UserError, match="unexpected weight 'model.base_model.model."):
        runs["full"].model.on_load_checkpoint(lora)
