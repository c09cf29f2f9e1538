"""The best checkpoint as a user would choose it: on a tie of the monitored metric, the one with
the lower validation loss; and the export's card holds that checkpoint's own numbers, tested or
not (Lightning's ModelCheckpoint keeps the first of a tie, and the card used to take the last)."""

from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from lightning import LightningModule, Trainer
from torch.utils.data import DataLoader

from plugins.best_checkpoint import BestCheckpoint
from tests.helpers import quick_args
from train import main

# one validation per epoch: (val/acc, val/loss); the 2nd and 3rd tie on accuracy
VALIDATIONS = [(0.5, 0.70), (1.0, 0.46), (1.0, 0.14), (1.0, 0.30), (0.9, 0.10)]


class Scripted(LightningModule):
    """Logs the scripted validation metrics of each epoch; trains a single weight."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.weight - batch).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        acc, loss = VALIDATIONS[self.current_epoch]
        self.log_dict({"val/acc": acc, "val/loss": loss})

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_on_a_tie_the_lower_validation_loss_is_the_best_checkpoint_and_a_resume_keeps_it(tmp_path):
    checkpoint = BestCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/acc", mode="max", filename="{epoch}")
    data = DataLoader(torch.ones(4, 1), batch_size=2)
    trainer = Trainer(max_epochs=4, callbacks=[checkpoint], logger=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(Scripted(), data, data)
    assert Path(checkpoint.best_model_path).name == "epoch=2.ckpt"  # val/loss 0.14 beats 0.46 and 0.30
    saved = checkpoint.saved_metrics[checkpoint.best_model_path]
    assert saved == pytest.approx({"val/acc": 1.0, "val/loss": 0.14})
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["epoch=2.ckpt"]
    again = BestCheckpoint(dirpath=tmp_path / "ckpt", monitor="val/acc", mode="max", filename="{epoch}")
    Trainer(max_epochs=5, callbacks=[again], logger=False, enable_progress_bar=False,
            enable_model_summary=False).fit(Scripted(), data, data, ckpt_path=checkpoint.best_model_path)
    assert again.best_model_path == checkpoint.best_model_path  # 0.9 at epoch 4 does not win


def card_scores(folder: Path) -> dict[str, float]:
    return {r.metric_type: r.metric_value for r in ModelCard.load(folder / "README.md").data.eval_results}


def test_an_untested_runs_card_holds_its_exported_checkpoints_own_validation(tiny_bert, tmp_path,
                                                                             shared_cache):
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--test_after_fit", "false",
                          "--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false"))
    best = cli.trainer.checkpoint_callback.best_model_path
    afresh = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False).validate(
        type(cli.model).load_from_checkpoint(best), datamodule=cli.datamodule, verbose=False)[0]
    scores = card_scores(Path(cli.trainer.log_dir) / "hf_model")
    assert ModelCard.load(Path(cli.trainer.log_dir) / "hf_model" / "README.md").data.eval_results[0] \
        .dataset_split == "validation"
    assert abs(scores["loss"] - afresh["val/loss"]) < 1e-6 and scores["accuracy"] == afresh["val/acc"]
