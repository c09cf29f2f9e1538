"""What a distillation does around its steps (a callback the classifier hands the Trainer): the
two-stage plan checked against the run, the teacher's logits cached once where they are all the
student reads, and the teacher's share of the step time logged."""

import logging
import time

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.fabric.utilities.apply_func import move_data_to_device
from torch.utils.data import DataLoader

from core.errors import UserError

log = logging.getLogger(__name__)


def stamp(device: torch.device):
    """A point in time: a recorded CUDA event on a GPU (read later, so no step waits for the GPU
    queue to drain), the wall clock elsewhere."""
    if device.type != "cuda":
        return time.perf_counter()
    event = torch.cuda.Event(enable_timing=True)
    event.record()
    return event


def seconds(start, end) -> float:
    if isinstance(start, float):
        return end - start
    end.synchronize()
    return start.elapsed_time(end) / 1000


class DistillRun(Callback):
    """Runs beside the classifier that holds `distiller` (`lightning_modules.distill_step`)."""

    def __init__(self, distiller):
        self.distiller = distiller
        self.step_start = None

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        settings = self.distiller.settings
        stages = settings.intermediate_epochs
        if stages and trainer.max_epochs is not None and 0 <= trainer.max_epochs <= stages:
            raise UserError(f"--model.distill.intermediate_epochs={stages} leaves no epoch of the second "
                            f"stage in --trainer.max_epochs={trainer.max_epochs}: set fewer or train longer")
        data = trainer.datamodule
        options = getattr(data, "hparams", None)
        positions = self.distiller.teacher.config.max_position_embeddings
        max_length = getattr(options, "max_length", None)
        if max_length and max_length > positions:
            raise UserError(f"--data.max_length={max_length} is past the teacher's {positions} positions "
                            f"({self.distiller.teacher.folder}): the teacher reads the student's batch; "
                            f"set --data.max_length {positions} or less")
        log.info("distilling from %s: %s", self.distiller.teacher.folder, ", ".join(
            f"{name} weight {weight:g}" for name, weight in settings.weights().items() if weight))
        add = getattr(data, "add_teacher_logits", None)
        # the cached logits are read by the logit loss, and by the label loss for unlabelled texts
        read = settings.logit_weight or getattr(options, "unlabelled", None)
        if settings.logits_only and read and add is not None:
            add(str(self.distiller.teacher.folder), str(trainer.precision),
                lambda loader: self.teacher_logits(loader, trainer, pl_module))
        if stages:  # an early stop inside stage 1 would leave the head untrained
            trainer.fit_loop.min_epochs = max(trainer.fit_loop.min_epochs or 0, stages + 1)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Stage 2 starts with an AdamW and a schedule of its own (warm-up and decay over its own
        epochs), as TinyBERT trains each stage; early stopping starts counting anew."""
        stages = self.distiller.settings.intermediate_epochs
        if not stages or trainer.current_epoch != stages:
            return
        trainer.strategy.setup_optimizers(trainer)
        for stopper in trainer.early_stopping_callbacks:
            stopper.wait_count = 0
            stopper.best_score = torch.tensor(torch.inf if stopper.mode == "min" else -torch.inf)
        log.info("stage 2 of 2 (labels and logits): a new AdamW and learning-rate schedule")

    def teacher_logits(self, loader: DataLoader, trainer: Trainer, pl_module: LightningModule) -> np.ndarray:
        """[texts, labels] in the loader's order, on the run's device and in its precision."""
        like = next(pl_module.model.parameters())
        logits = []
        with trainer.precision_plugin.forward_context():
            for batch in loader:
                batch = move_data_to_device(batch, like.device)
                logits.append(self.distiller.teacher.logits(batch, like).float().cpu())
        return torch.cat(logits).numpy()

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int
                             ) -> None:
        self.distiller.teacher_time = None
        self.step_start = stamp(pl_module.device)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        """The teacher's share of this step (forward, backward and optimizer), on logging steps
        where the teacher ran live."""
        teacher = self.distiller.teacher_time
        if teacher is None or (batch_idx + 1) % trainer.log_every_n_steps:
            return
        step = seconds(self.step_start, stamp(pl_module.device))
        pl_module.log("distill/teacher_share", seconds(*teacher) / step, rank_zero_only=True)
