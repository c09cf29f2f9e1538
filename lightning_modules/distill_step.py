"""A distillation's training step: the student and its teacher on the same batch, the weighted
losses of `DistillSettings`, and on test the teacher's accuracy and the student's agreement with it
(how close the exported student is to the model it came from)."""

from pathlib import Path

import torch
from lightning import LightningModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from core.batches import UNLABELLED, num_texts
from core.errors import UserError
from lightning_modules.adapters import body
from lightning_modules.distill_capture import (
    EMBEDDINGS,
    Recorded,
    per_text,
    real_tokens,
    recording,
    text_spans,
)
from lightning_modules.distill_losses import (
    attention_loss,
    attention_scores,
    hidden_loss,
    label_loss,
    logit_loss,
    minilm_loss,
)
from lightning_modules.distill_run import stamp
from lightning_modules.distill_settings import INTERMEDIATE, DistillSettings
from lightning_modules.distill_student import layer_map
from lightning_modules.distill_teacher import Teacher


class Distiller(nn.Module):
    """What a distillation adds to a classifier: its teacher (outside the module tree), the layer
    map, and the projection of the student's hidden states to the teacher's width (trained with
    the student and kept in its checkpoints; not part of the export)."""

    def __init__(self, folder: Path, settings: DistillSettings, student: nn.Module, num_labels: int,
                 trust_remote_code: bool, kept: list[int] | None = None):
        super().__init__()
        self.settings = settings
        self.teacher = Teacher(folder, trust_remote_code)
        ours, theirs = body(student).config, self.teacher.config
        self.layers = ours.num_hidden_layers
        # a student cut from the teacher (`kept`: its layers) learns each layer from its original
        self.teacher_layers = layer_map(settings.layer_map, self.layers, theirs.num_hidden_layers, kept)
        self.heads = ours.num_attention_heads
        if settings.attention_weight and theirs.num_attention_heads != self.heads:
            raise UserError(f"the attention-score loss compares heads one to one, but the student has "
                            f"{self.heads} and the teacher {theirs.num_attention_heads}; set "
                            "--model.distill.attention_weight 0")
        widths = (ours.hidden_size, theirs.hidden_size)
        self.relation_heads = settings.relation_heads or self.heads
        for who, width in zip(("student", "teacher"), widths):
            if settings.minilm_weight and width % self.relation_heads:
                raise UserError(f"the MiniLM loss splits both models' attention into {self.relation_heads} "
                                f"relation heads, which do not divide the {who}'s width {width}: set "
                                "--model.distill.relation_heads to a divisor of both widths "
                                f"({widths[0]} and {widths[1]})")
        self.projection = (nn.Linear(*widths) if settings.hidden_weight and widths[0] != widths[1]
                           else nn.Identity())
        self.teacher_acc = MulticlassAccuracy(num_labels, average="micro")
        self.agreement = MulticlassAccuracy(num_labels, average="micro")
        self.teacher_time: tuple | None = None  # (start, end) stamps of this step's teacher pass

    def stage_steps(self, total: int, epoch: int, max_epochs: int) -> int:
        """Of a run's `total` optimizer steps, those of the stage `epoch` is in."""
        first = self.settings.intermediate_epochs
        epochs = first if epoch < first else max_epochs - first
        return max(1, total * epochs // max_epochs)

    def weights_at(self, epoch: int) -> dict[str, float]:
        """The loss weights of this epoch: under two stages, the intermediate losses first."""
        weights = self.settings.weights()
        if self.settings.intermediate_epochs:
            first = epoch < self.settings.intermediate_epochs
            weights = {name: w if (name in INTERMEDIATE) == first else 0.0
                       for name, w in weights.items()}
        return weights

    def training_step(self, module: LightningModule, batch: dict) -> torch.Tensor:
        """The student's loss on `batch`; the teacher runs on the same batch unless its cached
        logits are all this step reads."""
        cached = batch.pop("teacher_logits", None)  # where `datamodules.teacher_logits` cached them
        weights = self.weights_at(module.current_epoch)
        reads = [bool(weights[name]) for name in INTERMEDIATE]
        with recording(module.model, *self.recorded(list(range(self.layers)), *reads)) as student:
            logits = module.outputs(batch, with_loss=False).logits
        teacher, teacher_logits = None, cached
        needs_logits = weights["logit"] or bool((batch["labels"] == UNLABELLED).any())
        if any(reads) or (cached is None and needs_logits):
            like = next(module.model.parameters())
            start = stamp(like.device)
            with recording(self.teacher.model, *self.recorded(self.teacher_layers, *reads)) as teacher:
                teacher_logits = self.teacher.logits(batch, like)
            self.teacher_time = (start, stamp(like.device))
        terms = self.losses(weights, logits, batch, teacher_logits, student, teacher)
        loss = sum(weights[name] * value for name, value in terms.items())
        # every trained parameter in the graph, a stage's unused ones at weight 0: DDP without
        # find_unused_parameters needs a gradient for each (the head in stage 1, the projection in 2)
        loss = loss + 0.0 * (logits.sum() + sum(p.sum() for p in self.projection.parameters()))
        texts = num_texts(batch)
        module.log_dict({f"distill/{name}": value for name, value in terms.items()}, batch_size=texts)
        module.log("train/loss", loss, prog_bar=True, batch_size=texts)
        return loss

    @staticmethod
    def recorded(layers: list[int], hidden: bool, attention: bool, minilm: bool) -> tuple[list, list, list]:
        """`recording`'s layers for a model whose mapped layers are `layers`: all of them for the
        hidden and attention losses, the last one's queries, keys and values for MiniLM's."""
        mapped, last = sorted(set(layers)), [layers[-1]] if minilm else []
        return mapped if hidden else [], sorted(set(mapped if attention else []) | set(last)), last

    def losses(self, weights: dict, logits: torch.Tensor, batch: dict, teacher_logits, student: Recorded,
               teacher: Recorded | None) -> dict:
        """Each loss whose weight is above 0 this epoch, unweighted."""
        terms = {}
        if weights["label"]:
            terms["label"] = label_loss(logits, batch["labels"], teacher_logits)
        if weights["logit"]:
            terms["logit"] = logit_loss(logits, teacher_logits, self.settings.temperature)
        spans = text_spans(batch) if any(weights[name] for name in INTERMEDIATE) else []
        if weights["hidden"]:
            pairs = [(EMBEDDINGS, EMBEDDINGS), *enumerate(self.teacher_layers)]
            terms["hidden"] = hidden_loss([real_tokens(student.hidden[j], spans) for j, _ in pairs],
                                          [real_tokens(teacher.hidden[i], spans) for _, i in pairs],
                                          self.projection)
        if weights["attention"]:
            terms["attention"] = attention_loss(self.scores(student, range(self.layers), spans),
                                                self.scores(teacher, self.teacher_layers, spans))
        if weights["minilm"]:
            terms["minilm"] = minilm_loss(self.projected(student, self.layers - 1, spans),
                                          self.projected(teacher, self.teacher_layers[-1], spans),
                                          self.relation_heads)
        return terms

    def scores(self, seen: Recorded, layers, spans: list) -> list[torch.Tensor]:
        """Each text's attention scores in each of `layers`, in that order."""
        return [attention_scores(query, key, self.heads) for i in layers
                for query, key in zip(per_text(seen.queries[i], spans), per_text(seen.keys[i], spans))]

    @staticmethod
    def projected(seen: Recorded, layer: int, spans: list) -> tuple[list, list, list]:
        """Each text's queries, keys and values in `layer`."""
        return tuple(per_text(states[layer], spans) for states in (seen.queries, seen.keys, seen.values))

    def compare(self, module: LightningModule, batch: dict, logits: torch.Tensor) -> None:
        """On test: the teacher's accuracy on the same texts, and how often the student agrees with it."""
        teacher_logits = self.teacher.logits(batch, next(module.model.parameters()))
        self.teacher_acc.update(teacher_logits, batch["labels"])
        self.agreement.update(logits, teacher_logits.argmax(-1))
        module.log_dict({"test/teacher_acc": self.teacher_acc, "test/agreement": self.agreement})
