"""How the callbacks that configs/defaults.yaml adds to every run follow the run: a switch that
turns one off wins, and the best checkpoint tracks the task's own metric."""

import importlib

from jsonargparse import Namespace
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, TQDMProgressBar


def named_class(class_path: str) -> type:
    module_name, class_name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)


def drop_callbacks_switched_off(trainer: Namespace, subcommand: str | None = "fit") -> None:
    """The progress bar, checkpoints and learning-rate monitor of the defaults, which Lightning
    refuses once their switch is off (`enable_progress_bar`, `enable_checkpointing`, `logger`);
    checkpoints outside `fit` too, where they save nothing and only warn that a checkpoint read
    from another run folder holds another folder's state."""
    no_checkpoints = trainer.enable_checkpointing is False or subcommand not in ("fit", None)
    off = [kind for kind, switched_off in ((TQDMProgressBar, trainer.enable_progress_bar is False),
                                           (ModelCheckpoint, no_checkpoints),
                                           (LearningRateMonitor, not trainer.logger)) if switched_off]
    trainer.callbacks = [c for c in trainer.callbacks or [] if not (
        isinstance(c, Namespace) and issubclass(named_class(c.class_path), tuple(off)))]


def follow_task_monitor(config: Namespace) -> None:
    """A checkpoint callback without a `monitor` tracks the task's own metric (`MONITOR` of the
    model class: val/acc for classifiers, val/perplexity for MLM), so one callback list in
    configs/defaults.yaml serves every task."""
    task = named_class(config.model.class_path)
    if not hasattr(task, "MONITOR"):  # a module of the user's own: its checkpoints keep the last
        return
    metric, mode = task.MONITOR
    for callback in config.trainer.callbacks or []:
        args = callback.get("init_args")
        if issubclass(named_class(callback.class_path), ModelCheckpoint) and args \
                and args.save_top_k != 0 and args.monitor is None:
            args.monitor, args.mode = metric, mode
