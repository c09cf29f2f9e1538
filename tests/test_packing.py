"""Packed batches: the same texts and the same loss as padded ones, without computing padding."""

from types import SimpleNamespace

import pytest
import torch
from lightning import Trainer, seed_everything

from core.errors import UserError
from datamodules.packing import PackedCollator
from lightning_modules import attention_kernels
from lightning_modules.adapters import LoraSettings
from lightning_modules.classification import SequenceClassifier
from plugins.monitor import TrainingMonitor
from tests.helpers import PACKING_TEXTS as TEXTS
from tests.helpers import classification_dm, features, padded_and_packed, prepared, review_rows, write_rows


def test_collator_concatenates_texts_restarts_positions_and_rounds_the_length():
    rows = features(TEXTS, [1, 0, 0, 1, 1])
    lengths = [len(r["input_ids"]) for r in rows]
    batch = PackedCollator(pad_token_id=0, max_length=32, multiple=16)(rows)
    total = sum(lengths)
    width = batch["input_ids"].shape[1]
    assert batch["input_ids"].shape == batch["position_ids"].shape == (1, width)
    assert width % 16 == 0 and total <= width < total + 16
    assert batch["input_ids"][0, :total].tolist() == sum((r["input_ids"] for r in rows), [])
    assert batch["input_ids"][0, total:].eq(0).all() and batch["position_ids"][0, total:].eq(0).all()
    starts = batch["cu_seq_lens_q"].tolist()
    assert starts == [0, *torch.tensor(lengths).cumsum(0).tolist(), width]
    assert batch["cu_seq_lens_q"].dtype == torch.int32 and batch["cu_seq_lens_k"] is batch["cu_seq_lens_q"]
    for start, length in zip(starts, lengths):
        assert batch["position_ids"][0, start:start + length].tolist() == list(range(length))
    assert batch["labels"].tolist() == [1, 0, 0, 1, 1] and batch["num_texts"] == 5
    assert batch["max_length_q"] == batch["max_length_k"] == 32


@pytest.mark.parametrize("compiles, option, multiple", [(False, None, 1), (True, None, 256), (False, 64, 64)])
def test_packed_rows_are_rounded_by_default_only_for_a_compiled_model(compiles, option, multiple, tiny_bert,
                                                                       tmp_path):
    """The rounding segment only helps compiled kernels see few shapes; elsewhere it is waste."""
    dm = classification_dm(tiny_bert, write_rows(tmp_path / "data", review_rows(20)),
                           packed_length_multiple=option)
    dm.trainer = SimpleNamespace(lightning_module=SimpleNamespace(hparams={"compile": compiles}))
    prepared(dm)
    rows = features(TEXTS, [1, 0, 0, 1, 1])
    width = dm.collator(rows)["input_ids"].shape[1]
    total = sum(len(r["input_ids"]) for r in rows)
    assert dm.collator.multiple == multiple and width == total + (-total % multiple)


def test_packing_is_the_default_and_keeps_the_batches_of_the_padded_loader(tiny_bert, tmp_path):
    rows = [{"text": "good " * (i % 9 + 1) + str(i), "label": i % 2} for i in range(60)]
    data = write_rows(tmp_path / "data", rows)
    packed = prepared(classification_dm(tiny_bert, data, batch_size=8))
    padded = prepared(classification_dm(tiny_bert, data, batch_size=8, packing=False))
    assert packed.hparams.packing
    for a, b in zip(packed.train_dataloader(), padded.train_dataloader(), strict=True):
        texts = a["num_texts"]
        real = b["input_ids"][b["attention_mask"].bool()]
        assert torch.equal(a["labels"], b["labels"])
        assert torch.equal(a["input_ids"][0, :int(a["cu_seq_lens_q"][texts])], real)


def batch_rows(kind: str) -> list[dict]:
    """Texts whose packed attention is the hard case of one layout or the other."""
    if kind == "one text":
        return features(["the soundtrack was simply stunning"], [1])
    if kind == "equal lengths":
        rows = features(["a great movie", "a bad movie", "a good film"], [1, 0, 1])
        assert len({len(r["input_ids"]) for r in rows}) == 1
        return rows
    if kind == "very unequal lengths":
        return features([" ".join([TEXTS[1]] * 6), "bad", "ok"], [0, 0, 1])
    rows = features(TEXTS[:3], [1, 0, 0])  # a text cut to its first token, [CLS]
    rows[1]["input_ids"] = rows[1]["input_ids"][:1]
    return rows


