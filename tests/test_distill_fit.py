"""Distillation through the CLI: one overlay and a teacher turn a fit into a distillation that
learns, exports the student and names its teacher in the card; a logits-only run caches the
teacher's logits, and a student cut from the teacher trains with LoRA."""

import json
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from core.events import run_events, scalars
from tests.distill_helpers import easy_rows, trained_teacher
from tests.helpers import CONFIGS, IMDB, checkpoint_weights, padded_and_packed, write_rows
from tests.test_scale import TWO_FORKED_PROCESSES
from train import main

OVERLAY = str(CONFIGS / "overlays" / "distill.yaml")


@pytest.fixture(scope="module")
def setting(tmp_path_factory) -> dict:
    """A teacher's run folder (its export in hf_model/) and easy reviews as local split files."""
    root = tmp_path_factory.mktemp("distill-fit")
    trained_teacher(root / "teacher-run" / "hf_model")
    data = write_rows(root / "data", easy_rows(200))
    write_rows(root / "data", easy_rows(240)[200:], name="test.jsonl")
    return {"teacher": str(root / "teacher-run"), "data": data, "root": root}


def fit(setting: dict, name: str, *extra: str):
    root = setting["root"]
    return main(["fit", "--config", IMDB, "--config", OVERLAY, "--model.teacher", setting["teacher"],
                 "--model.learning_rate", "1e-3", "--data.data_dir", setting["data"],
                 "--data.max_length", "64", "--data.batch_size", "16", "--data.num_workers", "0",
                 "--data.cache_dir", str(root / "cache"), "--trainer.accelerator", "cpu",
                 "--trainer.precision", "32-true", "--trainer.log_every_n_steps", "2",
                 "--trainer.enable_progress_bar", "false",
                 "--trainer.logger.init_args.save_dir", str(root / "logs"),
                 "--trainer.logger.init_args.name", name, *extra])


def test_a_distilled_fit_learns_and_exports_the_student_naming_its_teacher(setting, tiny_distilbert):
    """A DistilBERT student, 64 wide, of a 52-wide BERT teacher: every loss, with unlabelled rows;
    the teacher's weights are what its folder holds after the fit, and no optimizer holds them."""
    cli = fit(setting, "every-loss", "--model.backbone", tiny_distilbert,
              "--model.distill.hidden_weight", "1", "--model.distill.attention_weight", "1",
              "--model.distill.minilm_weight", "1",
              "--data.limit_train_samples", "64", "--data.unlabelled", "unused",
              "--data.limit_unlabelled_samples", "32",
              "--data.batch_size", "8", "--model.learning_rate", "3e-3", "--trainer.max_epochs", "2")
    run = Path(cli.trainer.log_dir)
    assert cli.datamodule.splits["train"]["labels"].count(-100) == 32
    events = run_events(run)
    losses = [loss for _, loss in scalars(events, "train/loss")]
    label_losses = [loss for _, loss in scalars(events, "distill/label")]
    assert sum(losses[-3:]) < 0.8 * sum(losses[:3]), losses
    assert sum(label_losses[-3:]) < 0.8 * sum(label_losses[:3]), label_losses
    results = cli.trainer.callback_metrics
    assert results["test/teacher_acc"] == 1.0 and results["test/acc"] >= 0.9, results
    assert results["test/agreement"] >= 0.9
    shares = [share for _, share in scalars(events, "distill/teacher_share")]
    assert shares and all(0 < share < 1 for share in shares)
    for term in ("label", "logit", "hidden", "attention", "minilm"):
        assert scalars(events, f"distill/{term}"), term
    minilm = [loss for _, loss in scalars(events, "distill/minilm")]
    assert sum(minilm[-3:]) < 0.8 * sum(minilm[:3]), minilm
    teacher = cli.model.distiller.teacher.model
    on_disk = AutoModelForSequenceClassification.from_pretrained(Path(setting["teacher"]) / "hf_model")
    for name, weight in on_disk.state_dict().items():
        assert torch.equal(teacher.state_dict()[name], weight), name
    trained = {id(p) for group in cli.trainer.optimizers[0].param_groups for p in group["params"]}
    assert not trained & {id(p) for p in teacher.parameters()}
    saved = checkpoint_weights(run / "checkpoints" / "last.ckpt")
    assert saved["distiller.projection.weight"].shape == (52, 64)
    assert not [key for key in saved if "teacher" in key]
    exported = AutoModelForSequenceClassification.from_pretrained(run / "hf_model").eval()
    assert exported.config.model_type == "distilbert"
    padded, packed = padded_and_packed()
    with torch.no_grad():  # the student as tested (the best checkpoint), on packed texts
        inputs = {key: padded[key] for key in ("input_ids", "attention_mask")}
        torch.testing.assert_close(exported(**inputs).logits, cli.model.eval()(packed), rtol=1e-5, atol=1e-5)
    card = (run / "hf_model" / "README.md").read_text()
    assert f"distilled from the teacher `{setting['teacher']}`" in card
    assert "hidden-state MSE (weight 1)" in card and "attention-score MSE (weight 1)" in card
    assert "MiniLM's attention and value-relation KL (weight 1)" in card
    assert "the teacher's accuracy is 1.0000" in card and "- distillation" in card


