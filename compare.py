"""Compare the runs under a folder: `python compare.py logs/imdb` writes report.md and report.png.

Reads only what training already writes, nothing guessed from the task: each run's `config.yaml`,
`hparams.yaml` (the metric its best checkpoint monitored and whether higher or lower is better),
TensorBoard event files (the monitored curve, the `hp/test_*` metrics of the best checkpoint) and
checkpoints, and for a sweep's trials their `trial.yaml` (state and parameters). A run is a folder
holding a `config.yaml` (logs/<task>/<name>/version_N/, logs/sweeps/<name>/trial_NNN/version_0/).
"""

import argparse
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.events import run_events, scalars
from core.figures import comparison_figure, save_figure


@dataclass
class Run:
    name: str
    backbone: str
    lora_r: int
    trainable_params: int | None
    monitor: str | None
    mode: str | None
    best_val: float | None
    test: dict[str, float]
    epoch_s: float | None
    peak_gpu_mb: float | None
    checkpoint_mb: float | None
    curve: list[tuple[int, float]]
    trial_state: str | None = None  # a sweep's trial: COMPLETE, PRUNED, INTERRUPTED, FAIL


def short_name(backbone: str) -> str:
    """A local model folder by its last component; hub ids and aliases as they are."""
    return Path(backbone).name if Path(backbone).is_dir() else backbone


def read_run(folder: Path, root: Path) -> Run:
    config = yaml.safe_load((folder / "config.yaml").read_text())
    model = config["model"]["init_args"]
    lora = model.get("lora")
    hparams_file = folder / "hparams.yaml"
    hparams = yaml.safe_load(hparams_file.read_text()) if hparams_file.is_file() else {}
    monitor, mode = hparams.get("monitor"), hparams.get("monitor_mode")
    events = run_events(folder)
    curve = scalars(events, monitor) if monitor else []
    values = [v for _, v in curve]
    test = {tag.removeprefix("hp/test_"): events.Scalars(tag)[-1].value
            for tag in events.Tags()["scalars"] if tag.startswith("hp/test_")}
    epochs = [v for _, v in scalars(events, "time/epoch_s")]
    memory = [v for _, v in scalars(events, "memory/peak_gpu_mb")]
    trainable = [v for _, v in scalars(events, "params/trainable")]
    checkpoints = list((folder / "checkpoints").glob("*.ckpt")) if (folder / "checkpoints").is_dir() else []
    trial = yaml.safe_load((folder / "trial.yaml").read_text()) if (folder / "trial.yaml").is_file() else {}
    return Run(
        name=str(folder.relative_to(root)),
        backbone=short_name(model["backbone"]),
        lora_r=lora["r"] if lora else 0,
        trainable_params=int(trainable[-1]) if trainable else None,
        monitor=monitor,
        mode=mode,
        best_val=(max(values) if mode == "max" else min(values)) if values else None,
        test=test,
        epoch_s=sum(epochs) / len(epochs) if epochs else None,
        peak_gpu_mb=max(memory) if memory else None,
        checkpoint_mb=max(p.stat().st_size for p in checkpoints) / 2**20 if checkpoints else None,
        curve=curve,
        trial_state=trial.get("state"),
    )


def cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def markdown(runs: list[Run]) -> str:
    """One row per run; one test column per metric any run recorded, '-' where a run lacks it."""
    tests = sorted({name for r in runs for name in r.test})
    trials = any(r.trial_state for r in runs)  # a sweep's folder: each trial's state
    header = ["run", *(["trial state"] if trials else []), "backbone", "method", "trainable params",
              "best val", *(f"test {t}" for t in tests), "epoch time (s)", "peak GPU memory (MB)",
              "checkpoint (MB)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in runs:
        method = f"LoRA r={r.lora_r}" if r.lora_r else "full"
        best = f"{r.monitor} {cell(r.best_val, '.4f')} ({r.mode})" if r.monitor else "-"
        row = [r.name, *([r.trial_state or "-"] if trials else []), r.backbone, method,
               cell(r.trainable_params, ","), best,
               *(cell(r.test.get(t), ".4f") for t in tests),
               cell(r.epoch_s, ".1f"), cell(r.peak_gpu_mb, ".0f"), cell(r.checkpoint_mb, ".2f")]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def compare(root: Path, out_dir: Path | None = None) -> list[Run]:
    folders = sorted(p.parent for p in root.rglob("config.yaml")
                     if list(p.parent.glob("events.out.tfevents.*")))
    if not folders:
        raise SystemExit(f"error: no runs (folders with config.yaml and TensorBoard events) under {root}")
    runs = [read_run(folder, root) for folder in folders]
    out_dir = out_dir or root
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.md").write_text(markdown(runs))
    save_figure(comparison_figure(runs), out_dir / "report.png")
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder with runs, e.g. logs/imdb")
    parser.add_argument("--out", type=Path, default=None, help="where to write the report (default: root)")
    args = parser.parse_args()
    runs = compare(args.root, args.out)
    print(markdown(runs))
    print(f"wrote {(args.out or args.root) / 'report.md'} and report.png")


if __name__ == "__main__":
    main()
