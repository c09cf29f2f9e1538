"""Mixed precision on a GPU: packed batches in the default layout (unrounded rows that end in an
empty closing segment) through the chosen varlen kernel give the hidden states and gradients of an
fp32 padded reference (within 16-bit error), the kernel is seen to run where it can, every installed
kernel passes its start-up check at every head size, TinyBERT's head size takes the exact path,
16-mixed / bf16-mixed fits (eager and compiled) stay finite and learn, and the FSDP overlay trains
and exports. Skipped where CUDA is absent; benchmarks/gpu_suite.py runs them."""

import pytest
import torch
from lightning import Callback, Trainer, seed_everything
from transformers import AutoModelForSequenceClassification

from datamodules.packing import rounding
from datamodules.synthetic import SyntheticSentimentDataModule
from lightning_modules import attention_kernels
from lightning_modules.adapters import body
from lightning_modules.attention_kernels import Kernel, kernel_for
from lightning_modules.classification import SequenceClassifier
from lightning_modules.kernel_check import self_check
from tests.helpers import CONFIGS, checkpoint_weights, padded_and_packed, quick_args, run_cli
from tests.tiny_models import save_tiny

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


@pytest.fixture
def counted_kernels(monkeypatch):
    """Every installed varlen kernel, counting its calls (the check's included)."""
    calls = {}

    def counting(kernel: Kernel) -> Kernel:
        def run(*args):
            calls[kernel.name] = calls.get(kernel.name, 0) + 1
            return kernel.run(*args)
        return Kernel(kernel.name, run, kernel.has_dropout)

    kernels = tuple(counting(k) for k in attention_kernels.installed_kernels())
    monkeypatch.setattr(attention_kernels, "installed_kernels", lambda: kernels)
    kernel_for.cache_clear()
    yield calls
    kernel_for.cache_clear()


def on_gpu(batch: dict) -> dict:
    return {k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()}


def per_text_states(module: SequenceClassifier, batch: dict) -> list[torch.Tensor]:
    """The last hidden state of every real token, text by text."""
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "num_texts")}
    hidden = body(module.model)(**inputs).last_hidden_state.float()
    if "cu_seq_lens_q" in batch:
        bounds = batch["cu_seq_lens_q"][:batch["num_texts"] + 1].tolist()
        return [hidden[0, s:e] for s, e in zip(bounds[:-1], bounds[1:])]
    return [row[mask.bool()] for row, mask in zip(hidden, batch["attention_mask"])]


def forward_and_grads(module, batch, dtype):
    trainable = [p for p in module.model.parameters() if p.requires_grad]
    with torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
        states = per_text_states(module, batch)
        loss = module.outputs(batch).loss
    return states, torch.autograd.grad(loss, trainable)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("head_size", [32, 26], ids=["head 32: varlen kernel", "head 26 (TinyBERT): exact"])
def test_packed_16_bit_matches_an_fp32_padded_reference_through_the_chosen_kernel(dtype, head_size, tmp_path,
                                                                               counted_kernels):
    backbone = str(save_tiny(tmp_path / "model", "bert", head_size=head_size))
    module = SequenceClassifier(backbone, ["neg", "pos"]).cuda().eval()  # no dropout
    padded, packed = (on_gpu(b) for b in padded_and_packed(multiple=rounding(compiling=False)))
    assert packed["cu_seq_lens_q"][-1] == packed["cu_seq_lens_q"][-2]  # the empty closing segment
    reference_states, reference_grads = forward_and_grads(module, padded, None)
    padded_states, _ = forward_and_grads(module, padded, dtype)
    packed_states, packed_grads = forward_and_grads(module, packed, dtype)

    chosen = kernel_for(torch.device("cuda", torch.cuda.current_device()), dtype, 2, head_size)
    if head_size % 8 == 0 and torch.cuda.get_device_capability() >= (8, 0):
        assert chosen is not None and counted_kernels.get(chosen.name, 0) > 1  # the check, then layers
    else:
        assert chosen is None and not counted_kernels
    for got, padded16, want in zip(packed_states, padded_states, reference_states, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-2)
        # packing adds no error of its own beyond what 16-bit padding has
        assert (got - want).abs().max() <= 2 * (padded16 - want).abs().max() + 1e-3
    total = torch.cat([g.flatten() for g in reference_grads]).norm()
    for got, want in zip(packed_grads, reference_grads, strict=True):  # key biases' are ~0: floor
        assert (got.float() - want).norm() <= 0.05 * want.norm() + 1e-3 * total


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_installed_kernel_passes_its_check_at_every_head_size(dtype):
    """The check's tolerances were set from an emulation on the CPU: real kernels must pass them, at
    BERT-base's 12 heads and the head sizes a kernel takes (8 to 256)."""
    ampere = torch.cuda.get_device_capability() >= (8, 0)
    device = torch.device("cuda", torch.cuda.current_device())
    problems = {(kernel.name, head_dim): self_check(kernel, device, dtype, 12, head_dim)
                for kernel in (attention_kernels.installed_kernels() if ampere else ())
                for head_dim in (8, 32, 64, 128, 256)}
    assert not any(problems.values()), problems


def test_the_fsdp_overlay_trains_and_exports_the_best_weights_on_one_gpu(tiny_bert, tmp_path):
    """FSDP needs CUDA (Lightning refuses it on the CPU), so only here: the overlay as written,
    on one GPU, and an export that reloads to the best checkpoint's logits."""
    result = run_cli(*quick_args(tiny_bert, tmp_path, tmp_path / "cache", "--config",
                                 str(CONFIGS / "overlays" / "fsdp.yaml"), "--trainer.devices", "1",
                                 "--trainer.max_steps", "4", "--trainer.val_check_interval", "2",
                                 "--trainer.precision", "bf16-mixed", "--test_after_fit", "false",
                                 "--trainer.logger.init_args.name", "fsdp"), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "logs" / "fsdp" / "version_0"
    best = next((run / "checkpoints").glob("epoch*.ckpt"))
    module = SequenceClassifier(tiny_bert, ["neg", "pos"]).eval()
    module.model.load_state_dict(checkpoint_weights(best))
    reloaded = AutoModelForSequenceClassification.from_pretrained(run / "hf_model").eval()
    padded, _ = padded_and_packed()
    inputs = {k: v for k, v in padded.items() if k != "labels"}
    with torch.no_grad():
        expected = module.model(**inputs).logits
        torch.testing.assert_close(reloaded(**inputs).logits, expected, rtol=1e-5, atol=1e-5)
