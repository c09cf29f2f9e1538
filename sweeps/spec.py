"""A sweep file: what to search, how and how far, in train.py's own option keys; every key and
range is checked against train.py's parser before the first trial starts."""

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from core.config_files import check_mappings
from core.errors import UserError

Value = int | float | str | bool | None


@dataclass
class Param:
    """One searched option of `train.py fit`, by its CLI key.

    Args:
        type: float or int (a range from low to high), or categorical (one of choices)
        low: lowest value of a range
        high: highest value of a range
        log: sample the range on a log scale (learning rates)
        step: spacing of the values in the range (none: any value)
        choices: the values of a categorical parameter
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Value] | None = None

    def distribution(self, key: str) -> BaseDistribution:
        """Optuna's own distribution, whose checks of the range name the parameter here."""
        try:
            if self.type == "categorical":
                if not self.choices:
                    raise ValueError("a categorical parameter needs a non-empty list of choices")
                return CategoricalDistribution(self.choices)
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs low and high")
            if self.type == "int":
                if self.low != int(self.low) or self.high != int(self.high):
                    raise ValueError(
                        f"an int parameter needs whole low and high, got {self.low} and {self.high}"
                    )
                return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
            return FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        except ValueError as err:
            raise UserError(f"sweep parameter {key}: {err}") from None

    def extremes(self) -> list[Value]:
        """The values that, once the parser takes them, show it takes the whole range."""
        return (
            list(self.choices)
            if self.type == "categorical"
            else [self.low, self.high]
            if self.type == "float"
            else [int(self.low), int(self.high)]
        )


@dataclass
class Sweep:
    """A hyperparameter sweep over `train.py fit` runs (Optuna).

    Args:
        name: the sweep's name: its study and its folder, <save_dir>/<name>/
        configs: train.py config files every trial starts from, in order (overlays too)
        params: the searched options by their train.py keys, e.g. model.init_args.learning_rate
        args: further train.py options for every trial, e.g. ["--data.init_args.limit_train_samples=2000"]
        objective: the validation metric to optimize; it must be one the task logs
        direction: maximize or minimize; default: minimize for a loss or perplexity, else maximize
        trials: trials to finish (complete or pruned), counted across every run of the sweep and worker
        timeout: seconds after which this run starts no new trial (none: no limit)
        sampler: tpe (Optuna's default), random, or grid (every combination of categorical choices)
        sampler_seed: seed of the sampler: the same file proposes the same trials; the workers
            of --workers take sampler_seed + 0, 1, ...; give workers on other machines seeds of
            their own, or they propose the same trials
        pruner: median, successive_halving, hyperband or none
        startup_trials: trials finished before the median pruner prunes any
        warmup_texts: training texts a trial has seen before it can be pruned
        validations_per_epoch: validations (and reports to the pruner) per training epoch, at a
            multiple of every batch size the trials can have, so every trial reports after the
            same numbers of training texts (the pruner compares only reports at the same step)
        validate_every_texts: validate (and report) every this many training texts instead; a
            multiple of every batch size the trials can have
        max_failures: stop the sweep after this many trials in a row fail (an error that is not
            the user's: a trial stopped by one stops the sweep at once)
        test_trials: test every trial's best checkpoint, not only the seed runs
        seeds: after the search, run the best top_k configurations once with each of these seeds
        top_k: how many of the best configurations get the seed runs
        baseline: also run the configs as they are (the default recipe) with the seeds
        workers: trials at once on this machine, each in its own process, one per GPU where there are GPUs
        storage: the study's database URL (postgresql://user@host/db for workers on many machines);
            default: sqlite:///<save_dir>/<name>/study.db
        save_dir: where the sweep's folder is made
        heartbeat_interval: seconds between a running trial's heartbeats in the database
        grace_period: seconds without a heartbeat after which a trial counts as dead and is retried
        max_retry: how many times a dead or interrupted trial is retried
        report: write the summary, figure and best.yaml when this run ends (the workers that
            --workers starts leave that to the process that started them)
    """

    name: str
    configs: list[str]
    params: dict[str, Param]
    args: list[str] = field(default_factory=list)
    objective: str = "val/acc"
    direction: Literal["maximize", "minimize"] | None = None
    trials: int = 8
    timeout: float | None = None
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    sampler_seed: int = 0
    pruner: Literal["median", "successive_halving", "hyperband", "none"] = "median"
    startup_trials: int = 2
    warmup_texts: int = 0
    validations_per_epoch: int = 4
    validate_every_texts: int | None = None
    max_failures: int = 3
    test_trials: bool = False
    seeds: list[int] = field(default_factory=list)
    top_k: int = 1
    baseline: bool = True
    workers: int = 1
    storage: str | None = None
    save_dir: str = "logs/sweeps"
    heartbeat_interval: int = 10
    grace_period: int = 30
    max_retry: int = 2
    report: bool = True

    @property
    def folder(self) -> Path:
        return Path(self.save_dir) / self.name

    @property
    def maximize(self) -> bool:
        if self.direction is not None:
            return self.direction == "maximize"
        return not any(word in self.objective for word in ("loss", "perplexity"))

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b


def parser() -> ArgumentParser:
    options = ArgumentParser(
        prog="sweep.py", description=__doc__.splitlines()[0], exit_on_error=False, env_prefix=None
    )
    options.add_argument("-c", "--config", action=ActionConfigFile, help="the sweep file (YAML)")
    options.add_class_arguments(Sweep, fail_untyped=True)
    return options


def load(args: list[str]) -> Sweep:
    check_mappings(args, "sweep file", "not a sweep: expected a mapping with name, configs and "
                   "params, e.g. 'name: lr' / 'configs: [configs/quickstart.yaml]' / 'params: "
                   "{model.init_args.learning_rate: {type: float, low: 1e-5, high: 1e-3, log: true}}'")
    options = parser()
    try:
        namespace = options.parse_args(args)
    except argparse.ArgumentError as err:
        raise UserError(f"sweep file: {first_line(str(err))}") from None
    sweep = Sweep(
        **{
            key: value
            for key, value in options.instantiate(namespace).as_dict().items()
            if key not in ("config", "__path__")
        }
    )
    sweep.params = {
        key: value if isinstance(value, Param) else Param(**value) for key, value in sweep.params.items()
    }
    return sweep


def first_line(message: str) -> str:
    """The line of a nested jsonargparse message that says what is wrong."""
    lines = [line.strip(" -") for line in message.splitlines() if line.strip(" -")]
    for line in lines:
        if (
            line.startswith(("Expected a", "Option '", "Key '", 'Key "'))
            or "not accepted" in line
            or "Got value" in line
            or "does not exist" in line
            or "not a valid" in line
        ):
            return line
    return lines[-1] if lines else message


def cli_value(value: Value) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def trial_options(sweep: Sweep) -> list[str]:
    """What every trial adds to the configs: the sweep's own options, then the sweep file's args."""
    options = [arg for path in sweep.configs for arg in ("--config", path)]
    # validations fall where the trial's reporter says (`TrialReporter.on_train_epoch_start`)
    return [*options, "--trainer.val_check_interval=null", "--trainer.check_val_every_n_epoch=1", *sweep.args]
