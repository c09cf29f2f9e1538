"""Mixed precision on a GPU: fits in 16-mixed and bf16-mixed stay finite and learn, with packed
batches (the varlen kernels) and the compile switch; packed and padded logits agree in 16-bit.
Skipped where CUDA is absent."""

import pytest
import torch
from lightning import Callback, Trainer, seed_everything

from datamodules.synthetic import SyntheticSentimentDataModule
from lightning_modules.classification import SequenceClassifier
from tests.helpers import padded_and_packed

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: mixed precision on a GPU"),
]


class EpochLosses(Callback):
    def __init__(self):
        self.losses: list[list[float]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.losses.append([])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses[-1].append(outputs["loss"].item())


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("compile", [False, True])
def test_mixed_precision_fit_memorises_a_small_set(precision, compile, tiny_bert, tmp_path):
    seed_everything(0)
    dm = SyntheticSentimentDataModule(tiny_bert, num_train=40, num_test=8, batch_size=12,
                                      max_length=128, num_workers=0,
                                      cache_dir=str(tmp_path / "cache"))
    module = SequenceClassifier(tiny_bert, dm.label_names, learning_rate=1e-3, compile=compile)
    record = EpochLosses()
    trainer = Trainer(accelerator="gpu", devices=1, precision=precision, max_epochs=30,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      limit_val_batches=0, callbacks=[record])
    trainer.fit(module, dm)
    first, last = (sum(epoch) / len(epoch) for epoch in (record.losses[0], record.losses[-1]))
    assert all(torch.isfinite(torch.tensor(epoch)).all() for epoch in record.losses)
    assert last < 0.5 * first


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_packed_logits_match_padded_ones_through_the_cuda_kernels(dtype, tiny_bert):

    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).cuda().eval()
    padded, packed = (
        {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}
        for batch in padded_and_packed()
    )
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        padded_logits, packed_logits = module(padded), module(packed)
    torch.testing.assert_close(packed_logits.float(), padded_logits.float(), rtol=0.05, atol=0.05)
