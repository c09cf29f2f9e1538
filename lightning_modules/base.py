"""What every task module shares: options checked on entry, the optimizer, regional compilation,
the parameter report, and checkpoints of what trains. Trainer-side concerns (RNG state, the
non-finite-loss stop, the gradient norm) are callbacks in `plugins/`."""

import logging
import os
from pathlib import Path

import torch
from lightning import LightningModule
from torch import nn
from torch._inductor.runtime.cache_dir_utils import default_cache_dir
from torchmetrics import Metric

from core.errors import UserError, at_least, check, some
from lightning_modules.adapters import encoder_layers
from lightning_modules.optim import adamw_with_warmup

log = logging.getLogger(__name__)

COMPILE_CACHE = ".cache/torch_compile"


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def check_training_options(learning_rate: float, weight_decay: float, warmup_ratio: float,
                           freeze_layers: int) -> None:
    """The options both task modules share, checked before any weights are loaded."""
    check("--model.learning_rate", learning_rate, 0 < learning_rate < 1, "a positive rate below 1")
    check("--model.weight_decay", weight_decay, 0 <= weight_decay < 1, "a value in [0, 1)")
    check("--model.warmup_ratio", warmup_ratio, 0 <= warmup_ratio < 1, "a fraction in [0, 1)")
    at_least("--model.freeze_layers", freeze_layers, 0)


def use_compile_cache() -> None:
    """Inductor's kernels in `COMPILE_CACHE` unless the user named a folder: importing Lightning
    already set $TORCHINDUCTOR_CACHE_DIR to torch's default (/tmp/torchinductor_<user>), so that
    value counts as unset."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR", default_cache_dir()) == default_cache_dir():
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(COMPILE_CACHE).resolve())


class EncoderModule(LightningModule):
    """Base for SequenceClassifier and MaskedLanguageModel; subclasses set `self.model`.

    When part of the backbone is frozen (LoRA, frozen layers), checkpoints hold only the
    trainable weights: the rest is the pretrained backbone, rebuilt from the config on load.
    """

    model: nn.Module
    MONITOR: tuple[str, str]  # (metric, mode) the best checkpoint tracks, e.g. ("val/acc", "max")

    def configure_model(self) -> None:
        """With `compile`, each encoder layer is compiled in place (regional compilation): the
        layers share one compiled graph per input shape, so compiling costs one layer's time,
        not the whole model's, and weight names and checkpoints stay as they are. Packed batches
        come in a few lengths (`data.packed_length_multiple`), so few graphs are compiled; the
        compiled kernels are cached in `.cache/torch_compile` (or $TORCHINDUCTOR_CACHE_DIR), so a
        second run of the same model starts in seconds."""
        if self.hparams.compile:
            use_compile_cache()
            for layer in encoder_layers(self.model):
                layer.compile()

    def trainable_state_keys(self) -> set[str]:
        """The model's trainable weights, and those a task trains beside it (a distillation's
        projection)."""
        return {name for name, p in self.named_parameters() if p.requires_grad}

    @property
    def partly_frozen(self) -> bool:
        total, trainable = parameter_counts(self.model)
        return trainable < total

    def on_fit_start(self) -> None:
        total, trainable = parameter_counts(self.model)
        log.info("parameters: %s total, %s trainable (%.2f%%)",
                 f"{total:,}", f"{trainable:,}", 100 * trainable / total)
        if self.logger is not None:
            self.logger.log_metrics({"params/total": total, "params/trainable": trainable,
                                     "params/trainable_fraction": trainable / total}, step=0)

    def on_validation_epoch_start(self) -> None:
        self.fresh_metric_states()

    def on_test_epoch_start(self) -> None:
        self.fresh_metric_states()

    def fresh_metric_states(self) -> None:
        """Every torchmetrics state starts the evaluation as an ordinary tensor: one made under
        `validate`'s inference mode could not be updated in place by `fit`'s validation."""
        with torch.inference_mode(False):
            for metric in self.modules():
                if isinstance(metric, Metric):
                    metric.reset()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self.partly_frozen:
            keep = self.trainable_state_keys()
            checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in keep}

    def misfit(self, saved: dict) -> str | None:
        """Why the checkpoint weights `saved` do not fit this model (a weight it lacks of those
        that train, one it does not have, one of another shape); None when they fit. Frozen
        weights may be absent: they are the pretrained backbone's."""
        own = self.state_dict()
        unknown = sorted(set(saved) - set(own))
        missing = sorted(self.trainable_state_keys() - set(saved))
        resized = sorted(k for k in set(saved) & set(own) if saved[k].shape != own[k].shape)
        if unknown:
            return f"unexpected weight {some(unknown)}"
        if missing:
            return f"missing weight {some(missing)}"
        if resized:
            return (f"weight '{resized[0]}' has shape {tuple(saved[resized[0]].shape)}, "
                    f"this model {tuple(own[resized[0]].shape)}")
        return None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """A lean checkpoint is completed with this model's own frozen weights (the pretrained
        backbone it was rebuilt from), so every load is strict; one that misses a weight that
        trains, or does not fit, is refused in one line."""
        saved = checkpoint["state_dict"]
        problem = self.misfit(saved)
        if problem:
            raise UserError(f"checkpoint does not fit this model ({problem}); was it saved with "
                            "another backbone, task, label set or LoRA setting?")
        frozen = {key: value for key, value in self.state_dict().items() if key not in saved}
        checkpoint["state_dict"] = {**frozen, **saved}

    def configure_optimizers(self):
        hp = self.hparams
        return adamw_with_warmup(self, hp.learning_rate, hp.weight_decay, hp.warmup_ratio,
                                 self.schedule_steps, mixed_precision="mixed" in str(self.trainer.precision))

    def schedule_steps(self) -> int:
        """Optimizer steps the learning-rate schedule spans (asked at its first step): the run's."""
        return int(self.trainer.estimated_stepping_batches)