def test_a_logits_only_run_caches_the_teacher_and_a_cut_student_trains_with_lora(setting):
    lora = str(CONFIGS / "overlays" / "lora.yaml")
    teacher_model = str(Path(setting["teacher"]) / "hf_model")
    cli = fit(setting, "cut-lora", "--config", lora, "--model.backbone", teacher_model,
              "--model.keep_layers", "[1]", "--data.limit_train_samples", "32", "--trainer.max_epochs", "1",
              "--test_after_fit", "false")
    cached = list((setting["root"] / "cache").glob("*-teacher-logits-*.npy"))
    assert len(cached) == 1
    assert "teacher_logits" in cli.datamodule.splits["train"].column_names
    run = Path(cli.trainer.log_dir)
    config = json.loads((run / "hf_model" / "config.json").read_text())
    assert config["num_hidden_layers"] == 1 and (run / "adapter").is_dir()
    assert not scalars(run_events(run), "distill/teacher_share")  # the teacher never ran in a step
    card = (run / "hf_model" / "README.md").read_text()
    assert ("This model is 1 of the 2 encoder layers of a local model (hf_model) (layers 1, 0-based), "
            "cut from it and then fine-tuned") in card


def test_a_labels_only_run_leaves_the_teachers_logits_uncomputed(setting):
    """Nothing reads them: no logit loss, no unlabelled text to label."""
    before = set((setting["root"] / "cache").glob("*-teacher-logits-*.npy"))
    teacher_model = str(Path(setting["teacher"]) / "hf_model")
    cli = fit(setting, "labels-only", "--model.backbone", teacher_model, "--model.keep_layers", "[1]",
              "--model.distill.logit_weight", "0", "--data.limit_train_samples", "48",
              "--trainer.max_epochs", "1", "--test_after_fit", "false")
    assert set((setting["root"] / "cache").glob("*-teacher-logits-*.npy")) == before
    assert "teacher_logits" not in cli.datamodule.splits["train"].column_names


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="DDP on CPU is tested on Linux (gloo)")
def test_two_stages_of_a_student_of_another_width_train_under_ddp(setting, tiny_distilbert):
    """Stage 1 reads no logits (the head unused), stage 2 no hidden states (the projection unused):
    DDP without find_unused_parameters needs a gradient for every parameter in both."""
    cli = fit(setting, "ddp-stages", "--model.backbone", tiny_distilbert,
              "--model.distill.hidden_weight", "1", "--model.distill.intermediate_epochs", "1",
              "--trainer.max_epochs", "2", "--data.limit_train_samples", "64", "--test_after_fit", "false",
              *TWO_FORKED_PROCESSES)
    assert isinstance(cli.model.distiller.projection, torch.nn.Linear)  # 64 wide to the teacher's 52
    last = torch.load(setting["root"] / "logs" / "ddp-stages" / "version_0" / "checkpoints" / "last.ckpt",
                      map_location="cpu", weights_only=False)
    assert last["epoch"] == 2 and last["global_step"] > 0  # both stages ran, on two ranks


def test_each_of_two_stages_warms_up_and_decays_its_own_learning_rate(setting, tiny_distilbert):
    """TinyBERT's stages each with an AdamW and a schedule of their own: the rate falls to about 0
    at the end of stage 1 and warms up again in stage 2 (one schedule over both would stand at
    half its peak at the boundary); early stopping cannot end the run inside stage 1."""
    cli = fit(setting, "stages", "--model.backbone", tiny_distilbert, "--model.distill.hidden_weight", "1",
              "--model.distill.intermediate_epochs", "1", "--trainer.max_epochs", "2",
              "--data.limit_train_samples", "96", "--data.batch_size", "8", "--model.warmup_ratio", "0.2",
              "--test_after_fit", "false", "--trainer.log_every_n_steps", "1")
    rates = [value for _, value in scalars(run_events(Path(cli.trainer.log_dir)), "lr/pg1")]
    per_stage = len(rates) // 2
    first, second = rates[:per_stage], rates[per_stage:]
    peak = max(rates)
    assert first[-1] < 0.2 * peak and second[0] < 0.5 * peak and max(second) > 0.9 * peak
    assert cli.trainer.fit_loop.min_epochs == 2
