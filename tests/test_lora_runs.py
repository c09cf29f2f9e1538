"""LoRA runs through the CLI: lean checkpoints that resume, and two exports that reload exactly."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from core.errors import UserError
from tests.conftest import ROOT
from train import main

TEXTS = ["the movie was not dull.", "the plot was awful, but the cast was superb.", "meh"]


def fit(workdir: Path, backbone: str, name: str, *extra: str, epochs: int = 1):
    return main([
        "fit", "--config", str(ROOT / "configs" / "quickstart.yaml"), *extra,
        "--model.backbone", backbone, "--model.learning_rate", "1e-3",
        "--data.num_train", "160", "--data.num_test", "32", "--data.batch_size", "16",
        "--trainer.max_epochs", str(epochs), "--trainer.val_check_interval", "1.0",
        "--trainer.logger.init_args.name", name,
        "--trainer.logger.init_args.save_dir", str(workdir / "logs"),
        "--data.cache_dir", str(workdir / "cache"),
    ])


def logits(model, tokenizer_dir) -> torch.Tensor:
    batch = AutoTokenizer.from_pretrained(tokenizer_dir)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model.eval()(**batch).logits


@pytest.fixture(scope="module")
def runs(tiny_distilbert, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("lora-runs")
    lora = fit(workdir, tiny_distilbert, "lora", "--config", str(ROOT / "configs/overlays/lora.yaml"))
    full = fit(workdir, tiny_distilbert, "full")
    return {"lora": lora, "full": full, "workdir": workdir}


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


def test_lora_run_resumes_from_its_lean_checkpoint(runs, tiny_distilbert):
    """The CLI rebuilds the model from the checkpoint's hyperparameters: no overlay needed."""
    first = runs["lora"]
    steps = first.trainer.global_step
    resumed = fit(runs["workdir"], tiny_distilbert, "lora",
                  "--ckpt_path", str(run_dir(first) / "checkpoints" / "last.ckpt"), epochs=2)
    assert isinstance(resumed.model.model, PeftModel)
    assert resumed.trainer.global_step == 2 * steps
    assert resumed.trainer.current_epoch == 2


def test_checkpoint_of_another_setup_is_refused(runs, tiny_distilbert):
    full = torch.load(run_dir(runs["full"]) / "checkpoints" / "last.ckpt", weights_only=True)
    lora = torch.load(run_dir(runs["lora"]) / "checkpoints" / "last.ckpt", weights_only=True)
    with pytest.raises(UserError, match=r"fit this model \(unexpected weight 'model.classifier.bias'\)"):
        runs["lora"].model.on_load_checkpoint(full)
    with pytest.raises(UserError, match="unexpected weight 'model.base_model.model."):
        runs["full"].model.on_load_checkpoint(lora)
