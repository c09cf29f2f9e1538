"""MaskedLanguageModel: continue BERT's pre-training objective on in-domain text."""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from peft import PeftModel
from torch import nn
from torchmetrics.text import Perplexity
from transformers import AutoModelForMaskedLM

from core.pretrained import from_pretrained
from lightning_modules import adapters
from lightning_modules.adapters import LoraSettings
from lightning_modules.base import EncoderModule, check_training_options


def split_head(model: nn.Module) -> tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor]] | None:
    """(encoder, head) of BERT-type and DistilBERT MLMs, whose head works on each position alone;
    None for other architectures, which then run their full forward."""
    hf_model = model.get_base_model() if isinstance(model, PeftModel) else model
    if hasattr(hf_model, "cls"):  # BertForMaskedLM: TinyBERT and MiniLM too
        return hf_model.base_model, hf_model.cls
    if hasattr(hf_model, "vocab_projector"):  # DistilBertForMaskedLM
        def head(hidden: torch.Tensor) -> torch.Tensor:
            hidden = hf_model.vocab_layer_norm(hf_model.activation(hf_model.vocab_transform(hidden)))
            return hf_model.vocab_projector(hidden)
        return hf_model.base_model, head
    return None


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
        compile: compile each encoder layer with `torch.compile` (see `EncoderModule`).
    """

    MONITOR = ("val/perplexity", "min")  # the metric the best checkpoint tracks

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
        model = from_pretrained(AutoModelForMaskedLM, backbone, "model",
                                trust_remote_code=trust_remote_code).train()
        # The MLM head's output projection is tied to the embeddings, so it is not made a LoRA
        # `modules_to_save` copy: with LoRA the head stays as pretrained.
        self.model = adapters.prepare(model, lora, freeze_embeddings, freeze_layers, heads=[],
                                      task_type=None)
        self.val_perplexity = Perplexity()

    def masked_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels of the masked positions only. The vocabulary projection is about a
        third of DistilBERT's MLM compute, and only ~15% of positions are masked."""
        labels = batch["labels"]
        masked = labels != -100
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        parts = split_head(self.model)
        if parts is None:
            return self.model(**inputs).logits[masked], labels[masked]
        encoder, head = parts
        hidden = encoder(**inputs).last_hidden_state
        return head(hidden[masked]), labels[masked]

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logits, targets = self.masked_logits(batch)
        loss = F.cross_entropy(logits, targets)
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits, targets = self.masked_logits(batch)
        self.val_perplexity.update(logits.float()[None], targets[None])
        batch_size = batch["labels"].shape[0]
        self.log("val/loss", F.cross_entropy(logits, targets), prog_bar=True, sync_dist=True,
                 batch_size=batch_size)
        self.log("val/perplexity", self.val_perplexity, prog_bar=True, batch_size=batch_size)
        correct = (logits.argmax(-1) == targets).sum()
        self.log("val/acc", correct / max(len(targets), 1), sync_dist=True, batch_size=batch_size)
