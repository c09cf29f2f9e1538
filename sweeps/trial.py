"""One trial: an ordinary `train.py fit` run in this process, with the trial's options and the
reporter; the search's and the seed runs' objectives."""

import gc
import os
import socket
import time
from pathlib import Path

import optuna
import torch
from lightning.pytorch.utilities.exceptions import SIGTERMException

from sweeps.reporter import TrialReporter
from sweeps.spec import Param, Sweep, Value, cli_value, trial_options
from train import main


class TrialInterrupted(Exception):
    """SIGTERM or Ctrl-C stopped a trial: Optuna records it as failed, the sweep retries it from
    its last.ckpt when it is run again."""


def suggest(trial: optuna.Trial, key: str, param: Param) -> Value:
    if param.type == "categorical":
        return trial.suggest_categorical(key, param.choices)
    if param.type == "int":
        return trial.suggest_int(
            key, int(param.low), int(param.high), log=param.log, step=int(param.step or 1)
        )
    return trial.suggest_float(key, param.low, param.high, log=param.log, step=param.step)


def resume_checkpoint(trial: optuna.Trial) -> Path | None:
    """A retried trial (interrupted, or its worker died) goes on from its run's last.ckpt."""
    run_dir = trial.user_attrs.get("run_dir")
    last = Path(run_dir) / "checkpoints" / "last.ckpt" if run_dir else None
    return last if last is not None and last.is_file() else None


def interruption(stop: SystemExit) -> str | None:
    """What stopped a fit that ended in SystemExit: Lightning raises one of its own on SIGTERM, and
    exits while it handles Ctrl-C's KeyboardInterrupt; any other exit is a failure, not a stop."""
    if isinstance(stop, SIGTERMException):
        return "SIGTERM"
    return "Ctrl-C" if isinstance(stop.__context__, KeyboardInterrupt) else None


def run_fit(
    sweep: Sweep,
    trial: optuna.Trial,
    params: dict[str, Value],
    name: str,
    multiple: int,
    *,
    seed: int | None,
    test: bool,
    prune: bool,
) -> tuple[float, dict[str, float]]:
    """(best objective over the run's validations, test metrics of its best checkpoint)."""
    reporter = TrialReporter(trial, sweep.objective, sweep.maximize, prune=prune,
                             every_texts=sweep.validate_every_texts, multiple=multiple,
                             validations_per_epoch=sweep.validations_per_epoch)
    resume = resume_checkpoint(trial)
    args = [
        "fit",
        *trial_options(sweep),
        *(f"--{key}={cli_value(value)}" for key, value in params.items()),
        *([f"--seed_everything={seed}"] if seed is not None else []),
        "--trainer.logger.init_args.save_dir",
        str(sweep.folder),
        "--trainer.logger.init_args.name",
        name,
        f"--test_after_fit={str(test).lower()}",
        *(["--ckpt_path", str(resume)] if resume else []),
    ]
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    if resume:
        trial.set_user_attr("resumed_from", str(resume))
    started = time.perf_counter()
    try:
        cli = main(args, callbacks=[reporter])
        metrics = {
            key: float(value)
            for key, value in cli.trainer.callback_metrics.items()
            if key.startswith("test/")
        }
        del cli
    except SystemExit as stop:
        how = interruption(stop)
        if how is None:
            raise RuntimeError(f"the run exited with status {stop.code}") from stop
        trial.set_user_attr("interrupted", how)
        raise TrialInterrupted(how) from stop
    finally:
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        trial.set_user_attr("texts", reporter.texts)
        if reporter.first_step_s is not None:
            trial.set_user_attr("first_step_s", round(reporter.first_step_s, 2))
        gc.collect()  # nothing of this trial's model, data or optimizer stays for the next one
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if reporter.best is None:
        raise RuntimeError("the trial ended without a validation: no objective to report")
    return reporter.best, metrics


class SearchObjective:
    """A trial of the search: the sampler's values for the sweep's parameters."""

    def __init__(self, sweep: Sweep, multiple: int):
        self.sweep, self.multiple = sweep, multiple
        self.number: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.number = trial.number
        params = {key: suggest(trial, key, param) for key, param in self.sweep.params.items()}
        value, test = run_fit(
            self.sweep,
            trial,
            params,
            f"trial_{trial.number:03d}",
            self.multiple,
            seed=None,
            test=self.sweep.test_trials,
            prune=self.sweep.pruner != "none",
        )
        if test:
            trial.set_user_attr("test", test)
        return value


class SeedObjective:
    """A seed run: a configuration fixed when it was enqueued (its params and seed in the trial's
    user attributes), tested after fit; never pruned."""

    def __init__(self, sweep: Sweep, multiple: int):
        self.sweep, self.multiple = sweep, multiple
        self.number: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.number = trial.number
        config, seed = trial.user_attrs["config"], trial.user_attrs["seed"]
        value, test = run_fit(
            self.sweep,
            trial,
            trial.user_attrs["params"],
            f"seeds/{config}/seed_{seed}",
            self.multiple,
            seed=seed,
            test=True,
            prune=False,
        )
        trial.set_user_attr("test", test)
        return value
