"""A student's shape: a backbone cut to chosen encoder layers (how DistilBERT started: every other
layer of BERT-base), and which teacher layer each student layer learns from."""

from torch import nn
from transformers import PreTrainedModel

from core.errors import UserError, check
from lightning_modules.adapters import encoder_stack


def keep_layers(model: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """`model` with only the encoder layers `layers` (0-based, increasing), in that order; with a
    fine-tuned teacher as the backbone, the student starts as a copy of the teacher cut to them."""
    stack = encoder_stack(model)
    count = len(stack.layer)
    check("--model.keep_layers", layers, bool(layers) and layers == sorted(set(layers))
          and all(0 <= i < count for i in layers),
          f"increasing layer indices in 0-{count - 1} (this backbone has {count} encoder layers)")
    stack.layer = nn.ModuleList(stack.layer[i] for i in layers)
    model.config.num_hidden_layers = len(layers)
    return model


def uniform_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer j of m learns from teacher layer (j + 1) * n / m - 1: the last from the last."""
    return [max(0, (j + 1) * teacher_layers // student_layers - 1) for j in range(student_layers)]


def layer_map(chosen: list[int] | None, student_layers: int, teacher_layers: int) -> list[int]:
    """For each student layer, the teacher layer it learns from: `chosen`, checked, or uniform."""
    if chosen is None:
        return uniform_map(student_layers, teacher_layers)
    if len(chosen) != student_layers or not all(0 <= i < teacher_layers for i in chosen):
        raise UserError(f"--model.distill.layer_map={chosen} is out of range: expected {student_layers} "
                        f"teacher layer indices (one per student layer), each in 0-{teacher_layers - 1}")
    return list(chosen)
