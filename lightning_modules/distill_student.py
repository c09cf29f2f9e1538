"""A student's shape: a backbone cut to chosen encoder layers (how DistilBERT started: every other
layer of BERT-base), and which teacher layer each student layer learns from."""

from torch import nn
from transformers import PreTrainedModel

from core.errors import UserError
from lightning_modules.adapters import encoder_stack


def check_keep_layers(layers: list[int], count: int) -> None:
    """Layers to keep out of `count`: one line saying what is wrong with them, if anything."""
    option = f"--model.keep_layers={layers}"
    if not layers:
        raise UserError(f"{option} keeps no layer: name at least one of 0-{count - 1}")
    outside = [i for i in layers if not 0 <= i < count]
    if outside:
        raise UserError(f"{option}: layer {outside[0]} is out of range: this backbone has {count} encoder "
                        f"layers, 0-{count - 1}")
    twice = sorted({i for i in layers if layers.count(i) > 1})
    if twice:
        raise UserError(f"{option} names layer {twice[0]} twice: each layer is kept once")
    if layers != sorted(layers):
        raise UserError(f"{option} is not in increasing order: layers keep their order, so list them "
                        f"as {sorted(layers)}")


def keep_layers(model: PreTrainedModel, layers: list[int]) -> PreTrainedModel:
    """`model` with only the encoder layers `layers` (0-based, increasing), in that order; with a
    fine-tuned teacher as the backbone, the student starts as a copy of the teacher cut to them."""
    stack = encoder_stack(model)
    check_keep_layers(layers, len(stack.layer))
    stack.layer = nn.ModuleList(stack.layer[i] for i in layers)
    model.config.num_hidden_layers = len(layers)
    return model


def uniform_map(student_layers: int, teacher_layers: int) -> list[int]:
    """Student layer j of m learns from teacher layer (j + 1) * n / m - 1: the last from the last."""
    return [max(0, (j + 1) * teacher_layers // student_layers - 1) for j in range(student_layers)]


def layer_map(chosen: list[int] | None, student_layers: int, teacher_layers: int,
              kept: list[int] | None = None) -> list[int]:
    """For each student layer, the teacher layer it learns from: `chosen`, checked; else, for a
    student cut from the teacher, the layers it `kept` (each learns from the layer it was copied
    from); else uniform."""
    if chosen is None:
        return list(kept) if kept is not None else uniform_map(student_layers, teacher_layers)
    option = f"--model.distill.layer_map={chosen}"
    if len(chosen) != student_layers:
        raise UserError(f"{option} has {len(chosen)} entries: expected one per student layer, "
                        f"{student_layers}")
    outside = [i for i in chosen if not 0 <= i < teacher_layers]
    if outside:
        raise UserError(f"{option}: teacher layer {outside[0]} is out of range: the teacher has "
                        f"{teacher_layers} layers, 0-{teacher_layers - 1}")
    return list(chosen)
