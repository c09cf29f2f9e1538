"""The Trainer plug-in a sweep adds to each trial: it reports the objective to Optuna and prunes."""

import logging
import time
from pathlib import Path

import optuna
from lightning import Callback, LightningModule, Trainer

from core.batches import num_texts
from core.errors import UserError

log = logging.getLogger(__name__)


class TrialReporter(Callback):
    """Reports the objective to the trial at every validation, at the number of training texts
    seen so far as the step; raises `optuna.TrialPruned` when the pruner says so (Lightning tears
    the run down: no test, no export). Its count of texts is saved in checkpoints, so a resumed
    trial reports on the same scale. Single-device trials only (checked with the sweep file).

    Validations fall every `every_texts` training texts of an epoch, a multiple of every batch
    size of the sweep (`multiple`); unset, the largest such multiple that gives at least
    `validations_per_epoch` an epoch. Every batch of an epoch but its last is full, so every trial
    reports at the same steps, epoch after epoch: Optuna's pruners compare only those. (Where the
    interval is one batch, the epoch's last, partial batch is validated too, but not reported.)"""

    def __init__(self, trial: optuna.Trial, objective: str, maximize: bool, prune: bool = True,
                 every_texts: int | None = None, multiple: int = 1, validations_per_epoch: int = 1):
        self.trial, self.objective, self.maximize, self.prune = trial, objective, maximize, prune
        self.every_texts, self.multiple = every_texts, multiple
        self.validations_per_epoch = validations_per_epoch
        self.texts = 0
        self.best: float | None = None
        self.pruned_at: int | None = None
        self.started = time.perf_counter()
        self.first_step_s: float | None = None
        self.run_dir: Path | None = None
        self.partial_last_batch = False

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.run_dir = Path(trainer.log_dir or trainer.default_root_dir)
        self.trial.set_user_attr("run_dir", str(self.run_dir))  # where a retry finds last.ckpt

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Lightning has just set the validation interval from the config: ours replaces it (here
        for a run resumed mid-epoch, which starts no epoch)."""
        self.set_interval(trainer)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Again where Lightning reloads the training data each epoch (and sets it anew)."""
        self.set_interval(trainer)

    def set_interval(self, trainer: Trainer) -> None:
        loader = trainer.train_dataloader
        texts, batch = len(loader.dataset), loader.batch_size
        every = self.every_texts or max(
            self.multiple, texts // self.validations_per_epoch // self.multiple * self.multiple)
        if every > texts:
            raise UserError(f"sweep: a validation every {every} training texts (a multiple of every "
                            f"batch size, {self.multiple}) never comes in an epoch of {texts} texts: "
                            "set validate_every_texts lower, or train on more texts")
        trainer.val_check_batch = every // batch
        # the fraction of an epoch, as Lightning's checkpoint callbacks read it: below 1.0 they
        # save after each validation rather than at the epoch's end
        trainer.val_check_interval = every / texts
        self.partial_last_batch = texts % batch != 0

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int
    ) -> None:
        if self.first_step_s is None:
            self.first_step_s = time.perf_counter() - self.started

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx
    ) -> None:
        self.texts += num_texts(batch)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or (
                self.partial_last_batch and trainer.fit_loop.epoch_loop.batch_progress.is_last_batch):
            return
        value = trainer.callback_metrics.get(self.objective)
        if value is None:
            logged = sorted(k for k in trainer.callback_metrics if k.startswith("val/"))
            raise UserError(
                f"sweep objective {self.objective!r} was not logged: the task logs "
                f"{', '.join(logged) or 'no validation metric'}"
            )
        value = float(value)
        if self.best is None or (value > self.best if self.maximize else value < self.best):
            self.best = value
        self.trial.report(value, self.texts)
        if self.prune and self.trial.should_prune():
            self.pruned_at = self.texts
            log.info(
                "trial %d pruned after %d training texts: %s %.4f",
                self.trial.number,
                self.texts,
                self.objective,
                value,
            )
            raise optuna.TrialPruned(f"{self.objective} {value:.4f} after {self.texts} training texts")

    def state_dict(self) -> dict:
        return {"texts": self.texts, "best": self.best}

    def load_state_dict(self, state_dict: dict) -> None:
        self.texts, self.best = state_dict["texts"], state_dict["best"]
