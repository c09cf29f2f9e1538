"""Sweeps: a search that writes every artifact and resumes without repeating trials; trials of
every batch size reported after the same training texts; a pruner that prunes a clearly worse
trial; trials that leak nothing into the next."""

from pathlib import Path

import yaml
from optuna.trial import TrialState

import sweep as sweep_py
from compare import compare
from sweeps.checks import parsed_fit_config
from sweeps.spec import load
from sweeps.study import open_study
from tests.sweep_helpers import BATCH, LR, sweep_file, trials


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
    for trial in search:  # reported at multiples of 16 training texts (36: 40 less 10% held out)
        assert list(trial.intermediate_values) == [16, 32]
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


def test_trials_of_every_batch_size_report_at_the_same_texts_and_a_worse_one_is_pruned(tiny_bert, tmp_path):
    """Batches of 8 and 12 texts: reports every 24 texts, where both batch sizes have trained on the
    same data; at batch-counted fractions of an epoch they would report at 16 and 12, 24, 36 texts,
    and the median pruner, comparing only reports at the same step, would prune nothing."""
    args = sweep_file(
        tmp_path,
        tiny_bert,
        objective="val/loss",
        startup_trials=2,
        validations_per_epoch=1,
        params={
            LR: {"type": "float", "low": 1e-4, "high": 0.9, "log": True},
            BATCH: {"type": "categorical", "choices": [8, 12]},
        },
    )
    study = open_study(load(args))
    for lr, batch in ((1e-3, 8), (1e-3, 8), (0.5, 12)):  # the last one's steps wreck the model
        study.enqueue_trial({LR: lr, BATCH: batch})
    assert sweep_py.main(args) == 0
    first, again, wild = trials(args)
    assert list(first.intermediate_values) == list(wild.intermediate_values) == [24]
    assert wild.state == TrialState.PRUNED, (first.intermediate_values, wild.intermediate_values)
