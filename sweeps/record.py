"""What a finished trial leaves beside its run: `trial.yaml` in the run folder (its state, so
the run's own logs say whether it was pruned) and a session in TensorBoard's HPARAMS tab."""

from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from sweeps.spec import Sweep


def trial_value(trial: FrozenTrial, maximize: bool) -> float | None:
    """A complete trial's objective; a pruned or interrupted one's best report so far."""
    if trial.value is not None:
        return trial.value
    reports = list(trial.intermediate_values.values())
    return (max(reports) if maximize else min(reports)) if reports else None


def trial_state(trial: FrozenTrial) -> str:
    if trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted"):
        return "INTERRUPTED"
    return trial.state.name


def record_trial(sweep: Sweep, study: optuna.Study, trial: FrozenTrial) -> None:
    seeds = study.study_name.endswith("/seeds")
    params = trial.user_attrs.get("params", {}) if seeds else trial.params
    state, value = trial_state(trial), trial_value(trial, sweep.maximize)
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and Path(run_dir).is_dir():
        (Path(run_dir) / "trial.yaml").write_text(
            yaml.safe_dump(
                {
                    "study": study.study_name,
                    "trial": trial.number,
                    "state": state,
                    "objective": sweep.objective,
                    "value": value,
                    "params": params,
                    "retry_of": trial.system_attrs.get("failed_trial"),
                    **{
                        key: trial.user_attrs[key]
                        for key in (
                            "seed",
                            "config",
                            "test",
                            "resumed_from",
                            "texts",
                            "seconds",
                            "first_step_s",
                        )
                        if key in trial.user_attrs
                    },
                },
                sort_keys=False,
            )
        )
    folder = sweep.folder / "hparams" / ("seeds" if seeds else "search") / f"trial_{trial.number:03d}"
    names = {key: key.replace(".init_args.", ".") for key in params}
    hparam_dict = {
        names[key]: value if isinstance(value, (int, float, str, bool)) else str(value)
        for key, value in params.items()
    }
    hparam_dict["state"] = state
    if seeds:
        hparam_dict.update(config=trial.user_attrs["config"], seed=trial.user_attrs["seed"])
    metric_dict = {f"sweep/{sweep.objective}": value} if value is not None else {}
    metric_dict.update({f"sweep/{key}": v for key, v in trial.user_attrs.get("test", {}).items()})
    with SummaryWriter(str(folder)) as writer:
        for summary in hparams(hparam_dict, metric_dict):
            writer.file_writer.add_summary(summary)
        for key, metric in metric_dict.items():
            writer.add_scalar(key, metric, 0)
