"""Sweeps: a search that writes every artifact and resumes without repeating trials; a pruner that
prunes a clearly worse trial; trials that leak nothing into the next; a SIGKILLed worker's trial
retried; a SIGTERMed trial continued from its checkpoint to the weights of an uninterrupted one;
a bad sweep file refused in one line; two workers sharing one study on a real PostgreSQL server."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

import sweep as sweep_py
from compare import compare
from core.errors import UserError
from sweeps.spec import check_sweep, load, parser
from sweeps.study import open_study
from tests.helpers import CONFIGS, QUICKSTART, ROOT, forked_train_py, one_thread
from train import parsed_fit_config

LR = "model.init_args.learning_rate"


def sweep_file(
    folder: Path, backbone: str, name: str = "tiny", args: tuple[str, ...] = (), **options
) -> list[str]:
    """sweep.py's arguments for a sweep of seconds-long trials on generated reviews."""
    spec = {
        "name": name,
        "configs": [QUICKSTART],
        "save_dir": str(folder / "sweeps"),
        "args": [
            f"--model.backbone={backbone}",
            "--data.init_args.num_train=40",
            "--data.init_args.num_test=16",
            "--data.init_args.batch_size=8",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            *args,
        ],
        "params": {LR: {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}},
        "trials": 3,
        "validations_per_epoch": 2,
        "heartbeat_interval": 1,
        "grace_period": 3,
        **options,
    }
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return ["--config", str(path)]


def trials(args: list[str], seeds: bool = False) -> list[optuna.trial.FrozenTrial]:
    return open_study(load(args), seeds=seeds).get_trials()


