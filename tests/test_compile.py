"""The `compile` switch: regional torch.compile of the encoder layers, same training, same checkpoints."""

import os

import pytest
import torch
from lightning import Callback, Trainer, seed_everything
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from datamodules.packing import PackedCollator
from lightning_modules.adapters import encoder_layers
from lightning_modules.classification import SequenceClassifier
from tests.helpers import batch_of

TEXTS = ["a great movie", "a bad film", "truly great", "rather bad and simply not good"]


def packed(backbone: str, texts: list[str], labels: list[int]) -> dict:
    ids = AutoTokenizer.from_pretrained(backbone)(texts)["input_ids"]
    return PackedCollator(0, 128, 16)([{"input_ids": i, "labels": y} for i, y in zip(ids, labels)])


class Gradients(Callback):
    """Every step's gradients: Adam's normalised update would hide a mis-scaled one in the weights."""

    def __init__(self):
        self.steps: list[dict] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.steps.append({n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None})


def fit_steps(backbone: str, compile: bool, collate=batch_of) -> tuple[SequenceClassifier, list[dict]]:
    seed_everything(0)
    module = SequenceClassifier(backbone, ["neg", "pos"], learning_rate=1e-3, warmup_ratio=0.0,
                                compile=compile)
    batches = [collate(backbone, TEXTS[:2], [1, 0]), collate(backbone, TEXTS, [1, 0, 1, 0])]
    gradients = Gradients()
    trainer = Trainer(max_epochs=2, logger=False, enable_checkpointing=False, callbacks=[gradients],
                      enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader(batches, batch_size=None))
    return module, gradients.steps


@pytest.mark.parametrize("collate", [pytest.param(batch_of, marks=pytest.mark.slow), packed],
                         ids=["padded", "packed"])
def test_compiled_layers_train_like_eager_ones_and_keep_their_weight_names(no_dropout_bert, collate):
    """Without dropout: compiled dropout draws other random numbers than eager dropout."""
    eager, eager_grads = fit_steps(no_dropout_bert, compile=False, collate=collate)
    compiled, compiled_grads = fit_steps(no_dropout_bert, compile=True, collate=collate)
    assert all(layer._compiled_call_impl is not None for layer in encoder_layers(compiled.model))
    assert all(layer._compiled_call_impl is None for layer in encoder_layers(eager.model))
    assert list(compiled.state_dict()) == list(eager.state_dict())
    assert len(compiled_grads) == len(eager_grads) == 4
    for step, (got, want) in enumerate(zip(compiled_grads, eager_grads)):
        assert got.keys() == want.keys() and want
        for name, value in want.items():
            torch.testing.assert_close(got[name], value, rtol=1e-4, atol=1e-6, msg=f"step {step}: {name}")


@pytest.mark.parametrize("named", [None, "mine"])
def test_compiled_kernels_are_cached_in_the_project_unless_the_user_names_a_folder(named, tiny_bert, tmp_path,
                                                                                   monkeypatch):
    """Importing Lightning sets $TORCHINDUCTOR_CACHE_DIR to torch's default in /tmp, so a default
    that only fills the variable when unset never applied."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / named) if named else default_cache_dir())
    SequenceClassifier(tiny_bert, ["neg", "pos"], compile=True).configure_model()
    expected = tmp_path / (named or ".cache/torch_compile")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(expected)
