"""Lightning's own switches work with the callbacks configs/defaults.yaml adds, and the early
stopping overlay stops a run that does not learn."""

import pytest
from lightning.pytorch.callbacks import EarlyStopping

from tests.helpers import CONFIGS, quick_args
from train import main

SWITCHES = {
    "no progress bar": ["--trainer.enable_progress_bar", "false"],
    "no checkpointing": ["--trainer.enable_checkpointing", "false"],
    "no logger": ["--trainer.logger", "false"],
    "no model summary": ["--trainer.enable_model_summary", "false"],
    "fast_dev_run": ["--trainer.fast_dev_run", "true"],
    "max_steps": ["--trainer.max_steps", "3"],
    "limit batches": ["--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"],
    "validation every 2 batches": ["--trainer.val_check_interval", "2", "--trainer.limit_train_batches", "4"],
}


@pytest.mark.parametrize("switch", SWITCHES)
def test_lightning_switches_work_with_our_defaults(switch, tmp_path, tiny_bert, shared_cache):
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--trainer.max_epochs", "1", *SWITCHES[switch]))
    assert cli.trainer.state.finished


def test_early_stopping_overlay_stops_a_run(tmp_path, tiny_bert, shared_cache):
    overlay = str(CONFIGS / "overlays" / "early_stopping.yaml")
    cli = main(quick_args(tiny_bert, tmp_path, shared_cache, "--config", overlay,
                          "--model.learning_rate", "1e-9", "--test_after_fit", "false",
                          "--trainer.max_epochs", "10", "--trainer.val_check_interval", "1.0"))
    stoppers = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stoppers) == 1 and stoppers[0].monitor == "val/acc"
    assert stoppers[0].stopped_epoch > 0 and cli.trainer.current_epoch < 10  # no learning, patience 3
