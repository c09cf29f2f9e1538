"""What the sweep tests share: a sweep file of seconds-long trials, its trials, and callbacks that
make a trial fail."""

import sys
import time
from pathlib import Path

import optuna
import torch
import yaml
from lightning import Callback

from sweeps.spec import load
from sweeps.study import open_study
from tests.helpers import QUICKSTART

LR = "model.init_args.learning_rate"
BATCH = "data.init_args.batch_size"
SLOW_STEPS = ("--trainer.max_epochs=3", "--trainer.callbacks+=tests.test_resume.Pause")


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


def wait_for(condition, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def step_of(run_dir: str | None) -> int:
    last = Path(run_dir or "/nonexistent") / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=True)["global_step"] if last.is_file() else 0


SLOW_STEPS = ("--trainer.max_epochs=3", "--trainer.callbacks+=tests.test_resume.Pause")




class Crash(Callback):
    """A trial that fails with an error of the code's, not of the user's."""

    def on_train_start(self, trainer, pl_module) -> None:
        raise RuntimeError("the GPU fell off the bus")


class Exit(Callback):
    """A trial whose code calls sys.exit: a failure, not a Ctrl-C."""

    def on_train_start(self, trainer, pl_module) -> None:
        sys.exit(3)
