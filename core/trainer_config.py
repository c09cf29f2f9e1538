"""The Trainer's options as a config gives them: where CUDA is absent, a GPU config runs on the
CPU; and the checks of options Lightning takes without a word (0 epochs, a negative clip)."""

import torch
from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_warn

from core.cpu_precision import cpu_precision
from core.errors import at_least, check


def fall_back_to_cpu(trainer: Namespace, backbone: str | None, length: int,
                     trust_remote_code: bool = False) -> None:
    """Where CUDA is absent, run a GPU config on the CPU with one warning instead of failing;
    on the CPU, float16 mixed precision becomes bf16-mixed where this CPU steps the backbone at
    `length` tokens faster in it (measured: `core.cpu_precision`), else 32-true. A precision
    given as anything but 16-bit is obeyed."""
    changed = []
    if trainer.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        trainer.accelerator = "cpu"
        changed.append("accelerator=cpu")
        if trainer.devices not in ("auto", 1, "1"):
            trainer.devices = 1
            changed.append("devices=1")
        strategy = trainer.strategy
        name = strategy.class_path if isinstance(strategy, Namespace) else str(strategy)
        if "ddp" in name.lower() or "fsdp" in name.lower():
            trainer.strategy = "auto"
            changed.append("strategy=auto")
    on_cpu = trainer.accelerator == "cpu" or not torch.cuda.is_available()
    if on_cpu and str(trainer.precision) in ("16-mixed", "16", "16-true"):
        if backbone is None or not torch.backends.mkldnn.is_available():
            trainer.precision, why = "32-true", "no oneDNN bf16 kernels to measure"
        else:
            trainer.precision, why = cpu_precision(backbone, length, trust_remote_code)
        changed.append(f"precision={trainer.precision} ({why})")
    if changed:
        rank_zero_warn(f"no CUDA device in use: running with {', '.join(changed)}")


def check_trainer_options(trainer: Namespace) -> None:
    """The Trainer options that Lightning takes silently and then fails on, or trains nothing
    with, refused in one line before any work starts; the values it refuses itself (a negative
    max_epochs, limit_*_batches out of range, val_check_interval above 1) it names clearly."""
    at_least("--trainer.accumulate_grad_batches", trainer.accumulate_grad_batches, 1)
    at_least("--trainer.log_every_n_steps", trainer.log_every_n_steps, 1, optional=True)
    check("--trainer.max_epochs", trainer.max_epochs, trainer.max_epochs != 0, "an integer >= 1, or -1")
    check("--trainer.max_steps", trainer.max_steps, trainer.max_steps != 0, "an integer >= 1, or -1")
    clip = trainer.gradient_clip_val
    check("--trainer.gradient_clip_val", clip, clip is None or clip >= 0, "a number >= 0, or null")
    interval = trainer.val_check_interval
    check("--trainer.val_check_interval", interval, not isinstance(interval, (int, float)) or interval > 0,
          "a fraction of an epoch in (0, 1] or a number of batches >= 1")