BATCHES = ["one text", "equal lengths", "very unequal lengths", "a text of one token"]


@pytest.fixture(params=list(attention_kernels.LAYOUTS))
def forced_layout(request, monkeypatch) -> str:
    """Every packed batch of the test takes this exact attention layout, whatever its shape."""
    monkeypatch.setattr(attention_kernels, "layout", lambda lengths, cpu_dropout=False: request.param)
    return request.param


@pytest.mark.parametrize("kind", BATCHES)
@pytest.mark.parametrize("arch,lora", [("bert", None), ("distilbert", None), ("bert", LoraSettings())],
                         ids=["bert", "distilbert", "bert-lora"])
def test_packed_forward_gives_the_padded_logits_and_gradients(arch, lora, kind, forced_layout, request):
    backbone = request.getfixturevalue(f"tiny_{arch}")
    torch.manual_seed(0)
    module = SequenceClassifier(backbone, ["neg", "pos"], lora=lora)
    module.model.eval()  # no dropout: both passes compute the same function
    trainable = [p for p in module.model.parameters() if p.requires_grad]
    rows = batch_rows(kind)
    padded, packed = padded_and_packed(rows, multiple=1)

    results = []
    for batch in (padded, packed):
        out = module.outputs(batch)
        results.append((out.logits, out.loss, torch.autograd.grad(out.loss, trainable)))
    (padded_logits, padded_loss, padded_grads), (packed_logits, packed_loss, packed_grads) = results

    assert packed_logits.shape == (len(rows), 2)
    torch.testing.assert_close(packed_logits, padded_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(packed_loss, padded_loss, rtol=1e-5, atol=1e-6)
    for a, b in zip(packed_grads, padded_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_layout_pads_only_where_it_adds_little_attention_work():
    assert attention_kernels.layout([128] * 16) == "padded view"
    assert attention_kernels.layout([40, 50, 60, 0]) == "padded view"  # an empty closing segment
    assert attention_kernels.layout([512, *[20] * 15]) == "per text"
    assert attention_kernels.layout([7]) == "padded view"
    assert attention_kernels.layout([128] * 16, cpu_dropout=True) == "per text"
    assert attention_kernels.layout([12, 40, 64], cpu_dropout=True) == "padded view"


def test_a_packed_fit_learns(tiny_bert, tmp_path, forced_layout):
    seed_everything(0)
    rows = [{"text": f"{'a truly great' if i % 2 else 'a rather bad'} film {'and ' * (i % 7)}{i}",
             "label": i % 2} for i in range(200)]
    dm = classification_dm(tiny_bert, write_rows(tmp_path / "data", rows), batch_size=16,
                 cache_dir=str(tmp_path / "cache"))
    module = SequenceClassifier(tiny_bert, dm.label_names, learning_rate=1e-3, warmup_ratio=0.0)
    trainer = Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, dm)
    assert dm.hparams.packing
    assert trainer.callback_metrics["val/acc"] > 0.9, trainer.callback_metrics


def test_the_monitor_counts_packed_texts_and_their_real_tokens():
    rows = features(TEXTS, [1, 0, 0, 1, 1])
    batch = PackedCollator(pad_token_id=0, max_length=32, multiple=64)(rows)
    monitor = TrainingMonitor()
    monitor.on_train_batch_end(SimpleNamespace(log_every_n_steps=100), None, None, batch, 0)
    assert monitor.samples == len(TEXTS) and monitor.tokens == 64
    assert int(monitor.real_tokens) == sum(len(r["input_ids"]) for r in rows)


def test_a_backbone_without_the_attention_interface_refuses_packed_batches(tiny_bert):
    module = SequenceClassifier(tiny_bert, ["neg", "pos"])
    module.takes_packed = False
    _, packed = padded_and_packed()
    with pytest.raises(UserError, match="--data.packing false"):
        module.outputs(packed)
