"""SequenceClassifier: a Hugging Face encoder with a classification head, trained with Lightning."""

import logging
from pathlib import Path

import torch
from lightning.pytorch.loggers import TensorBoardLogger
from peft import TaskType
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)
from transformers import AutoConfig, AutoModelForSequenceClassification

from core.batches import num_texts
from core.errors import UserError
from core.figures import confusion_matrix_figure
from core.pretrained import from_pretrained, load_model
from lightning_modules import adapters
from lightning_modules.adapters import LoraSettings
from lightning_modules.base import EncoderModule, check_training_options
from lightning_modules.distill_run import DistillRun
from lightning_modules.distill_settings import DistillSettings, check_distill
from lightning_modules.distill_step import Distiller
from lightning_modules.distill_student import check_keep_layers
from lightning_modules.distill_student import keep_layers as cut_to
from lightning_modules.distill_teacher import check_teacher, teacher_folder
from lightning_modules.heads import classifier_outputs
from lightning_modules.packing import use_varlen_attention

log = logging.getLogger(__name__)


def check_head(backbone: str, label_names: list[str], trust_remote_code: bool, keep_layers: list[int] | None):
    """A backbone that already is a classifier must have the data's number of classes; the layers
    to keep must be its own (both before any weights load)."""
    config = from_pretrained(AutoConfig, backbone, "model config", trust_remote_code=trust_remote_code)
    trained_for = [a for a in config.architectures or [] if a.endswith("ForSequenceClassification")]
    if trained_for and config.num_labels != len(label_names):
        raise UserError(
            f"backbone '{backbone}' is a classifier for {config.num_labels} labels "
            f"{list(config.id2label.values())}, but the data has {len(label_names)}: {label_names}"
        )
    if keep_layers is not None:
        check_keep_layers(keep_layers, config.num_hidden_layers)


