"""MaskedLanguageModel: continue BERT's pre-training objective on in-domain text."""

import logging

import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric
from torchmetrics.text import Perplexity
from transformers import AutoModelForMaskedLM

from core.batches import model_inputs
from core.pretrained import load_model
from lightning_modules import adapters
from lightning_modules.adapters import LoraSettings
from lightning_modules.base import EncoderModule, check_training_options
from lightning_modules.heads import masked_positions_only

log = logging.getLogger(__name__)


class MaskedLanguageModel(EncoderModule):
    """Trains `backbone` to predict masked tokens; logs `train/loss`, `val/loss`, `val/perplexity`.

    `val/loss` is the mean loss over all masked validation tokens (token-weighted, so
    `val/perplexity` is its exp), and `val/acc` the share of masked tokens predicted exactly.

    Args:
        backbone: hub id, alias (`bert-base`, `distilbert`, `tinybert`, `minilm`) or local folder.
        learning_rate: peak AdamW learning rate.
        weight_decay: AdamW weight decay, not applied to biases and LayerNorm.
        warmup_ratio: share of the optimizer steps spent warming the learning rate up from 0.
        lora: LoRA adapter settings; None trains the whole backbone.
        freeze_embeddings: keep the embedding layer (and so the tied output projection) fixed.
        freeze_layers: keep the first N encoder layers fixed.
        trust_remote_code: run model code shipped with the backbone; off, as it executes
            whatever the repository contains.
        compile: compile each encoder layer with `torch.compile` (see `EncoderModule`).
    """

    MONITOR = ("val/perplexity", "min")  # the metric the best checkpoint tracks
    VALIDATION_METRICS = ("val/loss", "val/perplexity", "val/acc")  # what a sweep may optimize

    def __init__(
        self,
        backbone: str,
        learning_rate: float = 2e-5,
        weight_decay: float = 0.01,
        warmup_ratio: float = 0.0,
        lora: LoraSettings | None = None,
        freeze_embeddings: bool = False,
        freeze_layers: int = 0,
        trust_remote_code: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        check_training_options(learning_rate, weight_decay, warmup_ratio, freeze_layers)
        self.save_hyperparameters()
        model, fresh = load_model(AutoModelForMaskedLM, backbone, trust_remote_code)
        if fresh:
            log.warning("backbone '%s' has no MLM head weights for %s: created fresh", backbone,
                        ", ".join(fresh))
        model.train()
        # The MLM head's output projection is tied to the embeddings, so it is not made a LoRA
        # `modules_to_save` copy: with LoRA the head stays as pretrained.
        self.model = adapters.prepare(model, lora, freeze_embeddings, freeze_layers, heads=[],
                                      task_type=None)
        self.val_perplexity = Perplexity()
        self.val_loss, self.val_acc = MeanMetric(), MeanMetric()

    def masked_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of the masked positions only: the model's own head runs on them
        alone (`lightning_modules.heads`), with the loss and gradients of the full forward."""
        labels = batch["labels"]
        masked = labels != -100
        with masked_positions_only(self.model, masked):
            logits = self.model(**model_inputs(batch, with_labels=False)).logits
        return logits[0], labels[masked]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, targets = self.masked_logits(batch)
        loss = F.cross_entropy(logits, targets)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Every metric weighs each masked token once, across batches and processes alike."""
        logits, targets = self.masked_logits(batch)
        self.val_perplexity.update(logits.float()[None], targets[None])
        self.val_loss.update(F.cross_entropy(logits.float(), targets, reduction="none"))
        self.val_acc.update((logits.argmax(-1) == targets).float())
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/perplexity", self.val_perplexity, prog_bar=True)
        self.log("val/acc", self.val_acc)
