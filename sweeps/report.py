"""What a sweep leaves in its folder once it ends: summary.md and summary.csv (every trial),
summary.png (the objective over trials, and each parameter against it), best.yaml (the winning
configuration, which `train.py fit --config` runs as it is), and seeds.md / seeds.csv (mean, std
and 95% interval of each configuration over the seeds)."""

import csv
import statistics
from pathlib import Path

import optuna
import yaml
from optuna.trial import FrozenTrial, TrialState
from scipy import stats

from core.figures import save_figure, sweep_figure
from sweeps.record import trial_state, trial_value
from sweeps.spec import Sweep

BOUNDED = ("acc", "f1")  # metrics that lie in [0, 1]


def search_rows(sweep: Sweep, study: optuna.Study) -> list[dict]:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        rows.append(
            {
                "trial": trial.number,
                "state": trial_state(trial),
                sweep.objective: trial_value(trial, sweep.maximize),
                **{key: trial.params.get(key) for key in sweep.params},
                "texts": trial.user_attrs.get("texts"),
                "seconds": trial.user_attrs.get("seconds"),
                "first_step_s": trial.user_attrs.get("first_step_s"),
                "retry_of": trial.system_attrs.get("failed_trial"),
                "run": trial.user_attrs.get("run_dir"),
            }
        )
    return rows


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean, sample standard deviation and the half width of the 95% Student-t interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    std = statistics.stdev(values)
    return mean, std, stats.t.ppf(0.975, len(values) - 1) * std / len(values) ** 0.5


def seed_rows(sweep: Sweep, study: optuna.Study) -> list[dict]:
    """One row per configuration: its finished seed runs' objective and test metrics (one run a
    seed, should two workers have queued a pair twice), the number of seeds, and a note where so
    few seeds make an interval wider than the metric's whole range."""
    groups: dict[str, dict[int, FrozenTrial]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        groups.setdefault(trial.user_attrs["config"], {}).setdefault(trial.user_attrs["seed"], trial)
    rows = []
    for config, by_seed in groups.items():
        trials = list(by_seed.values())
        row = {
            "config": config,
            "seeds": " ".join(str(seed) for seed in by_seed),
            "n": len(trials),
            **{key: value for key, value in trials[0].user_attrs["params"].items()},
        }
        metrics = {sweep.objective: [t.value for t in trials]}
        for name in sorted({k for t in trials for k in t.user_attrs.get("test", {})}):
            metrics[name] = [
                t.user_attrs["test"][name] for t in trials if name in t.user_attrs.get("test", {})
            ]
        wide = []
        for name, values in metrics.items():
            mean, std, half = interval(values)
            row.update({f"{name} mean": mean, f"{name} std": std, f"{name} 95% ±": half})
            if name.rsplit("/", 1)[-1] in BOUNDED and half > 1:
                wide.append(name)
        if wide:
            row["note"] = f"{len(trials)} seeds: the 95% interval of {', '.join(wide)} is wider than [0, 1]"
        rows.append(row)
    return sorted(rows, key=lambda r: r[f"{sweep.objective} mean"], reverse=sweep.maximize)


def cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-3 and value else f"{value:.4f}"
    return str(value)


def write_table(rows: list[dict], path: Path) -> str:
    """`path`.md and `path`.csv; returns the markdown."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    with open(path.with_suffix(".csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)
    return "\n".join(lines) + "\n"


def pruning_note(rows: list[dict]) -> str:
    """How many trials were pruned and the run time that saved: each pruned trial would have run
    about as long as the median complete trial."""
    complete = [r["seconds"] for r in rows if r["state"] == "COMPLETE" and r["seconds"] is not None]
    pruned = [r["seconds"] for r in rows if r["state"] == "PRUNED" and r["seconds"] is not None]
    overhead = [r["first_step_s"] for r in rows if r["first_step_s"] is not None]
    lines = [
        f"{len(complete)} complete, {len(pruned)} pruned, "
        f"{sum(r['state'] not in ('COMPLETE', 'PRUNED') for r in rows)} failed or interrupted trials."
    ]
    if complete and pruned:
        typical = statistics.median(complete)
        saved = sum(max(0.0, typical - s) for s in pruned)
        lines.append(
            f"Pruning saved about {saved:.0f} s: {len(pruned)} pruned trial{'s' if len(pruned) > 1 else ''} "
            f"ran {sum(pruned):.0f} s "
            f"where complete trials took a median {typical:.0f} s each."
        )
    if overhead:
        lines.append(
            f"Start of a trial to its first training step: median {statistics.median(overhead):.1f} s."
        )
    return " ".join(lines) + "\n"


def best_config(
    study: optuna.Study, seed_study: optuna.Study | None, seeds: list[dict]
) -> tuple[str, Path] | None:
    """The winner on validation (the best mean over seeds where there are seed runs, the baseline
    included) and a run folder of it."""
    if seeds:
        winner = seeds[0]["config"]
        trial = next(
            t
            for t in seed_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs["config"] == winner
        )
        return winner, Path(trial.user_attrs["run_dir"])
    try:
        trial = study.best_trial
    except ValueError:  # no complete trial yet
        return None
    return f"trial_{trial.number:03d}", Path(trial.user_attrs["run_dir"])


def write_best(sweep: Sweep, name: str, run_dir: Path) -> Path:
    """The winning trial's resolved config, logging to logs/sweeps/<name>/best/ and validating as
    the task's own config does."""
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key in ("ckpt_path", "weights_only"):  # how that run was started, not its recipe
        config.pop(key, None)
    config["trainer"]["logger"]["init_args"].update(save_dir=str(sweep.folder), name="best", version=None)
    path = sweep.folder / "best.yaml"
    header = (
        f"# The best configuration of sweep {sweep.name} ({name}, chosen on {sweep.objective});\n"
        f"# run it with: python train.py fit --config {path}\n"
    )
    path.write_text(header + yaml.safe_dump(config, sort_keys=False))
    return path


def write_report(sweep: Sweep, study: optuna.Study, seed_study: optuna.Study | None) -> str:
    folder = sweep.folder
    rows = search_rows(sweep, study)
    text = f"# Sweep {sweep.name}: {sweep.objective} ({'max' if sweep.maximize else 'min'})\n\n"
    text += write_table(rows, folder / "summary") + "\n" + pruning_note(rows)
    seeds = seed_rows(sweep, seed_study) if seed_study is not None else []
    if seeds:
        table = write_table(seeds, folder / "seeds")
        (folder / "seeds.md").write_text(table)
        text += ("\n## Seed runs (the winner is chosen on validation, never on test; n seeds, 95% "
                 "Student-t intervals)\n\n" + table)
    best = best_config(study, seed_study, seeds)
    if best is not None:
        text += f"\nBest: {best[0]} -> {write_best(sweep, *best)}\n"
    (folder / "summary.md").write_text(text)
    if rows:
        save_figure(
            sweep_figure(
                rows, sweep.objective, sweep.maximize, {key: param.log for key, param in sweep.params.items()}
            ),
            folder / "summary.png",
        )
    return text
