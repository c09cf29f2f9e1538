"""Where a run's files go when it has no run folder of its own, and a run folder that holds no run:
the documented `logs/<config>/version_0/...` paths hold only if a fit that fails before its first
step (a dataset that does not load, a bad file) leaves no `version_0` behind."""

import logging
import shutil
from pathlib import Path

from jsonargparse import Namespace
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers.logger import DummyLogger

log = logging.getLogger(__name__)

UNLOGGED = Path("logs") / "unlogged"


def keep_unlogged_runs_under_logs(trainer: Namespace) -> None:
    """A run without a logger (`--trainer.logger false`, or `fast_dev_run`, which swaps it for a
    dummy) writes its checkpoints, config and export under `logs/unlogged/`, not into the working
    directory (the repository's root, where a 270 MB `checkpoints/last.ckpt` landed)."""
    if (not trainer.logger or trainer.fast_dev_run) and not trainer.default_root_dir:
        trainer.default_root_dir = str(UNLOGGED)


def has_run_folder(trainer: Trainer) -> bool:
    return trainer.logger is not None and not isinstance(trainer.logger, DummyLogger)


class RemoveRunFailedBeforeTraining(Callback):
    """A fit that fails before its first optimizer step (and resumes nothing) removes the run
    folder it claimed, so the next run of the config takes that `version_N` again."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if (trainer.state.fn != "fit" or trainer.global_step or trainer.ckpt_path
                or not trainer.is_global_zero or not has_run_folder(trainer)):
            return
        folder = Path(trainer.log_dir)
        if folder.is_dir() and not any(folder.glob("checkpoints/*.ckpt")):
            shutil.rmtree(folder)
            log.info("removed %s: the run stopped before its first step", folder)
