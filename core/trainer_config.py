"""The Trainer's options as a config gives them: where CUDA is absent, a GPU config runs on the
CPU; and the checks of options Lightning takes without a word (0 epochs, a negative clip)."""

import torch
from jsonargparse import Namespace
from lightning.pytorch.utilities import rank_zero_warn

from core.bf16 import cpu_bf16_faster
from core.errors import at_least, check


def fall_back_to_cpu(trainer: Namespace) -> None:
    """Where CUDA is absent, run a GPU config on the CPU with one warning instead of failing;
    on the CPU, float16 mixed precision becomes bfloat16 mixed precision where the CPU computes
    bfloat16 natively (AVX-512 BF16 or AMX, as measured: `core.bf16`), else 32-true."""
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
        native = cpu_has_native_bfloat16()
        trainer.precision = "bf16-mixed" if native else "32-true"
        changed.append(f"precision={trainer.precision} (this CPU "
                       f"{'computes' if native else 'has no'} native bfloat16)")
    if changed:
        rank_zero_warn(f"no CUDA device in use: running with {', '.join(changed)}")


def cpu_has_native_bfloat16() -> bool:
    """AVX-512 BF16 or AMX: bfloat16 matrix products faster than float32's, measured on this CPU
    (`core.bf16`: oneDNN's own flag says yes on CPUs that emulate bf16, several times slower)."""
    return torch.backends.mkldnn.is_available() and cpu_bf16_faster()


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
