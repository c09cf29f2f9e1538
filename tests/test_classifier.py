"""SequenceClassifier: it learns, its optimizer follows the BERT recipe, predict gives probabilities."""

from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from lightning import Trainer
from torch import nn

from datamodules.synthetic import SyntheticSentimentDataModule
from lightning_modules.classification import SequenceClassifier
from lightning_modules.masked_lm import MaskedLanguageModel
from lightning_modules.optim import parameter_groups
from lightning_modules.packing import ATTENTION
from tests.helpers import batch_of


def test_tiny_model_overfits_a_small_batch(tiny_distilbert):
    torch.manual_seed(0)
    module = SequenceClassifier(tiny_distilbert, ["neg", "pos"], learning_rate=1e-3, warmup_ratio=0)
    batch = batch_of(tiny_distilbert, ["the movie was good", "the movie was bad",
                                       "brilliant film", "awful film"], [1, 0, 1, 0])
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    first = module.training_step(batch, 0).item()
    for _ in range(60):
        optimizer.zero_grad()
        module.model(**batch).loss.backward()
        optimizer.step()
    module.eval()
    assert module.model(**batch).loss.item() < 0.05 < first
    assert module(batch).argmax(-1).tolist() == [1, 0, 1, 0]


def test_attention_runs_through_pytorch_sdpa(tiny_bert, tiny_distilbert):
    """Fused scaled-dot-product attention, not the eager softmax(QK^T)V, in every layer; the
    classifier's goes through `lightning_modules.packing`, which hands padded batches to SDPA."""
    for backbone in (tiny_bert, tiny_distilbert):
        classifier, mlm = SequenceClassifier(backbone, ["a", "b"]), MaskedLanguageModel(backbone)
        assert classifier.model.config._attn_implementation == ATTENTION
        assert mlm.model.config._attn_implementation == "sdpa"
        batch = batch_of(backbone, ["a good film", "bad"], [1, 0])
        for run in (lambda: classifier(batch), lambda: mlm.model(input_ids=batch["input_ids"])):
            with mock.patch("torch.nn.functional.scaled_dot_product_attention",
                            wraps=F.scaled_dot_product_attention) as sdpa:
                run()
            assert sdpa.call_count == 2  # one per layer


@pytest.mark.parametrize("arch", ["bert", "distilbert"])  # DistilBERT names its norms sa_layer_norm, ...
def test_no_weight_decay_on_bias_and_layernorm(arch, request):
    model = SequenceClassifier(request.getfixturevalue(f"tiny_{arch}"), ["a", "b", "c"]).model
    decay, no_decay = parameter_groups(model, 0.01)
    norms = {id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()}
    biases = {id(p) for n, p in model.named_parameters() if n.endswith(".bias")}
    assert {id(p) for p in no_decay["params"]} == norms | biases
    assert {id(p) for p in decay["params"]} == {id(p) for p in model.parameters()} - norms - biases
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0


def test_adamw_is_the_fused_kernel_on_the_cpu(tiny_bert):
    """torch's default on the CPU loops over the tensors one by one: 6x slower for MiniLM."""
    module = SequenceClassifier(tiny_bert, ["neg", "pos"])
    module.trainer = Trainer(accelerator="cpu", precision="32-true", logger=False)
    assert module.configure_optimizers()["optimizer"].defaults["fused"] is True


def test_a_mixed_precision_fit_clips_gradients(tiny_bert, tmp_path):
    """Lightning refuses to clip a fused optimizer's gradients under mixed precision."""
    from tests.helpers import quick_args
    from train import main
    cli = main(quick_args(tiny_bert, tmp_path, tmp_path / "cache", "--trainer.precision", "bf16-mixed",
                          "--trainer.accelerator", "cpu", "--trainer.fast_dev_run", "2"))
    assert cli.trainer.global_step == 2 and cli.trainer.gradient_clip_val == 1.0


def test_tied_mlm_weight_is_given_to_the_optimizer_once(tiny_bert):
    module = MaskedLanguageModel(tiny_bert)
    model = module.model
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    listed = [id(p) for group in parameter_groups(model, 0.01) for p in group["params"]]
    assert len(listed) == len(set(listed)) == len(list(model.parameters()))


def test_schedule_warms_up_then_decays_per_optimizer_step(tiny_bert):
    module = SequenceClassifier(tiny_bert, ["a", "b"], learning_rate=1e-3, warmup_ratio=0.25)
    trainer = Trainer(max_steps=8, logger=False, enable_checkpointing=False)
    module.trainer = trainer
    config = module.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(8):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert config["lr_scheduler"]["interval"] == "step"
    assert lrs[0] == 0 and lrs[2] == 1e-3 and lrs[1] == 5e-4
    assert lrs[3:] == pytest.approx([1e-3 * (8 - step) / 6 for step in range(3, 8)])  # linear to 0


def test_predict_step_returns_names_and_probabilities(tiny_bert):
    module = SequenceClassifier(tiny_bert, ["World", "Sports", "Business", "Sci/Tech"]).eval()
    batch = batch_of(tiny_bert, ["good", "bad movie"], [0, 1])
    out = module.predict_step(batch, 0)
    with torch.no_grad():
        torch.testing.assert_close(out["probs"], module(batch).softmax(-1))
    assert out["label"] == [module.label_names[i] for i in out["probs"].argmax(-1)]
    assert module.model.config.id2label[3] == "Sci/Tech"


def test_validate_then_fit_in_one_process(tiny_bert, tmp_path):
    """Metric state reset under validate's inference mode must not break fit's validation."""
    dm = SyntheticSentimentDataModule(tiny_bert, num_train=64, num_test=16, batch_size=16,
                                      max_length=128, num_workers=0, cache_dir=str(tmp_path))
    module = SequenceClassifier(tiny_bert, dm.label_names)

    def trainer() -> Trainer:
        return Trainer(accelerator="cpu", max_epochs=1, logger=False, enable_checkpointing=False,
                       enable_progress_bar=False, enable_model_summary=False)

    trainer().validate(module, dm)
    trainer().fit(module, dm)
    assert trainer().validate(module, dm)[0]["val/loss"] > 0
