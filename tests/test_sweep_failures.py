"""Sweeps whose trials fail: a streak of failures stops the sweep in one line; a trial stopped by
the user's own error says that one line only; a trial that exits is a failure, not a Ctrl-C; a
worker killed while it queues the seed runs leaves none of them missing."""

import logging
import os
import signal
from contextlib import contextmanager

import optuna
import pytest
from optuna.trial import TrialState

import sweep as sweep_py
from core.errors import UserError, exit_on_user_error
from tests.helpers import forked_train_py, one_thread
from tests.sweep_helpers import LR, sweep_file, trials


def test_a_streak_of_failed_trials_stops_the_sweep_in_one_line(tiny_bert, tmp_path):
    args = sweep_file(tmp_path, tiny_bert, trials=5, max_failures=2, timeout=120,
                      args=("--trainer.callbacks+=tests.sweep_helpers.Crash",))
    with pytest.raises(UserError) as caught:
        sweep_py.main(args)
    found = trials(args)
    assert [t.state for t in found] == [TrialState.FAIL] * 2
    message = str(caught.value)
    assert message.startswith("2 trials failed in a row, the first with RuntimeError: "
                              "the GPU fell off the bus")
    assert all(t.user_attrs["run_dir"] in message for t in found) and "\n" not in message


def test_a_trial_stopped_by_the_users_error_says_one_line_and_no_traceback(tiny_bert, tmp_path):
    args = sweep_file(tmp_path, tiny_bert, params={LR: {"type": "categorical", "choices": [2.0]}})
    optuna_log = logging.getLogger("optuna")  # its records do not reach the root logger
    with pytest.raises(SystemExit) as caught, caught_records(optuna_log) as records:
        exit_on_user_error(lambda: sweep_py.main(args))
    assert str(caught.value).startswith("error: --model.learning_rate=2.0 is out of range")
    assert not [r.getMessage() for r in records if r.exc_info or "failed" in r.getMessage()]
    assert [t.state for t in trials(args)] == [TrialState.FAIL]


@contextmanager
def caught_records(logger: logging.Logger):
    handler = logging.Handler()
    records = []
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_a_trial_that_exits_is_a_failure_not_a_ctrl_c(tiny_bert, tmp_path):
    args = sweep_file(tmp_path, tiny_bert, trials=2, max_failures=1,
                      args=("--trainer.callbacks+=tests.sweep_helpers.Exit",))
    with pytest.raises(UserError, match="1 trial failed in a row, the first with RuntimeError: "
                                        "the run exited with status 3"):
        sweep_py.main(args)
    (failed,) = trials(args)  # not retried, as an interrupted trial would be
    assert failed.state == TrialState.FAIL and "interrupted" not in failed.user_attrs


def test_a_worker_killed_while_queueing_the_seed_runs_leaves_none_missing(tiny_bert, tmp_path, monkeypatch):
    args = sweep_file(tmp_path, tiny_bert, trials=1, seeds=[1, 2], pruner="none")
    queued = []

    def die_after_the_first(study, *positional, **named):
        if queued:
            os.kill(os.getpid(), signal.SIGKILL)
        queued.append(named)
        return enqueue(study, *positional, **named)

    enqueue = optuna.Study.enqueue_trial
    monkeypatch.setattr(optuna.Study, "enqueue_trial", die_after_the_first)
    with one_thread():
        worker = forked_train_py(args, tmp_path / "stderr.txt", script="sweep.py")
        worker.join(timeout=300)
    monkeypatch.undo()
    assert worker.exitcode == -signal.SIGKILL
    assert len(trials(args, seeds=True)) == 1  # the study and one of its four runs
    assert sweep_py.main(args) == 0
    runs = trials(args, seeds=True)
    pairs = sorted((t.user_attrs["config"], t.user_attrs["seed"]) for t in runs)
    assert pairs == [("baseline", 1), ("baseline", 2), ("trial_000", 1), ("trial_000", 2)]
    assert all(t.state == TrialState.COMPLETE for t in runs)
