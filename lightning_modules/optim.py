"""AdamW with the BERT recipe: no weight decay on biases and LayerNorm, warmup then linear decay."""

import torch
from torch import nn
from transformers import get_linear_schedule_with_warmup


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters: matrices decay, biases and normalisation weights do not."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if not param.requires_grad:
                continue
            if name == "bias" or isinstance(module, nn.LayerNorm):
                no_decay.append(param)
            else:
                decay.append(param)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def adamw_with_warmup(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    warmup_ratio: float,
    total_steps: int,
):
    """The optimizer and a per-step scheduler in the dict form Lightning expects."""
    fused = next(model.parameters()).is_cuda
    optimizer = torch.optim.AdamW(
        parameter_groups(model, weight_decay), lr=learning_rate, fused=fused or None
    )
    warmup = int(warmup_ratio * total_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"},
    }