class SequenceClassifier(EncoderModule):
    """Fine-tunes `backbone` on labelled text; logs `train/loss`, `val/{loss,acc,f1}`, `test/...`.

    Args:
        backbone: hub id, alias (`bert-base`, `distilbert`, `tinybert`, `minilm`) or local folder,
            an MLM export included (its head is then created fresh).
        label_names: class names in id order (the CLI links them from the data module).
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm.
        warmup_ratio: share of the optimizer steps spent warming the learning rate up from 0.
        lora: LoRA adapter settings; None trains the whole backbone.
        freeze_embeddings: keep the embedding layer fixed.
        freeze_layers: keep the first N encoder layers fixed.
        trust_remote_code: run model code shipped with the backbone; off, as it executes
            whatever the repository contains.
        compile: compile each encoder layer with `torch.compile` (see `EncoderModule`); pays
            off on a GPU over a long run.
        keep_layers: keep only these encoder layers of the backbone (0-based, increasing), e.g.
            [1, 3, 5] of 6; with a fine-tuned teacher as the backbone, a distillation's student
            starts as the teacher cut to them (DistilBERT started from every other layer).
        teacher: a fine-tuned classifier to distil from (docs/distill.md): an export folder
            (logs/.../hf_model), its run folder, or a local Hugging Face classifier with the
            data's labels and the backbone's vocabulary; None learns from the labels alone.
        distill: the distillation's losses and their weights (`DistillSettings`).
    """

    MONITOR = ("val/acc", "max")  # the metric the best checkpoint tracks
    VALIDATION_METRICS = ("val/loss", "val/acc", "val/f1")  # what a sweep may optimize

    def __init__(
        self,
        backbone: str,
        label_names: list[str],
        learning_rate: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.1,
        lora: LoraSettings | None = None,
        freeze_embeddings: bool = False,
        freeze_layers: int = 0,
        trust_remote_code: bool = False,
        compile: bool = False,
        keep_layers: list[int] | None = None,
        teacher: str | None = None,
        distill: DistillSettings | None = None,
    ):
        super().__init__()
        check_training_options(learning_rate, weight_decay, warmup_ratio, freeze_layers)
        settings = check_distill(teacher, distill)
        self.save_hyperparameters()
        self.label_names = list(label_names)
        num_labels = len(self.label_names)
        check_head(backbone, self.label_names, trust_remote_code, keep_layers)
        teacher_dir = teacher_folder(teacher) if teacher else None
        if teacher_dir:
            check_teacher(teacher, teacher_dir, self.label_names, backbone, trust_remote_code)
        model, fresh = load_model(
            AutoModelForSequenceClassification, backbone, trust_remote_code,
            num_labels=num_labels,
            id2label=dict(enumerate(self.label_names)),
            label2id={name: i for i, name in enumerate(self.label_names)},
        )
        if fresh:
            log.info("backbone '%s' has no weights for %s: created fresh for %d labels",
                     backbone, ", ".join(fresh), num_labels)
        if keep_layers is not None:
            model = cut_to(model, keep_layers)
        self.takes_packed = use_varlen_attention(model)
        # from_pretrained returns eval mode; Lightning keeps each module's mode, dropout included.
        self.model = adapters.prepare(
            model.train(), lora, freeze_embeddings, freeze_layers,
            heads=adapters.trained_heads(model, fresh), task_type=TaskType.SEQ_CLS,
        )
        cut_from_teacher = (teacher_dir and keep_layers is not None and Path(backbone).expanduser().is_dir()
                            and teacher_folder(backbone) == teacher_dir)
        self.distiller = (Distiller(teacher_dir, settings, self.model, num_labels, trust_remote_code,
                                    keep_layers if cut_from_teacher else None) if teacher_dir else None)
        metrics = MetricCollection({
            "acc": MulticlassAccuracy(num_labels, average="micro"),
            "f1": MulticlassF1Score(num_labels, average="macro"),
        })
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_confusion = MulticlassConfusionMatrix(num_labels)

    def outputs(self, batch: dict, with_loss: bool = True):
        """The model's output on a padded or a packed batch (`datamodules.packing`)."""
        return classifier_outputs(self.model, batch, with_loss, self.takes_packed,
                                  f"backbone '{self.hparams.backbone}'")

    def forward(self, batch: dict) -> torch.Tensor:
        return self.outputs(batch, with_loss=False).logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.distiller is not None:
            return self.distiller.training_step(self, batch)
        loss = self.outputs(batch).loss
        self.log("train/loss", loss, prog_bar=True, batch_size=num_texts(batch))
        return loss

    def evaluate(self, batch: dict, stage: str) -> torch.Tensor:
        """Metrics kept as torchmetrics states, so under DDP every text counts once, however
        unevenly the texts are shared between the processes."""
        out = self.outputs(batch)
        metrics, loss = getattr(self, f"{stage}_metrics"), getattr(self, f"{stage}_loss")
        metrics.update(out.logits, batch["labels"])
        loss.update(out.loss, weight=num_texts(batch))
        self.log(f"{stage}/loss", loss, prog_bar=True)
        self.log_dict(metrics, prog_bar=True)
        return out.logits

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.evaluate(batch, "val")
        self.val_confusion.update(logits, batch["labels"])

    def on_validation_epoch_end(self) -> None:
        """A confusion-matrix image per validation run, under IMAGES in TensorBoard."""
        counts = self.val_confusion.compute()
        if (isinstance(self.logger, TensorBoardLogger) and self.trainer.is_global_zero
                and not self.trainer.sanity_checking):
            figure = confusion_matrix_figure(counts, self.label_names)
            self.logger.experiment.add_figure("val/confusion_matrix", figure, self.global_step)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        logits = self.evaluate(batch, "test")
        if self.distiller is not None:
            self.distiller.compare(self, batch, logits)

    def schedule_steps(self) -> int:
        """Under TinyBERT's two stages each stage has its own AdamW and schedule
        (`DistillRun.on_train_epoch_start`), spanning its own epochs."""
        total = super().schedule_steps()
        if self.distiller is None or not self.distiller.settings.intermediate_epochs:
            return total
        return self.distiller.stage_steps(total, self.trainer.current_epoch, self.trainer.max_epochs)

    def configure_callbacks(self) -> list:
        """A distillation's own callback, once (a test after fit finds it attached)."""
        if self.distiller is None or any(isinstance(c, DistillRun) for c in self.trainer.callbacks):
            return []
        return [DistillRun(self.distiller)]

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        probs = self(batch).float().softmax(-1)
        return {
            "label": [self.label_names[i] for i in probs.argmax(-1).tolist()],
            "probs": probs.cpu(),
        }
