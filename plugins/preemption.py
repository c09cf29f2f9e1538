"""Preemption: the exact mid-epoch state is saved when a cluster sends SIGTERM."""

import logging
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


class CheckpointOnSigterm(Callback):
    """On SIGTERM (what clusters send before they kill a job) Lightning stops once the current
    step is done; this writes that exact mid-epoch state to `last.ckpt`, so resuming with
    `--ckpt_path last` loses nothing."""

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        checkpoint = trainer.checkpoint_callback
        if not isinstance(exception, SIGTERMException) or checkpoint is None or not trainer.training:
            return
        path = Path(checkpoint.dirpath) / f"{checkpoint.CHECKPOINT_NAME_LAST}{checkpoint.FILE_EXTENSION}"
        trainer.save_checkpoint(path)
        log.warning("SIGTERM: saved the state after step %d to %s", trainer.global_step, path)
