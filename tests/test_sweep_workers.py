"""Sweeps that outlive their workers: a SIGKILLed worker's trial retried; a SIGTERMed trial
continued from its checkpoint to the weights of an uninterrupted one; two workers sharing one
study on a real PostgreSQL server."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
from optuna.trial import TrialState

import sweep as sweep_py
from tests.helpers import forked_train_py, one_thread
from tests.sweep_helpers import LR, SLOW_STEPS, step_of, sweep_file, trials, wait_for


@pytest.mark.slow
def test_a_sigkilled_workers_trial_is_retried(tiny_bert, tmp_path):
    args = sweep_file(tmp_path, tiny_bert, trials=2, pruner="none", args=SLOW_STEPS)
    with one_thread():
        worker = forked_train_py(args, tmp_path / "stderr.txt", script="sweep.py")
        wait_for(lambda: any(step_of(t.user_attrs.get("run_dir")) for t in trials(args)))  # mid-trial
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
        assert [t.state for t in trials(args)] == [TrialState.RUNNING]  # left behind by the dead worker
        assert sweep_py.main(args) == 0
    found = trials(args)
    dead = found[0]
    assert dead.state == TrialState.FAIL
    retried = [t for t in found if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == dead.params
    assert retried[0].user_attrs["resumed_from"].startswith(dead.user_attrs["run_dir"])
    assert sum(t.state == TrialState.COMPLETE for t in found) == 2


@pytest.mark.slow
def test_a_sigtermed_trial_continues_from_its_checkpoint_to_an_uninterrupted_trials_weights(
    no_dropout_bert, tmp_path
):
    reference = sweep_file(
        tmp_path, no_dropout_bert, name="straight", trials=1, pruner="none", args=SLOW_STEPS[:1]
    )
    args = sweep_file(tmp_path, no_dropout_bert, trials=1, pruner="none", args=SLOW_STEPS)
    with one_thread():
        assert sweep_py.main(reference) == 0
        worker = forked_train_py(args, tmp_path / "stderr.txt", script="sweep.py")
        wait_for(lambda: step_of(str(tmp_path / "sweeps/tiny/trial_000/version_0")) > 0)  # mid-trial
        os.kill(worker.pid, signal.SIGTERM)
        worker.join(timeout=120)
        stderr = (tmp_path / "stderr.txt").read_text()
        assert worker.exitcode == 143, stderr[-3000:]
        stopped = trials(args)
        assert [t.state for t in stopped] == [TrialState.FAIL, TrialState.WAITING]
        assert stopped[0].user_attrs["interrupted"] == "SIGTERM"
        assert sweep_py.main(args) == 0
    interrupted, resumed = trials(args)
    assert resumed.state == TrialState.COMPLETE and resumed.params == interrupted.params
    run = Path(interrupted.user_attrs["run_dir"])
    assert resumed.user_attrs["resumed_from"] == str(run / "checkpoints" / "last.ckpt")
    assert resumed.user_attrs["run_dir"] == str(run)  # went on in the same run folder
    straight = trials(reference)[0]
    assert straight.params == interrupted.params  # the same seeded sampler proposed both
    ours = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    theirs = torch.load(Path(straight.user_attrs["run_dir"]) / "checkpoints" / "last.ckpt", weights_only=True)
    assert ours["global_step"] == theirs["global_step"]
    for key, value in theirs["state_dict"].items():
        torch.testing.assert_close(ours["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    assert resumed.value == straight.value


@pytest.fixture
def postgres(tmp_path):
    """A PostgreSQL server of this machine's, started for the test on a free port of 127.0.0.1
    and stopped after it (as the `postgres` user where the tests run as root, as PostgreSQL
    refuses root)."""
    initdb = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if not initdb:
        message = "PostgreSQL is not installed (.ci/run installs it)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)
    bin_dir = initdb[-1].parent
    data = Path(tempfile.mkdtemp(prefix="sweep-pg-", dir="/tmp"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(data, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data / "db"), "-A", "trust", "-U", "sweeps"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data / "db"),
            "-l",
            str(data / "log"),
            "-w",
            "-o",
            f"-p {port} -k {data} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://sweeps@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data / "db"), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(data, ignore_errors=True)


@pytest.mark.slow
def test_two_workers_share_one_study_on_postgresql(tiny_bert, tmp_path, postgres):
    args = sweep_file(
        tmp_path,
        tiny_bert,
        trials=4,
        workers=2,
        storage=postgres,
        pruner="none",
        args=("--data.init_args.cache_dir=" + str(tmp_path / "cache"),),
    )
    assert sweep_py.main(args) == 0
    found = trials(args)
    assert [t.state for t in found] == [TrialState.COMPLETE] * 4  # the budget, across both workers
    assert sorted(t.number for t in found) == [0, 1, 2, 3]
    runs = [t.user_attrs["run_dir"] for t in found]
    assert len(set(runs)) == 4 and all(Path(r, "trial.yaml").is_file() for r in runs)
    assert len({t.params[LR] for t in found}) == 4  # four trials, none run twice
    workers = {t.user_attrs["worker"] for t in found}
    assert len(workers) == 2, workers  # both workers took trials
    assert (tmp_path / "sweeps" / "tiny" / "summary.md").read_text().count("| COMPLETE |") == 4