def test_sweep_writes_every_artifact_and_resumes_without_repeating(tiny_bert, tmp_path):
    args = sweep_file(
        tmp_path,
        tiny_bert,
        seeds=[1, 2],
        baseline=False,
        params={
            LR: {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
            "data.init_args.batch_size": {"type": "categorical", "choices": [8, 16]},
        },
    )
    assert sweep_py.main(args) == 0
    folder = tmp_path / "sweeps" / "tiny"
    search = trials(args)
    assert [t.state for t in search] == [TrialState.COMPLETE] * 3
    for trial in search:  # each trial is an ordinary run folder, with its state beside it
        run = Path(trial.user_attrs["run_dir"])
        assert run.parent.name == f"trial_{trial.number:03d}"
        assert {"config.yaml", "hparams.yaml", "checkpoints", "hf_model", "trial.yaml"} <= {
            p.name for p in run.iterdir()
        }
        record = yaml.safe_load((run / "trial.yaml").read_text())
        assert record["state"] == "COMPLETE" and record["value"] == trial.value
        assert record["params"] == trial.params
        assert trial.intermediate_values and max(trial.intermediate_values.values()) == trial.value
        assert trial.user_attrs["first_step_s"] > 0
    for trial in search:  # reported at the training texts seen (36: 40 less 10% held out)
        batch = trial.params["data.init_args.batch_size"]
        assert list(trial.intermediate_values) == {8: [16, 32], 16: [16, 32, 36]}[batch]
        assert trial.user_attrs["texts"] == 36
    seed_runs = trials(args, seeds=True)
    assert sorted(t.user_attrs["seed"] for t in seed_runs) == [1, 2]
    assert all(t.state == TrialState.COMPLETE and "test/acc" in t.user_attrs["test"] for t in seed_runs)

    summary = (folder / "summary.md").read_text()
    assert "| trial | state | val/acc |" in summary and summary.count("| COMPLETE |") == 3
    assert len((folder / "summary.csv").read_text().splitlines()) == 4
    assert (folder / "summary.png").stat().st_size > 10_000
    seeds_table = (folder / "seeds.md").read_text()
    best_trial = max(search, key=lambda t: t.value)
    assert f"| trial_{best_trial.number:03d} | 1 2 |" in seeds_table
    accs = [t.user_attrs["test"]["test/acc"] for t in seed_runs]
    assert f"{sum(accs) / 2:.4f}" in seeds_table and "test/acc 95% ±" in seeds_table
    best = parsed_fit_config(["--config", str(folder / "best.yaml")])  # runs with fit as it is
    assert best.model.init_args.learning_rate == best_trial.params[LR]
    assert best.data.init_args.batch_size == best_trial.params["data.init_args.batch_size"]
    sessions = list((folder / "hparams").glob("*/trial_*/events.out.tfevents.*"))
    assert len(sessions) == 5  # the HPARAMS tab: every search trial and seed run
    runs = compare(folder)
    assert len(runs) == 5 and all(r.monitor == "val/acc" and r.trial_state == "COMPLETE" for r in runs)
    assert "| trial state |" in (folder / "report.md").read_text()

    assert sweep_py.main(args) == 0  # run again: nothing to do
    assert len(trials(args)) == 3 and len(trials(args, seeds=True)) == 2
    assert sweep_py.main([*args, "--trials=4"]) == 0  # a larger budget: only the new trial runs
    assert [t.number for t in trials(args)] == [0, 1, 2, 3]
    assert [t.state for t in trials(args)] == [TrialState.COMPLETE] * 4


def test_pruner_prunes_a_clearly_worse_trial_and_trials_leak_nothing(tiny_bert, tmp_path):
    args = sweep_file(
        tmp_path,
        tiny_bert,
        objective="val/loss",
        pruner="median",
        startup_trials=2,
        params={LR: {"type": "float", "low": 1e-4, "high": 0.9, "log": True}},
    )
    study = open_study(load(args))
    for lr in (1e-3, 1e-3, 0.5):  # the same trial twice, then one whose steps wreck the model
        study.enqueue_trial({LR: lr})
    assert sweep_py.main(args) == 0
    first, again, wild = trials(args)
    assert first.state == again.state == TrialState.COMPLETE
    assert again.value == first.value and again.intermediate_values == first.intermediate_values
    assert wild.state == TrialState.PRUNED, wild.intermediate_values
    assert len(wild.intermediate_values) == 1  # pruned at its first report
    run = Path(wild.user_attrs["run_dir"])
    assert yaml.safe_load((run / "trial.yaml").read_text())["state"] == "PRUNED"
    assert not (run / "hf_model").exists()  # a pruned trial is neither tested nor exported
    assert "1 pruned" in (tmp_path / "sweeps" / "tiny" / "summary.md").read_text()


BAD_FILES = [
    (
        {"params": {"model.init_args.learnin_rate": {"type": "float", "low": 1e-4, "high": 1e-2}}},
        "model.init_args.learnin_rate is not an option of train.py fit; "
        "closest: model.init_args.learning_rate",
    ),
    ({"params": {LR: {"type": "float", "low": 1e-2, "high": 1e-4}}}, f"sweep parameter {LR}: "),
    ({"params": {LR: {"type": "float", "low": 0.0, "high": 1e-2, "log": True}}}, f"sweep parameter {LR}: "),
    (
        {"params": {LR: {"type": "categorical", "choices": ["fast"]}}},
        f"sweep parameter {LR}: --{LR}=fast is refused: Expected a <class 'float'>",
    ),
    (
        {"params": {"trainer.max_epochs": {"type": "int", "low": 1.5, "high": 3}}},
        "sweep parameter trainer.max_epochs: an int parameter needs whole low and high",
    ),
    ({"objective": "val/accuracy"}, "sweep objective 'val/accuracy' is not logged by SequenceClassifier"),
    ({"configs": ["configs/no/such.yaml"]}, "sweep config configs/no/such.yaml does not exist"),
    ({"sampler": "grid"}, f"sampler grid searches choices only: make {LR} categorical"),
    ({"trials": 0}, "trials=0 is out of range"),
]


@pytest.mark.parametrize("change, message", BAD_FILES, ids=[m.split(":")[0][:40] for _, m in BAD_FILES])
def test_a_bad_sweep_file_is_one_line_naming_what_is_wrong(change, message, tmp_path):
    with pytest.raises(UserError) as caught:
        check_sweep(load(sweep_file(tmp_path, "minilm", **change)))
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("path", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_file_passes_its_checks(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # their configs are named from the repository's root, as users run them
    sweep = load(["--config", str(path)])
    check_sweep(sweep)
    assert sweep.name == path.stem and sweep.seeds


def test_help_lists_every_option_with_its_meaning():
    text = " ".join(parser().format_help().split())
    for option, meaning in (("--trials", "trials to finish (complete or pruned)"),
                            ("--storage", "postgresql://user@host/db"), ("--workers", "one per GPU"),
                            ("--pruner", "median, successive_halving, hyperband or none"),
                            ("--seeds", "with each of these seeds")):
        assert option in text and meaning in text, option


def test_an_unknown_sweep_option_is_one_line(tmp_path):
    with pytest.raises(UserError, match="sweep file: .*trails") as caught:
        load([*sweep_file(tmp_path, "minilm"), "--trails=3"])
    assert "\n" not in str(caught.value)


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def step_of(run_dir: str | None) -> int:
    last = Path(run_dir or "/nonexistent") / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=True)["global_step"] if last.is_file() else 0


SLOW_STEPS = ("--trainer.max_epochs=3", "--trainer.callbacks+=tests.test_resume.Pause")


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
