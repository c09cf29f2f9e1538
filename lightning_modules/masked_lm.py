"""MaskedLanguageModel: continue BERT's pre-training objective on in-domain text."""

import torch
from torchmetrics.text import Perplexity
from transformers import AutoModelForMaskedLM

from lightning_modules import adapters
from lightning_modules.adapters import LoraSettings
from lightning_modules.backbone import from_pretrained
from lightning_modules.encoder import EncoderModule


class MaskedLanguageModel(EncoderModule):
    """Trains `backbone` to predict masked tokens; logs `train/loss`, `val/loss`, `val/perplexity`.

    `val/perplexity` is exp of the mean loss over all masked validation tokens (token-weighted),
    and `val/acc` the share of masked tokens predicted exactly.

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
    """

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
    ):
        super().__init__()
        self.save_hyperparameters()
        model = from_pretrained(AutoModelForMaskedLM, backbone, "model",
                                trust_remote_code=trust_remote_code).train()
        # The MLM head's output projection is tied to the embeddings, so it is not made a LoRA
        # `modules_to_save` copy: with LoRA the head stays as pretrained.
        self.model = adapters.prepare(model, lora, freeze_embeddings, freeze_layers, heads=[],
                                      task_type=None)
        self.val_perplexity = Perplexity(ignore_index=-100)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.model(**batch).loss
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.model(**batch)
        labels = batch["labels"]
        masked = labels != -100
        self.val_perplexity.update(out.logits.float(), labels)
        correct = (out.logits.argmax(-1) == labels) & masked
        batch_size = labels.shape[0]
        self.log("val/loss", out.loss, prog_bar=True, sync_dist=True, batch_size=batch_size)
        self.log("val/perplexity", self.val_perplexity, prog_bar=True, batch_size=batch_size)
        self.log("val/acc", correct.sum() / masked.sum().clamp(min=1), sync_dist=True,
                 batch_size=batch_size)
