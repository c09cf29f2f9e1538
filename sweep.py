"""Hyperparameter sweeps over `train.py fit` runs: `python sweep.py --config configs/sweeps/...yaml`.

Run the same command again to continue (finished trials are kept, the budget counts across runs);
start it on several machines with one `--storage postgresql://...` to share one study.
"""

import logging
import os
import sys
import time

import optuna

from core.errors import exit_on_user_error
from sweeps.checks import check_sweep
from sweeps.report import write_report
from sweeps.spec import load
from sweeps.study import open_study, storage, work
from sweeps.trial import TrialInterrupted
from sweeps.workers import run_workers


def main(args: list[str] | None = None) -> int:
    """The sweep's exit status: 0 when it ran to its end or its timeout, 143 after SIGTERM and
    130 after Ctrl-C (finished trials are kept; the interrupted one resumes on the next run)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = sys.argv[1:] if args is None else args
    sweep = load(args)
    multiple = check_sweep(sweep)
    db = storage(sweep)
    deadline = time.time() + sweep.timeout if sweep.timeout else None
    status, seed_study = 0, None
    try:
        if sweep.workers > 1:
            open_study(sweep, db=db)  # made once here, not raced for by the workers
            status = run_workers(args, sweep.workers, sweep.sampler_seed)
        else:
            _, seed_study = work(sweep, db, deadline, multiple)
    except TrialInterrupted as stop:
        print(f"sweep {sweep.name} stopped by {stop}: run the same command to go on", file=sys.stderr)
        status = 143 if str(stop) == "SIGTERM" else 130
    except KeyboardInterrupt:
        print(f"sweep {sweep.name} stopped by Ctrl-C: run the same command to go on", file=sys.stderr)
        status = 130
    if sweep.report:
        study = open_study(sweep, db=db)
        if seed_study is None and sweep.seeds:
            seed_study = existing_seed_study(sweep, db)
        print(write_report(sweep, study, seed_study))
        print(f"sweep folder: {sweep.folder}  (tensorboard --logdir {sweep.folder})")
    return status


def existing_seed_study(sweep, db) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=f"{sweep.name}/seeds", storage=db)
    except KeyError:
        return None


if __name__ == "__main__":
    from core.console import quiet_console

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    quiet_console()
    exit_on_user_error(lambda: sys.exit(main()))
