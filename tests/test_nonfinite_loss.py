"""A non-finite loss stops the run before it reaches the weights or a checkpoint."""

import pytest
import torch
from lightning import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from core.errors import UserError
from datamodules.synthetic import SyntheticSentimentDataModule
from lightning_modules.classification import SequenceClassifier
from plugins.health import StopOnNonFiniteLoss


class NaNAtStep(SequenceClassifier):
    """Returns a NaN loss from optimizer step 3 on."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return loss * float("nan") if self.trainer.global_step >= 3 else loss


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_bert, tmp_path):
    dm = SyntheticSentimentDataModule(tiny_bert, num_train=160, num_test=16, batch_size=16, max_length=64,
                                      num_workers=0, cache_dir=str(tmp_path / "cache"))
    module = NaNAtStep(tiny_bert, ["neg", "pos"])
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=2, save_top_k=-1)
    trainer = Trainer(max_epochs=1, logger=False, callbacks=[checkpoint, StopOnNonFiniteLoss()],
                      enable_progress_bar=False, num_sanity_val_steps=0)
    with pytest.raises(UserError, match=r"training loss is nan at step 3 .*bf16-mixed"):
        trainer.fit(module, dm)
    saved = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert saved == ["epoch=0-step=2.ckpt"]
    state = torch.load(tmp_path / "ckpt" / saved[0], weights_only=True)["state_dict"]
    assert all(torch.isfinite(v).all() for v in state.values())
