"""Lightning's own switches work with the callbacks configs/defaults.yaml adds, and each one
takes effect; the early stopping overlay stops a run that does not learn."""

from pathlib import Path

import pytest
from lightning.pytorch.callbacks import EarlyStopping, ModelSummary
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.helpers import CONFIGS, quick_args
from train import main


def checkpoints(trainer, tmp_path) -> list[Path]:
    return list((tmp_path / "logs").rglob("*.ckpt"))


def validations(trainer) -> int:
    events = EventAccumulator(trainer.log_dir, size_guidance={"scalars": 0})
    events.Reload()
    return len(events.Scalars("val/acc"))


# switch -> (arguments, what must hold after the run: a check of (trainer, tmp_path))
SWITCHES = {
    "no progress bar": (["--trainer.enable_progress_bar", "false"],
                        lambda t, tmp: t.progress_bar_callback is None),
    "no checkpointing": (["--trainer.enable_checkpointing", "false"],
                         lambda t, tmp: t.checkpoint_callback is None and not checkpoints(t, tmp)),
    "no logger": (["--trainer.logger", "false"],
                  lambda t, tmp: t.logger is None and not list(tmp.rglob("events.out.tfevents.*"))),
    "no model summary": (["--trainer.enable_model_summary", "false"],
                         lambda t, tmp: not any(isinstance(c, ModelSummary) for c in t.callbacks)),
    "fast_dev_run": (["--trainer.fast_dev_run", "true"],
                     lambda t, tmp: t.global_step == 1 and not checkpoints(t, tmp)),
    "max_steps": (["--trainer.max_steps", "3"], lambda t, tmp: t.global_step == 3),
    "limit batches": (["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"],
                      lambda t, tmp: t.global_step == 2 and t.num_val_batches == [1]),
    "validation every 2 batches": (["--trainer.val_check_interval", "2",
                                    "--trainer.limit_train_batches", "4"],
                                   lambda t, tmp: t.global_step == 4 and validations(t) == 2),
}


@pytest.mark.parametrize("switch", SWITCHES)
def test_lightning_switches_work_with_our_defaults_and_take_effect(switch, tmp_path, tiny_bert, shared_cache):
    args, took_effect = SWITCHES[switch]
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--trainer.max_epochs", "1",  # 8 batches
                          "--data.batch_size", "8", "--test_after_fit", "false", *args))
    assert cli.trainer.state.finished
    assert took_effect(cli.trainer, tmp_path)


def test_early_stopping_overlay_stops_a_run(tmp_path, tiny_bert, shared_cache):
    overlay = str(CONFIGS / "overlays" / "early_stopping.yaml")
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--config", overlay,
                          "--model.learning_rate", "1e-9", "--test_after_fit", "false",
                          "--trainer.max_epochs", "10", "--trainer.val_check_interval", "1.0"))
    stoppers = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stoppers) == 1 and stoppers[0].monitor == "val/acc"
    assert stoppers[0].stopped_epoch > 0 and cli.trainer.current_epoch < 10  # no learning, patience 3
