"""A sweep file checked against train.py's own parser before the first trial starts: keys (naming
the closest valid ones), ranges and values the parser refuses, the objective, one device a trial,
and the batch sizes whose common multiple every report falls on."""

import argparse
import difflib
import logging
import math
from pathlib import Path

from jsonargparse import Namespace

from core.errors import UserError, at_least, check
from plugins.defaults import named_class
from sweeps.spec import Sweep, cli_value, first_line, trial_options
from train import CLI, DEFAULTS

BATCH_SIZE = "data.init_args.batch_size"


class ParseOnly(CLI):
    """`fit`'s options parsed and checked as train.py would run them, with nothing built."""

    def instantiate_classes(self) -> None:
        """Nothing is built: no model, data or Trainer."""


def parsed_fit_config(args: list[str]) -> Namespace:
    """The resolved `fit` config of `args` (options without the subcommand); a value the parser
    refuses raises argparse.ArgumentError instead of printing the usage and exiting. Lightning
    seeds the RNGs on the way; its 'Seed set' line is left out."""
    seed_log = logging.getLogger("lightning.fabric.utilities.seed")
    level = seed_log.level
    seed_log.setLevel(logging.WARNING)
    try:
        return ParseOnly(subclass_mode_model=True, subclass_mode_data=True,
                         parser_kwargs={"default_config_files": [str(DEFAULTS)], "exit_on_error": False},
                         auto_configure_optimizers=False, args=args, run=False).config
    finally:
        seed_log.setLevel(level)


def check_sweep(sweep: Sweep) -> int:
    """One line for the first thing wrong; returns the least common multiple of the batch sizes
    the trials can have (reports fall at multiples of it)."""
    at_least("trials", sweep.trials, 1)
    at_least("workers", sweep.workers, 1)
    at_least("top_k", sweep.top_k, 1)
    at_least("validations_per_epoch", sweep.validations_per_epoch, 1)
    at_least("validate_every_texts", sweep.validate_every_texts, 1, optional=True)
    at_least("max_failures", sweep.max_failures, 1)
    at_least("startup_trials", sweep.startup_trials, 0)
    at_least("heartbeat_interval", sweep.heartbeat_interval, 1)
    check(
        "grace_period",
        sweep.grace_period,
        sweep.grace_period > sweep.heartbeat_interval,
        f"more seconds than heartbeat_interval ({sweep.heartbeat_interval})",
    )
    check("timeout", sweep.timeout, sweep.timeout is None or sweep.timeout > 0, "seconds > 0, or null")
    if not sweep.configs:
        raise UserError("sweep file: configs is empty: name the train.py config files to start from")
    for path in sweep.configs:
        if not Path(path).is_file():
            raise UserError(f"sweep config {path} does not exist")
    if not sweep.params:
        raise UserError("sweep file: params is empty: name at least one option to search")
    if sweep.sampler == "grid":
        ranged = [key for key, param in sweep.params.items() if param.type != "categorical"]
        if ranged:
            raise UserError(f"sampler grid searches choices only: make {ranged[0]} categorical")
    base = parse_trial(sweep, [])
    check_one_device(base, "sweep configs and args")
    keys = set(base.keys())
    for key, param in sweep.params.items():
        param.distribution(key)
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise UserError(f"sweep parameter {key} is not an option of train.py fit{hint}")
        for value in param.extremes():
            config = parse_trial(sweep, [f"--{key}={cli_value(value)}"], key)
            check_one_device(config, f"sweep parameter {key}")
    check_objective(sweep, base)
    return batch_multiple(sweep, base)


def batch_sizes(sweep: Sweep, base: Namespace) -> set[int]:
    """Every batch size a trial can have: the searched ones, else the configs' own."""
    param = sweep.params.get(BATCH_SIZE)
    if param is None:
        return {base.data.init_args.batch_size}
    if param.type == "categorical":
        return set(param.choices)
    return set(range(int(param.low), int(param.high) + 1, int(param.step or 1)))


def batch_multiple(sweep: Sweep, base: Namespace) -> int:
    """Reports at multiples of every batch size fall after the same training texts in every trial
    (batches are full but for an epoch's last), so the pruner compares trials of any batch size."""
    sizes = batch_sizes(sweep, base)
    if min(sizes) < 1:
        where = f"sweep parameter {BATCH_SIZE}" if BATCH_SIZE in sweep.params else "sweep configs and args"
        raise UserError(f"{where}: a batch size of {min(sizes)} holds no text: use 1 or more")
    multiple = math.lcm(*sizes)
    every = sweep.validate_every_texts
    if every is not None and every % multiple:
        raise UserError(f"validate_every_texts={every} is not a multiple of every batch size the trials "
                        f"can have ({', '.join(map(str, sorted(sizes)))}): use a "
                        f"multiple of {multiple}")
    return multiple


def check_one_device(config: Namespace, where: str) -> None:
    """Trials run side by side, one device each (`--workers`); a trial on several devices would
    need every process of it to report to Optuna, which the reporter does not do."""
    trainer = config.trainer
    devices = trainer.devices
    count = len(devices) if isinstance(devices, (list, tuple)) else (
        int(devices) if str(devices).lstrip("-").isdigit() else 1)
    if count != 1 or (trainer.num_nodes or 1) > 1:
        raise UserError(f"{where}: a trial runs on one device (trainer.devices={devices}, "
                        f"num_nodes={trainer.num_nodes}); to use several GPUs, run trials side by "
                        "side with --workers")


def parse_trial(sweep: Sweep, options: list[str], key: str | None = None):
    try:
        return parsed_fit_config([*trial_options(sweep), *options])
    except argparse.ArgumentError as err:
        where = f"sweep parameter {key}" if key else "sweep configs and args"
        raise UserError(f"{where}: {' '.join(options)} is refused: {first_line(str(err))}") from None


def check_objective(sweep: Sweep, config) -> None:
    """The task's validation metrics, where its class lists them (`VALIDATION_METRICS`)."""
    task = named_class(config.model.class_path)
    logged = getattr(task, "VALIDATION_METRICS", None)
    if logged is not None and sweep.objective not in logged:
        raise UserError(
            f"sweep objective {sweep.objective!r} is not logged by {task.__name__}: choose one "
            f"of {', '.join(logged)}"
        )
